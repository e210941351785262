"""`make install-service` and `make uninstall-service` in a temp root (DESTDIR), not /etc.

Most tests hand the installer this checkout's own edge-agent (``AGENT_BIN``); the slow one lets it
build the /opt/edge-agent venv itself from the checkout, for real, as on a device.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__
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
    assert "is not executable: unset AGENT_BIN to build the venv" in result.stderr
    assert not (tmp_path / "etc" / "systemd").exists()


@pytest.mark.slow
def test_install_builds_the_venv_from_the_checkout_and_uninstall_removes_it(
    tmp_path: Path,
) -> None:
    """The one path from a clone to a service: no AGENT_BIN, the installer makes the venv."""
    python = shutil.which("python3") or sys.executable
    args = ["make", "-s", "-C", str(ROOT), "install-service", f"DESTDIR={tmp_path}"]
    env = dict(os.environ, DEVICE_ID="pi-venv-test")
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run([*args, f"PYTHON={python}"], capture_output=True, text=True, env=env,
                            check=False, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    venv = tmp_path / "opt" / "edge-agent"
    version = subprocess.run([str(venv / "bin" / "edge-agent"), "--version"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert version.stdout == f"edge-agent {__version__}\n"
    # The device extra only: the runtime is there, TensorFlow is not, and nothing from the
    # checkout's own .venv leaks in (no --system-site-packages, no editable install).
    probe = (
        "import importlib.util as u, agent; "
        "print(*(bool(u.find_spec(m)) for m in ('ai_edge_litert', 'tensorflow', 'convert',"
        " 'fleet')), agent.__file__)"
    )
    found = subprocess.run([str(venv / "bin" / "python"), "-c", probe],
                           capture_output=True, text=True, check=True,
                           cwd=tmp_path).stdout.split()  # fmt: skip
    assert found[:4] == ["True", "False", "False", "False"]  # the device wheel: agent/ only
    assert found[4].startswith(str(venv))
    unit = (tmp_path / "etc" / "systemd" / "system" / "edge-agent.service").read_text()
    assert "ExecStart=/opt/edge-agent/bin/edge-agent run --config" in unit
    public = decode_device_public((tmp_path / "etc/edge-agent/device.pub").read_bytes(), "pub")
    assert public.device_id == "pi-venv-test"

    removed = _make("uninstall-service", tmp_path)
    assert removed.returncode == 0, removed.stderr
    # The Home Assistant hook ran with the installed agent (the skeleton leaves HA off).
    assert "Home Assistant is not enabled in the config: nothing to remove" in removed.stdout
    assert not venv.exists()
    assert (tmp_path / "etc" / "edge-agent" / "credentials" / "device.key").is_file()
