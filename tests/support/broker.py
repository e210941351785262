"""A real mosquitto broker for tests: a subprocess on a free port with a generated config.

Never the system broker on 1883. Use the ``broker`` fixture (anonymous, function scope) or the
``make_broker(**options)`` factory; both stop every broker they started at teardown.

    pytest_plugins = ["tests.support.broker"]
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def mosquitto_binary() -> str:
    """Path of the mosquitto binary; fails the test (never skips) when it is missing."""
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(found, os.X_OK):
        pytest.fail("mosquitto not found: install mosquitto (`make test` installs it)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class BrokerTLS:
    """TLS files for the listener. ``require_certificate`` makes client certificates mandatory."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True


class MosquittoBroker:
    """One mosquitto process with its own config, log and (optional) persistence directory."""

    def __init__(
        self,
        workdir: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        persistence: bool = False,
        message_size_limit: int | None = None,
        max_packet_size: int | None = None,
        tls: BrokerTLS | None = None,
        extra_config: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        recipe: str | None = None,
        config_file: Path | None = None,
    ) -> None:
        """``recipe``: a complete mosquitto config (its own listener, TLS and ACL lines) used
        instead of the generated one; only the user and logging lines are added.
        ``config_file``: a config file used exactly as it is (its own user, logging, includes),
        as a packaged mosquitto is started: ``mosquitto -c <config_file>``."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.username = username
        self.password = password
        self.tls = tls
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        if config_file is not None:
            self.config_path = config_file
            return
        if recipe is not None:
            self.config_path.write_text("\n".join([*self._base_lines(), recipe]), encoding="utf-8")
            return
        self._write_config(persistence, message_size_limit, max_packet_size, extra_config)

    # -- configuration ----------------------------------------------------------------------

    def _write_config(
        self,
        persistence: bool,
        message_size_limit: int | None,
        max_packet_size: int | None,
        extra_config: Sequence[str],
    ) -> None:
        lines = [*self._base_lines(), f"listener {self.port} {self.host}"]
        lines += self._auth_lines()
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
        if persistence:
            store = self.workdir / "persist"
            store.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {store}/", "autosave_interval 1"]
        if message_size_limit is not None:
            lines.append(f"message_size_limit {message_size_limit}")
        if max_packet_size is not None:
            lines.append(f"max_packet_size {max_packet_size}")
        lines += list(extra_config)
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @staticmethod
    def _base_lines() -> list[str]:
        return [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "log_dest stderr",
            "log_type all",
            "log_timestamp true",
        ]

    def _auth_lines(self) -> list[str]:
        if self.username is None:
            return ["allow_anonymous true"]
        if self.password is None:
            raise ValueError("a broker with a username needs a password")
        password_file = self.workdir / "passwd"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(password_file), self.username, self.password],
            check=True,
            capture_output=True,
        )
        password_file.chmod(0o600)
        return ["allow_anonymous false", f"password_file {password_file}"]

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.tls is not None else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MosquittoBroker:
        """Start the process and wait until the port accepts connections."""
        if self.is_running():
            raise RuntimeError("broker is already running")
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                pytest.fail(
                    f"mosquitto exited with {self._process.returncode} at start:\n{self.log()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.02)
        self.kill()
        pytest.fail(f"mosquitto did not accept connections on port {self.port}:\n{self.log()}")

    def _end(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves persistence and closes clients."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt stop (SIGKILL): no goodbye to clients, nothing saved."""
        self._end(signal.SIGKILL)

    def restart(self, *, hard: bool = False) -> None:
        """Stop (SIGKILL when ``hard``) and start again on the same port."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        self.kill()


@dataclass(frozen=True)
class ClientTLS:
    """A test client's TLS files: the CA it trusts and its own certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    dup: bool = field(default=False, compare=False)  # MQTT DUP: the broker re-sent it


class Subscriber:
    """An independent paho client (not our adapter) that records what arrives on a filter."""

    def __init__(
        self,
        broker: MosquittoBroker,
        topic_filter: str,
        client_id: str = "",
        *,
        persistent: bool = False,
        tls: ClientTLS | None = None,
    ) -> None:
        """``persistent``: a broker-side session (clean_session false, needs a ``client_id``). It
        survives a graceful ``restart()`` of a broker made with ``persistence=True`` (mosquitto
        saves on SIGTERM); after ``kill()`` only what its autosave wrote, so wait for
        ``wait_subscribed(n)`` instead."""
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._subacks = 0
        self._suback_codes: list[int] = []
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
            clean_session=not persistent,
        )
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        if broker.username is not None:
            self._client.username_pw_set(broker.username, broker.password)
        if tls is not None:
            self._client.tls_set(str(tls.ca_file), str(tls.cert_file), str(tls.key_file))
        self._client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic_filter, qos=1)
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port, keepalive=10)
        self._client.loop_start()
        self.wait_subscribed(1)

    def _on_subscribe(
        self, _c: paho.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        with self._lock:
            self._subacks += 1
            self._suback_codes.extend(int(code.value) for code in codes)

    @property
    def suback_codes(self) -> list[int]:
        """Granted QoS (0-2) or failure (128 and up) per SUBACK, in arrival order."""
        with self._lock:
            return list(self._suback_codes)

    def wait_subscribed(self, times: int, timeout: float = 10.0) -> None:
        """Wait for the ``times``-th SUBACK (it resubscribes on every reconnect)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._subacks >= times:
                    return
            time.sleep(0.01)
        pytest.fail(f"test subscriber not subscribed {times} time(s) within {timeout} s")

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self._messages.append(
                Received(msg.topic, bytes(msg.payload), bool(msg.retain), bool(msg.dup))
            )

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 10.0,
        describe: Callable[[list[Received]], str] | None = None,
    ) -> None:
        """Wait until ``predicate(messages)`` holds; fail the test with what arrived if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.messages):
                return
            time.sleep(0.02)
        got = self.messages
        detail = describe(got) if describe else f"last received {got[-5:]}"
        pytest.fail(f"condition not met within {timeout} s; {len(got)} received; {detail}")

    def subscribe(self, topic_filter: str) -> None:
        """Add a filter on this connection (not renewed on reconnect); wait for its SUBACK."""
        with self._lock:
            acked = self._subacks
        self._client.subscribe(topic_filter, qos=1)
        self.wait_subscribed(acked + 1)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK (also sent for a denied topic)."""
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def make_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., MosquittoBroker]]:
    """Factory: ``make_broker(username=..., password=..., persistence=True, tls=...)``, started."""
    started: list[MosquittoBroker] = []

    def _make(**options: object) -> MosquittoBroker:
        workdir = tmp_path_factory.mktemp("mosquitto")
        broker = MosquittoBroker(workdir, **options)  # type: ignore[arg-type]
        started.append(broker)
        return broker.start()

    yield _make
    for broker in started:
        broker.close()


@pytest.fixture
def broker(make_broker: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """An anonymous mosquitto on a free port of 127.0.0.1, stopped after the test."""
    return make_broker()
