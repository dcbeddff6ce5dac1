"""``import memsilo`` never imports a framework; each adapter imports only its own."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("langchain_core", "langchain", "langgraph", "mem0", "llama_index", "model2vec")


def imported_after(statement: str) -> set:
    code = (
        f"{statement}\n"
        "import sys\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_import_memsilo_imports_no_framework() -> None:
    loaded = imported_after("import memsilo, memsilo.aio, memsilo.types, memsilo.integrations")
    assert "memsilo" in loaded
    assert loaded.isdisjoint(FRAMEWORKS), loaded & set(FRAMEWORKS)


@pytest.mark.parametrize(
    "module, own",
    [
        ("memsilo.integrations.langchain", {"langchain_core"}),
        ("memsilo.integrations.langgraph", {"langgraph", "langchain_core"}),
        ("memsilo.integrations.llama_index", {"llama_index"}),
    ],
)
def test_each_adapter_imports_only_its_framework(module: str, own: set) -> None:
    loaded = imported_after(f"import {module}")
    assert own <= loaded
    others = set(FRAMEWORKS) - own - {"langchain"}
    assert loaded.isdisjoint(others), loaded & others


def test_extras_name_each_framework() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    for extra, package in [
        ("langchain", "langchain-core"),
        ("langgraph", "langgraph-checkpoint"),
        ("mem0", "mem0ai"),
        ("llamaindex", "llama-index-core"),
    ]:
        assert any(req.startswith(package) for req in extras[extra]), (extra, extras.get(extra))
