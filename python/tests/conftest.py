"""Fixtures: a root handle in each mode (in-process, and a real ``python -m memsilo serve``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Iterator, List

import pytest

import memsilo

ADMIN_KEY = "test-admin-key-" + uuid.uuid4().hex
SERVER_START_TIMEOUT = 60.0


class Server:
    """A ``python -m memsilo serve`` child process on a free loopback port."""

    def __init__(self, data: Path) -> None:
        env = dict(os.environ, MEMSILO_ADMIN_KEY=ADMIN_KEY)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memsilo", "serve", "--data", str(data), "--listen", "127.0.0.1:0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: List[str] = []
        self.url = self._wait_for_listening()

    def _wait_for_listening(self) -> str:
        found: List[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.stderr.append(line)
                match = re.search(r"listening on (http://\S+)", line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
            ready.set()  # the process ended

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        ready.wait(SERVER_START_TIMEOUT)
        if not found:
            self.stop()
            raise RuntimeError("memsilo serve did not start:\n" + "".join(self.stderr))
        return found[0]

    def wait(self, timeout: float) -> int:
        """Waits for the process to end and for its last stderr lines to be read."""
        code = self.process.wait(timeout=timeout)
        self._pump.join(timeout=5)
        return code

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait(timeout=15)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server-data"))
    yield srv
    srv.stop()


@pytest.fixture(params=["local", "remote"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> memsilo.Memsilo:
    """A root handle: in-process on a fresh directory, or the admin key of a live server."""
    if mode == "local":
        return memsilo.open(tmp_path / "data")
    srv: Server = request.getfixturevalue("server")
    return memsilo.connect(srv.url, ADMIN_KEY)


def unique(prefix: str) -> str:
    """A name no other test uses (the server is shared by the session's tests)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
