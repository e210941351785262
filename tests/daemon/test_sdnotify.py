"""sd_notify by hand: the environment decides the target; datagrams reach a real socket."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from agent.daemon.sdnotify import (
    MAX_STATUS_CHARS,
    Notifier,
    NotifyTarget,
    notify_target,
    status_line,
)


def test_no_notify_socket_means_not_under_systemd() -> None:
    assert notify_target({}, 42) is None
    assert notify_target({"NOTIFY_SOCKET": "relative/path"}, 42) is None
    assert Notifier.from_env({}).ready("x") is False


def test_path_and_abstract_addresses() -> None:
    assert notify_target({"NOTIFY_SOCKET": "/run/systemd/notify"}, 1) == NotifyTarget(
        "/run/systemd/notify"
    )
    assert notify_target({"NOTIFY_SOCKET": "@sd-notify"}, 1) == NotifyTarget(b"\0sd-notify")


def test_watchdog_interval_is_half_the_timeout_and_only_for_the_named_pid() -> None:
    env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000"}
    target = notify_target(env, 7)
    assert target is not None
    assert target.ping_interval_s == 15.0
    assert notify_target({**env, "WATCHDOG_PID": "7"}, 7) == target
    other = notify_target({**env, "WATCHDOG_PID": "8"}, 7)
    assert other is not None
    assert other.watchdog_s is None
    assert notify_target({**env, "WATCHDOG_USEC": "0"}, 7) == NotifyTarget("/run/n")
    assert notify_target({**env, "WATCHDOG_USEC": "soon"}, 7) == NotifyTarget("/run/n")


def test_status_is_one_bounded_line() -> None:
    assert status_line("error:\n  bad\tthing") == "error: bad thing"
    assert len(status_line("x" * 1000)) == MAX_STATUS_CHARS


def test_from_env_unsets_the_variables_so_children_do_not_inherit_them() -> None:
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    os.environ.update(NOTIFY_SOCKET="/run/nowhere", WATCHDOG_USEC="1000000")
    try:
        notifier = Notifier.from_env()
        assert notifier.enabled
        assert notifier.watchdog_interval_s == 0.5
        assert "NOTIFY_SOCKET" not in os.environ
        assert "WATCHDOG_USEC" not in os.environ
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


def test_datagrams_carry_newline_separated_assignments() -> None:
    with tempfile.TemporaryDirectory(prefix="sdn-") as tmp:
        path = str(Path(tmp) / "n.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(path)
            server.settimeout(5)
            notifier = Notifier(NotifyTarget(path, 2.0))
            assert notifier.ready("running: digits v1")
            assert notifier.watchdog()
            assert notifier.stopping()
            got = [server.recv(4096).decode() for _ in range(3)]
            notifier.close()
    assert got == ["READY=1\nSTATUS=running: digits v1", "WATCHDOG=1", "STOPPING=1"]


def test_an_abstract_socket_receives_too() -> None:
    name = f"edge-agent-sdnotify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(5)
        notifier = Notifier(notify_target({"NOTIFY_SOCKET": "@" + name}, os.getpid()))
        assert notifier.reloading()
        message = server.recv(4096).decode().splitlines()
        notifier.close()
    assert message[0] == "RELOADING=1"
    assert message[1].startswith("MONOTONIC_USEC=")


def test_a_vanished_socket_is_reported_not_raised() -> None:
    notifier = Notifier(NotifyTarget("/nonexistent/notify.sock"))
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False
