"""Every example config in docs/examples/ passes `edge-agent check-config`, text and files.

The files an example names (/etc/edge-agent/..., the serial device) are made as placeholders in
a temporary root, and the credentials in a $CREDENTIALS_DIRECTORY as systemd would pass them:
the check then covers every file the example refers to, not only its schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.clikit import EXIT_CONFIG
from agent.config import load_config
from agent.secrets import referenced_files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.toml"))
EDGE_AGENT = Path(sys.executable).parent / "edge-agent"
CREDENTIALS = ("device.key", "device-tls.key", "mqtt-password")


def _check(
    config: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [str(EDGE_AGENT), "check-config", *flags, str(config)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)


def test_the_three_promised_examples_exist() -> None:
    assert [p.name for p in EXAMPLES] == [
        "pi-rtsp-camera.toml",
        "pi-usb-camera-coral-tls.toml",
        "serial-sensor.toml",
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_passes_check_config(example: Path, tmp_path: Path) -> None:
    schema = _check(example, "--schema-only")
    assert schema.returncode == 0, schema.stderr
    etc = tmp_path / "etc" / "edge-agent"
    text = example.read_text().replace("/etc/edge-agent/", f"{etc}/")
    text = text.replace('"/dev/ttyUSB0"', f'"{tmp_path / "ttyUSB0"}"')
    config = tmp_path / example.name
    config.write_text(text)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(credentials))
    missing = _check(config, env=env)
    assert missing.returncode == EXIT_CONFIG  # the files are checked, not only the text

    etc.mkdir(parents=True)
    (tmp_path / "ttyUSB0").write_bytes(b"")
    for key, name in referenced_files(load_config(config)):
        target = credentials / name if "/" not in name else Path(name)
        assert target.parent in (etc, credentials), (key, name)
        target.write_bytes(b"placeholder")
        target.chmod(0o600)
    result = _check(config, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{config}: ok (device ")
    assert result.stderr == ""
