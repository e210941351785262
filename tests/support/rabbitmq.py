"""A 2-node RabbitMQ cluster with the MQTT plugin, started by the test, beside the system's node.

Debian's ``rabbitmq-server`` (3.10: MQTT 3.1.1 only) already runs a default node on 5672; these
nodes have their own names (``rabbit-a@localhost`` ...), ports (AMQP, Erlang distribution and
MQTT, all free ones), Mnesia and log directories under the test's tmp dir, their own enabled
plugins file (``rabbitmq_mqtt``) and one Erlang cookie in their own ``HOME``. Node b joins node
a with ``rabbitmqctl join_cluster``. The CLI tools are called from ``/usr/lib/rabbitmq/bin`` as
the current user (the ``/usr/sbin`` wrappers switch to the ``rabbitmq`` user and its cookie).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

BIN = Path("/usr/lib/rabbitmq/bin")
START_S = 120.0


class RabbitNode:
    host = "127.0.0.1"
    username: str | None = None  # what tests.support.broker.Subscriber asks of a broker
    password: str | None = None
    tls = None

    def __init__(self, root: Path, name: str) -> None:
        self.name = f"rabbit-{name}@localhost"
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, amqp, dist = _free_ports(3)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{amqp}\nmqtt.listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\nloopback_users = none\n"
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(amqp),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }
        self.log_path = self.dir / "server.log"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(BIN / "rabbitmq-server")], env=self.env, stdout=log, stderr=log
            )

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def ctl(self, *words: str) -> str:
        done = subprocess.run(
            [str(BIN / "rabbitmqctl"), "-n", self.name, *words],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"rabbitmqctl {' '.join(words)}: {done.stdout}{done.stderr}")
        return done.stdout

    def wait_mqtt(self) -> None:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"{self.name} has no MQTT listener after {START_S:g} s")

    def close(self) -> None:
        if self._process.poll() is None:
            subprocess.run([str(BIN / "rabbitmqctl"), "-n", self.name, "stop"], env=self.env,
                           capture_output=True, timeout=60, check=False)  # fmt: skip
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (held open together so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_cluster(root: Path) -> list[RabbitNode]:
    """Nodes a and b, b joined to a; both MQTT listeners up."""
    if not (BIN / "rabbitmq-server").exists():
        pytest.fail("rabbitmq-server not found: install Debian's rabbitmq-server")
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    cookie.write_text("EDGEFLEETTESTCOOKIE")
    cookie.chmod(0o400)
    nodes = [RabbitNode(root, "a"), RabbitNode(root, "b")]
    try:
        for node in nodes:
            node.wait_mqtt()
        nodes[1].ctl("stop_app")
        nodes[1].ctl("join_cluster", nodes[0].name)
        nodes[1].ctl("start_app")
        nodes[1].wait_mqtt()
    except BaseException:
        for node in nodes:
            node.close()
        raise
    return nodes
