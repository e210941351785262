"""The demo's MQTT broker: mosquitto when it is installed, else amqtt (pure Python, ``demo`` extra).

Either runs as a child process on a free port of 127.0.0.1 with anonymous access, which is
fine for a demo on the loopback interface and nothing else (docs/security.md has the real
recipe). ``python -m demo.broker --port N`` is the amqtt child.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return found if os.access(found, os.X_OK) else None


class DemoBroker:
    """A throwaway broker in ``workdir``; ``start()`` returns once it accepts connections."""

    def __init__(self, workdir: Path, *, prefer_mosquitto: bool = True) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.mosquitto = find_mosquitto() if prefer_mosquitto else None
        self.kind = "mosquitto" if self.mosquitto else "amqtt"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def start(self) -> DemoBroker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"{self.kind}.log", "ab")  # noqa: SIM115 - the child owns it
        with log:
            self._process = subprocess.Popen(
                self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start; see {log.name}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((HOST, self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} did not listen on {HOST}:{self.port}; see {log.name}")

    def _argv(self) -> list[str]:
        if self.mosquitto is None:
            return [sys.executable, "-m", "demo.broker", "--port", str(self.port)]
        config = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} {HOST}", "allow_anonymous true", "log_dest stderr"]
        if os.getuid() == 0:  # mosquitto would otherwise drop to a user that may not exist
            lines.insert(0, "user root")
        config.write_text("\n".join(lines) + "\n")
        return [self.mosquitto, "-c", str(config)]

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def _serve(port: int) -> None:
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await broker.start()
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.broker", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
