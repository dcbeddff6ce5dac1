#!/usr/bin/env python3
"""One version for every package: VERSION at the repository root is the source.

    python3 scripts/version.py check   # exit 1, naming each file whose version differs
    python3 scripts/version.py sync    # write VERSION's version into every file below
    python3 scripts/version.py print   # the version

Files (each with the one pattern that holds its version):
  Cargo.toml                            [workspace.package] version (every crate inherits it)
  Cargo.lock                            the workspace crates' entries
  python/pyproject.toml                 [project] version
  python/memsilo/__init__.py            memsilo.__version__
  node/package.json, node/package-lock.json   the npm package
  node/npm/linux-x64-gnu/package.json   its platform package
  go-ffi/version.go                     memsilo.Version (the Go module's tag is "v" + it)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
WORKSPACE_CRATES = ("memsilo", "memsilo-http", "memsilo-python", "memsilo-node", "memsilo-ffi", "memsilo-reliability")


def read_version() -> str:
    version = (ROOT / "VERSION").read_text().strip()
    if not SEMVER.match(version):
        sys.exit(f"VERSION: {version!r} is not a version like 1.2.3")
    return version


def _toml_section_version(section: str):
    """(get, set) for `version = "..."` inside one [section] of a TOML file."""
    pattern = re.compile(rf'(^\[{re.escape(section)}\]\n(?:(?!\[).*\n)*?version = ")([^"]*)(")', re.M)

    def get(text: str) -> list[str]:
        return [m.group(2) for m in pattern.finditer(text)]

    def put(text: str, v: str) -> str:
        return pattern.sub(lambda m: m.group(1) + v + m.group(3), text)

    return get, put


def _cargo_lock():
    pattern = re.compile(
        r'(\[\[package\]\]\nname = "(?:' + "|".join(map(re.escape, WORKSPACE_CRATES)) + r')"\nversion = ")([^"]*)(")'
    )

    def get(text: str) -> list[str]:
        return [m.group(2) for m in pattern.finditer(text)]

    def put(text: str, v: str) -> str:
        return pattern.sub(lambda m: m.group(1) + v + m.group(3), text)

    return get, put


def _json_paths(*paths: tuple[str, ...]):
    def get(text: str) -> list[str]:
        data = json.loads(text)
        out = []
        for path in paths:
            node = data
            for key in path:
                node = node.get(key, {}) if isinstance(node, dict) else {}
            out.append(node if isinstance(node, str) else "<missing>")
        return out

    def put(text: str, v: str) -> str:
        data = json.loads(text)
        for path in paths:
            node = data
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = v
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    return get, put


def _assignment(name: str):
    pattern = re.compile(rf'({name} = ")([^"]*)(")')

    def get(text: str) -> list[str]:
        return [m.group(2) for m in pattern.finditer(text)]

    def put(text: str, v: str) -> str:
        return pattern.sub(lambda m: m.group(1) + v + m.group(3), text)

    return get, put


FILES = {
    "Cargo.toml": _toml_section_version("workspace.package"),
    "Cargo.lock": _cargo_lock(),
    "python/pyproject.toml": _toml_section_version("project"),
    "node/package.json": _json_paths(("version",)),
    "node/package-lock.json": _json_paths(("version",), ("packages", "", "version")),
    "node/npm/linux-x64-gnu/package.json": _json_paths(("version",)),
    "python/memsilo/__init__.py": _assignment("__version__"),
    "go-ffi/version.go": _assignment("const Version"),
}


def check(version: str) -> list[str]:
    problems = []
    for name, (get, _) in FILES.items():
        path = ROOT / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        found = get(path.read_text())
        if not found:
            problems.append(f"{name}: no version found")
        for v in sorted(set(found) - {version}):
            problems.append(f"{name}: has {v}, VERSION has {version}")
    return problems


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    version = read_version()
    if command == "print":
        print(version)
        return 0
    if command == "sync":
        for name, (_, put) in FILES.items():
            path = ROOT / name
            text = path.read_text()
            new = put(text, version)
            if new != text:
                path.write_text(new)
                print(f"{name}: {version}")
        command = "check"
    if command == "check":
        problems = check(version)
        if problems:
            print("versions disagree (fix with: python3 scripts/version.py sync):", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            return 1
        print(f"version {version}: {len(FILES)} files agree")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
