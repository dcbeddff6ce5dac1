"""``python -m memsilo``: the bundled server's command line."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ADMIN_KEY, Server

import memsilo


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memsilo", *args], capture_output=True, text=True, timeout=60
    )


def test_help_and_bad_arguments() -> None:
    helped = run("--help")
    assert helped.returncode == 0 and "serve" in helped.stdout
    bad = run("serve", "--no-such-flag")
    assert bad.returncode == 2 and "usage" in bad.stderr.lower()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal_and_keeps_data(tmp_path: Path, sig: int) -> None:
    server = Server(tmp_path)
    try:
        db = memsilo.connect(server.url, ADMIN_KEY)
        db.create_namespace("kept")
        db.store_memory("kept", "survives a restart")
        server.process.send_signal(sig)
        assert server.wait(timeout=30) == 0, "".join(server.stderr)
        assert "Traceback" not in "".join(server.stderr)
    finally:
        server.stop()
    assert memsilo.open(tmp_path).get_namespace("kept")["memory_count"] == 1
