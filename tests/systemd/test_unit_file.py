"""systemd/edge-agent.service checked by systemd itself: `verify` and the offline security score.

The unit is rendered by the real install script (into a temp root) so ExecStart points at an
executable that exists here, which `systemd-analyze verify` insists on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.clikit import EXIT_CONFIG

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "edge-agent.service"
MAX_EXPOSURE = 2.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    env = dict(
        os.environ,
        DESTDIR=str(root),
        AGENT_BIN=str(Path(sys.executable).parent / "edge-agent"),
        DEVICE_ID="pi-unit-test",
    )
    subprocess.run([str(ROOT / "systemd" / "install.sh"), "install"], env=env, check=True)
    return root / "etc" / "systemd" / "system" / "edge-agent.service"


def test_unit_declares_the_notify_watchdog_and_restart_contract() -> None:
    settings = _settings(UNIT.read_text())
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["Restart"] == ["on-failure"]
    # A config that cannot be parsed will not fix itself: no restart loop (docs/cli.md).
    assert settings["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert int(settings["StartLimitBurst"][0]) > 1
    assert settings["DynamicUser"] == ["yes"]
    assert settings["StateDirectory"] == ["edge-agent"]
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert settings["CapabilityBoundingSet"] == [""]
    credentials = {value.split(":", 1)[0] for value in settings["LoadCredential"]}
    assert {"device.key", "mqtt-password"} <= credentials


def test_skeleton_config_names_the_credentials_the_unit_loads() -> None:
    skeleton = (ROOT / "systemd" / "edge-agent.toml").read_text()
    settings = _settings(UNIT.read_text())
    credentials = {value.split(":", 1)[0] for value in settings["LoadCredential"]}
    assert 'device_key = "device.key"' in skeleton
    assert 'key_file = "device-tls.key"' in skeleton
    assert "device-tls.key" in credentials


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(rendered: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(rendered)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "edge-agent.service" not in result.stderr, result.stderr


@needs_analyze
def test_offline_security_exposure_is_at_most_2_5(rendered: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


@needs_analyze
def test_the_system_call_filter_lets_the_canary_worker_cap_its_memory() -> None:
    denied: set[str] = set()
    for value in _settings(UNIT.read_text())["SystemCallFilter"]:
        if value.startswith("~"):
            for name in value[1:].split():
                listing = subprocess.run(
                    ["systemd-analyze", "syscall-filter", name],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                denied |= {line.strip() for line in listing.splitlines()[1:]}
    assert "setuid" in denied  # ~@privileged is in force
    assert "setrlimit" not in denied  # agent/update/canary_worker.py sets RLIMIT_AS
