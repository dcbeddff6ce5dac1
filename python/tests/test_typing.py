"""The package's annotations and stubs hold up under ``mypy --strict``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MISTAKES = '''
import memsilo
db = memsilo.open("./data")
db.store_memory("ns", 42)
db.recall("ns", "q", top_k="five")
n: int = db.get_namespace("ns")["name"]
db.create_key("k", namespaces=[("ns", "admin")])
db.no_such_method()
async def f() -> None:
    adb = memsilo.aio.open("./data")
    hits: int = await adb.recall("ns", "q")
'''


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-version", "3.10", *args],
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=300,
    )


def test_example_using_every_method_type_checks() -> None:
    result = mypy("typing_example.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_type_checks() -> None:
    result = mypy("-p", "memsilo")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_misuse(tmp_path: Path) -> None:
    bad = tmp_path / "misuse.py"
    bad.write_text(MISTAKES)
    result = mypy(str(bad))
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    assert lines == [4, 5, 6, 7, 8, 11], result.stdout
