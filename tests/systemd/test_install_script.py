"""`make install-service` and `make uninstall-service` in a temp root (DESTDIR), not /etc."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from agent.bundle.keys import decode_device_public
from agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
AGENT_BIN = Path(sys.executable).parent / "edge-agent"


def _make(target: str, destdir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    args = ["make", "-s", "-C", str(ROOT), target, f"DESTDIR={destdir}", f"AGENT_BIN={AGENT_BIN}"]
    args += [f"{k}={v}" for k, v in extra.items()]
    env = dict(os.environ, DEVICE_ID="pi-install-test")
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_lays_out_config_keys_credentials_and_unit(tmp_path: Path) -> None:
    result = _make("install-service", tmp_path)
    assert result.returncode == 0, result.stderr
    etc = tmp_path / "etc" / "edge-agent"
    config = load_config(etc / "edge-agent.toml")
    assert config.device_id == "pi-install-test"
    assert config.state_dir == "/var/lib/edge-agent"
    assert _mode(etc / "credentials") == 0o700
    for name in ("device.key", "mqtt-password", "device-tls.key"):
        assert _mode(etc / "credentials" / name) == 0o600
    public = decode_device_public((etc / "device.pub").read_bytes(), "device.pub")
    assert public.device_id == "pi-install-test"
    unit = (tmp_path / "etc" / "systemd" / "system" / "edge-agent.service").read_text()
    assert f"ExecStart={AGENT_BIN} run --config /etc/edge-agent/edge-agent.toml" in unit
    assert "no daemon-reload" in result.stdout


def test_reinstall_keeps_the_edited_config_and_the_existing_key(tmp_path: Path) -> None:
    assert _make("install-service", tmp_path).returncode == 0
    etc = tmp_path / "etc" / "edge-agent"
    key = (etc / "credentials" / "device.key").read_bytes()
    (etc / "edge-agent.toml").write_text((etc / "edge-agent.toml").read_text() + "# edited\n")
    result = _make("install-service", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (etc / "credentials" / "device.key").read_bytes() == key
    assert (etc / "edge-agent.toml").read_text().endswith("# edited\n")
    assert "keeping existing device key" in result.stdout


def test_uninstall_removes_the_unit_and_keeps_keys_unless_purged(tmp_path: Path) -> None:
    assert _make("install-service", tmp_path).returncode == 0
    unit = tmp_path / "etc" / "systemd" / "system" / "edge-agent.service"
    etc = tmp_path / "etc" / "edge-agent"
    state = tmp_path / "var" / "lib" / "edge-agent"
    state.mkdir(parents=True)
    assert _make("uninstall-service", tmp_path).returncode == 0
    assert not unit.exists()
    assert (etc / "credentials" / "device.key").is_file()
    assert state.is_dir()
    assert _make("uninstall-service", tmp_path, PURGE="1").returncode == 0
    assert not etc.exists()
    assert not state.exists()


def test_install_refuses_a_missing_agent_executable(tmp_path: Path) -> None:
    args = ["make", "-s", "-C", str(ROOT), "install-service", f"DESTDIR={tmp_path}"]
    args.append(f"AGENT_BIN={tmp_path / 'nowhere' / 'edge-agent'}")
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "is not executable: install the agent first" in result.stderr
    assert not (tmp_path / "etc" / "systemd").exists()
