"""Aedes (Node.js MQTT 3.1.1 broker) for tests: alone, or a cluster of nodes on one Redis.

Aedes refuses MQTT 5 (CONNACK "unsupported protocol version"), which is what the fallback
tests need, and clusters over Redis (``aedes-persistence-redis`` keeps retained messages,
``mqemitter-redis`` relays publishes between nodes). The npm packages are installed at test
time with ``npm ci`` from ``tests/support/aedes/package-lock.json`` (versions and sha512
integrity pinned) into a cache directory (``$EDGE_TEST_CACHE``, default
``~/.cache/edge-agent-tests``); Node.js and redis-server come from Debian. Each test starts
its own Redis on a free port, never the shared one on 6379.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.broker import free_port

SOURCE = Path(__file__).parent / "aedes"


def cache_root() -> Path:
    return Path(os.environ.get("EDGE_TEST_CACHE", Path.home() / ".cache" / "edge-agent-tests"))


def aedes_dir() -> Path:
    """A directory with broker.mjs and its node_modules, installed once per lock file."""
    lock = (SOURCE / "package-lock.json").read_bytes()
    target = cache_root() / f"aedes-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (target / "node_modules" / ".package-lock.json").exists():
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} not found: install Debian's nodejs and npm")
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(SOURCE / name, target / name)
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--cache", str(cache_root() / "npm")],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci of aedes failed (registry unreachable?):\n{done.stderr[-2000:]}")
    shutil.copy(SOURCE / "broker.mjs", target / "broker.mjs")
    return target


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on {port}: {log.read_text()[-2000:]}")


class Process:
    """One server process on a free port; ``close`` ends it."""

    host = "127.0.0.1"

    def __init__(self, command: list[str], port: int, workdir: Path, what: str, cwd: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.log_path = workdir / f"{what}-{port}.log"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=log)
        _wait_port(port, self._process, what, self.log_path)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)


def start_redis(workdir: Path) -> Process:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        pytest.fail("redis-server not found: install Debian's redis-server")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    return Process(command, port, workdir, "redis", workdir)


def start_aedes(workdir: Path, redis_port: int | None = None) -> Process:
    directory = aedes_dir()
    port = free_port()
    command = ["node", "broker.mjs", str(port)] + ([str(redis_port)] if redis_port else [])
    return Process(command, port, workdir, "aedes", directory)
