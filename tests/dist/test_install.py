"""Installs each release artifact of dist/ (``make dist``) as a user would, with no Rust
toolchain on PATH, and runs the README's quick starts against it.

Run by ``make test-dist`` (part of ``make test``). Install times are printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("MEMSILO_DIST", ROOT / "dist"))
VERSION = (ROOT / "VERSION").read_text().strip()
ADMIN = "dist-test-admin-key-0123456789"
FORBIDDEN = "403 Key not authorized for namespace tenant-globex"
README = (ROOT / "README.md").read_text()


def artifact(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {DIST} (run make dist), found {found}"
    return found[0]


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user without Rust: no cargo or rustc on PATH, no cargo variables,
    no virtualenv of ours."""
    path = [
        d
        for d in os.environ["PATH"].split(os.pathsep)
        if d and not (Path(d) / "cargo").exists() and not (Path(d) / "rustc").exists()
        and "dist-venv" not in d
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARGO", "RUSTUP", "RUSTC", "VIRTUAL_ENV", "PYTHONPATH", "CGO_", "GOFLAGS"))
    }
    env["PATH"] = os.pathsep.join(path)
    env.update(extra)
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def timed(what: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    start = time.monotonic()
    out = run(cmd, cwd, env)
    print(f"\n[install time] {what}: {time.monotonic() - start:.1f} s", flush=True)
    return out


def readme_block(section: str, lang: str) -> str:
    """The first ```lang block of the README's `## section`."""
    m = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert m, f"README has no '## {section}' section"
    block = re.search(rf"```{lang}\n(.*?)```", m.group(1), re.S)
    assert block, f"README's {section} section has no {lang} block"
    return block.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `memsilo serve` process started from an installed package; stopped with SIGTERM."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(env, MEMSILO_ADMIN_KEY=ADMIN)
        self.proc = subprocess.Popen(
            [*cmd, "serve", "--data", str(cwd / "server-data"), "--listen", f"127.0.0.1:{self.port}"],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    self.health = json.load(r)
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    out, err = self.proc.communicate(timeout=5) if self.proc.poll() is not None else ("", "")
                    self.proc.kill()
                    raise AssertionError(f"server did not start: {out}\n{err}")
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT if os.name != "posix" else signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert code == 0, f"server exited {code}: {self.proc.stderr.read() if self.proc.stderr else ''}"


def glibc_versions(binary: Path) -> set[tuple[int, ...]]:
    """The GLIBC_x.y symbol versions a binary needs (objdump from binutils)."""
    out = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True, check=True).stdout
    return {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out)}


def test_versions_agree():
    subprocess.run([sys.executable, str(ROOT / "scripts/version.py"), "check"], check=True)


def test_version_check_names_a_disagreeing_file_and_sync_fixes_it(tmp_path: Path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import version as version_script
    finally:
        sys.path.pop(0)
    for name in ["scripts/version.py", "VERSION", *version_script.FILES]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "VERSION").write_text("9.8.7\n")
    script = [sys.executable, str(tmp_path / "scripts/version.py")]
    p = subprocess.run([*script, "check"], capture_output=True, text=True)
    assert p.returncode == 1
    for name in version_script.FILES:
        assert f"{name}: has {VERSION}, VERSION has 9.8.7" in p.stderr, p.stderr
    subprocess.run([*script, "sync"], check=True, capture_output=True)
    assert subprocess.run([*script, "check"]).returncode == 0
    assert '"version": "9.8.7"' in (tmp_path / "node/package.json").read_text()
    assert 'const Version = "9.8.7"' in (tmp_path / "go-ffi/version.go").read_text()


# ------------------------------------------------------------------------------------------
# Python: the wheel into a fresh venv; the quick start in-process and against the bundled server.


def test_python_wheel_quick_start_in_process_and_remote(tmp_path: Path):
    wheel = artifact(f"memsilo-{VERSION}-cp39-abi3-*manylinux_2_17_x86_64*.whl")
    with zipfile.ZipFile(wheel) as z:
        native = [n for n in z.namelist() if n.startswith("memsilo/_native") and n.endswith(".so")]
        assert native, z.namelist()
        (tmp_path / "native.so").write_bytes(z.read(native[0]))
        # The extension links LMDB: its notice and memsilo's licence are licence files.
        licences = {n.rsplit("/", 1)[1]: n for n in z.namelist() if ".dist-info/licenses/" in n}
        assert set(licences) == {"LICENSE", "THIRD-PARTY-NOTICES"}, z.namelist()
        assert b"OpenLDAP Public License" in z.read(licences["THIRD-PARTY-NOTICES"])
        assert b"Apache License" in z.read(licences["LICENSE"])
    assert max(glibc_versions(tmp_path / "native.so")) <= (2, 17)

    env = user_env()
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", str(tmp_path / "venv")], tmp_path, env)
    py = str(tmp_path / "venv/bin/python")
    timed("pip install memsilo (wheel)", [py, "-m", "pip", "install", "-q", "--no-index",
                                           "--disable-pip-version-check", str(wheel)], tmp_path, env)
    where = run([py, "-c", "import memsilo; print(memsilo.__file__, memsilo.__version__)"], tmp_path, env)
    assert str(tmp_path / "venv") in where and where.split()[-1] == VERSION, where

    quick = readme_block("Python", "python")
    assert 'memsilo.open("./data")' in quick
    (tmp_path / "local").mkdir()
    out = run([py, "-c", quick], tmp_path / "local", env)
    assert "forbidden " + FORBIDDEN in out, out

    server = Server([py, "-m", "memsilo"], tmp_path, env)
    try:
        assert server.health["version"] == VERSION
        remote = quick.replace('memsilo.open("./data")', f'memsilo.connect("{server.url}", "{ADMIN}")')
        out = run([py, "-c", remote], tmp_path, env)
        assert "forbidden " + FORBIDDEN in out, out
    finally:
        server.stop()


def test_python_sdist_carries_the_sources(tmp_path: Path):
    sdist = artifact(f"memsilo-{VERSION}.tar.gz")
    with tarfile.open(sdist) as t:
        names = t.getnames()
        t.extractall(tmp_path, filter="data")
    prefix = f"memsilo-{VERSION}/"
    for needed in ["pyproject.toml", "memsilo/__init__.py", "PKG-INFO", "LICENSE", "THIRD-PARTY-NOTICES"]:
        assert prefix + needed in names, (needed, names[:20])
    assert "OpenLDAP Public License" in (tmp_path / prefix / "THIRD-PARTY-NOTICES").read_text()
    assert any(n.endswith("core/src/lib.rs") for n in names), "the engine's sources"
    assert any(n.endswith("bindings/python/src/lib.rs") for n in names), "the extension's sources"
    # Its workspace loads on its own (members it lacks would fail here); building it needs Rust.
    subprocess.run(["cargo", "metadata", "--locked", "--no-deps", "--format-version", "1"],
                   cwd=tmp_path / f"memsilo-{VERSION}", check=True, capture_output=True)


# ------------------------------------------------------------------------------------------
# Node: both tarballs into an empty project; the quick start in CommonJS and ESM.


def test_npm_tarballs_quick_start_commonjs_and_esm(tmp_path: Path):
    main = artifact(f"memsilo-{VERSION}.tgz")
    platform = artifact(f"memsilo-linux-x64-gnu-{VERSION}.tgz")
    with tarfile.open(main) as t:
        names = t.getnames()
        pkg = json.load(t.extractfile("package/package.json"))
    assert not any(n.endswith(".node") for n in names), "the main package carries no addon"
    assert pkg["optionalDependencies"] == {"memsilo-linux-x64-gnu": VERSION}
    with tarfile.open(platform) as t:
        t.extract("package/memsilo.linux-x64-gnu.node", tmp_path / "addon", filter="data")
        assert b"OpenLDAP Public License" in t.extractfile("package/THIRD-PARTY-NOTICES").read()
    assert max(glibc_versions(tmp_path / "addon/package/memsilo.linux-x64-gnu.node")) <= (2, 17)

    env = user_env()
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0", "private": True}))
    timed("npm install memsilo (2 tarballs)", ["npm", "install", "--no-audit", "--no-fund", "--prefer-offline",
                                                str(platform), str(main)], app, env)
    assert (app / "node_modules/memsilo-linux-x64-gnu/memsilo.linux-x64-gnu.node").exists()

    quick = readme_block("Node", "js")
    import_line = "import * as memsilo from 'memsilo';"
    assert import_line in quick and "memsilo.open('./data')" in quick
    # ESM, in-process, exactly as the README has it.
    (app / "quick.mjs").write_text(quick)
    out = run(["node", "quick.mjs"], app, env)
    assert "forbidden " + FORBIDDEN in out, out

    # CommonJS (as the README's comment says), against the server the package bundles
    # (npx memsilo serve).
    server = Server([str(app / "node_modules/.bin/memsilo")], app, env)
    try:
        cjs = quick.replace(import_line, "const memsilo = require('memsilo');").replace(
            "memsilo.open('./data')", f"await memsilo.connect('{server.url}', {{ apiKey: '{ADMIN}' }})"
        )
        (app / "quick.cjs").write_text(
            f"(async () => {{\n{cjs}\n}})().catch((e) => {{ console.error(e); process.exit(1); }});\n"
        )
        out = run(["node", "quick.cjs"], app, env)
        assert "forbidden " + FORBIDDEN in out, out
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------
# Go: a module outside the repository, the Go module's source alone, the static library
# from the release artifact, no cargo.


@pytest.mark.parametrize("library", ["CGO_LDFLAGS", "module"])
def test_go_module_builds_with_only_the_static_library(tmp_path: Path, library: str):
    """CGO_LDFLAGS: the documented release artifact. module: a module release that carries
    the library in lib/linux-amd64 (no flags at all)."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    ffi = artifact(f"memsilo-ffi-{VERSION}-linux-x86_64.tar.gz")
    opt = tmp_path / "opt"
    opt.mkdir()
    with tarfile.open(ffi) as t:
        t.extractall(opt, filter="data")
    lib = opt / f"memsilo-ffi-{VERSION}-linux-x86_64"
    assert (lib / "lib/libmemsilo_ffi.a").exists() and (lib / "include/memsilo.h").exists()
    assert "OpenLDAP Public License" in (lib / "THIRD-PARTY-NOTICES").read_text()

    # The module as `go get` would fetch it: go-ffi/ and nothing around it.
    module = tmp_path / "memsilo-go"
    shutil.copytree(ROOT / "go-ffi", module)
    assert re.search(rf'const Version = "{re.escape(VERSION)}"', (module / "version.go").read_text())

    app = tmp_path / "app"
    app.mkdir()
    (app / "go.mod").write_text(
        "module example.com/app\n\ngo 1.22\n\n"
        f"require github.com/memsilo/memsilo-go v{VERSION}\n\n"
        f"replace github.com/memsilo/memsilo-go => {module}\n"
    )
    quick = readme_block("Go", "go")
    body = "\n".join(line for line in quick.splitlines() if not line.startswith("import "))
    (app / "main.go").write_text(
        'package main\n\nimport (\n\t"context"\n\t"errors"\n\t"fmt"\n\n'
        '\tmemsilo "github.com/memsilo/memsilo-go"\n)\n\n'
        f"func main() {{\n{body}\n\tfmt.Println(len(hits), memsilo.Version)\n}}\n"
    )
    env = user_env(CGO_ENABLED="1", GOPROXY="off", GOFLAGS="-mod=mod")
    if library == "CGO_LDFLAGS":
        env["CGO_LDFLAGS"] = f"-L{lib / 'lib'}"
    else:
        (module / "lib/linux-amd64").mkdir(parents=True)
        shutil.copy(lib / "lib/libmemsilo_ffi.a", module / "lib/linux-amd64/")
    timed(f"go build (static library via {library})", ["go", "build", "-o", "app", "."], app, env)
    needed = subprocess.run(["ldd", str(app / "app")], capture_output=True, text=True).stdout
    assert "memsilo" not in needed, needed
    out = run([str(app / "app")], app, env)
    assert FORBIDDEN in out, out


# ------------------------------------------------------------------------------------------
# The server tarball.


def test_server_tarball_runs(tmp_path: Path):
    tar = artifact(f"memsilo-{VERSION}-linux-x86_64.tar.gz")
    with tarfile.open(tar) as t:
        t.extractall(tmp_path, filter="data")
    top = tmp_path / f"memsilo-{VERSION}-linux-x86_64"
    assert sorted(p.name for p in top.iterdir()) == [
        "CHANGELOG.md", "LICENSE", "README.md", "THIRD-PARTY-NOTICES", "memsilo", "memsilo-dump-v0"]
    assert "OpenLDAP Public License" in (top / "THIRD-PARTY-NOTICES").read_text()
    binary = top / "memsilo"
    assert max(glibc_versions(binary)) <= (2, 17)
    assert max(glibc_versions(top / "memsilo-dump-v0")) <= (2, 17)
    env = user_env()
    assert run([str(binary), "--version"], tmp_path, env).strip() == f"memsilo {VERSION}"
    server = Server([str(binary)], tmp_path, env)
    try:
        assert server.health == {"status": "ok", "version": VERSION}
        req = urllib.request.Request(f"{server.url}/v1/namespaces", data=b'{"name": "tenant-acme"}', method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 201
    finally:
        server.stop()

    # `memsilo upgrade` finds the tarball's memsilo-dump-v0 beside it and converts a 0.1.0
    # data directory (the repository's fixture).
    with tarfile.open(ROOT / "tests/fixtures/data-0.1.0/data.tar.gz") as t:
        t.extractall(tmp_path / "old", filter="data")
    p = subprocess.run([str(binary), "upgrade", str(tmp_path / "old/data")], cwd=tmp_path, env=user_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "7 environments" in p.stderr, p.stderr
    assert (tmp_path / "old/data.0.1.0-backup/catalog/data.mdb").exists()
