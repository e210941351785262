"""A real agent world for end-to-end tests: keys, a signed bundle, a video, a config, a process.

Everything is real: the model comes from our converter, the bundle from our writer, the video
from scikit-learn digits written by OpenCV, the broker is mosquitto, and the agent runs as its
own process (``python -m agent.cli run``) so signals, exit and restart behave as on a device.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import RecipientKey, Release, build_bundle
from agent.bundle.keys import encode_private, encode_release_public
from convert.samples import digit_frames, write_video
from tests.support.models import ConvertedModel

ROOT = Path(__file__).resolve().parents[2]
DEVICE_ID = "pi-test-1"


@dataclass
class AgentWorld:
    """Files for one device: keys, bundle, video, config. ``write_config`` renders the TOML."""

    root: Path
    model: ConvertedModel
    broker_url: str
    frames: int = 40
    fps: float = 20.0
    release_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    device_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    device_id: str = DEVICE_ID

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "release.pub").write_bytes(
            encode_release_public(self.release_key.public_key())
        )
        key = self.root / "device.key"
        key.write_bytes(encode_private(self.device_key))
        key.chmod(0o600)
        self.bundle_path = self.write_bundle(counter=1)
        images, self.labels = digit_frames(self.frames, side=64)
        self.video = write_video(self.root / "digits.avi", images, self.fps)

    def write_bundle(
        self,
        counter: int,
        name: str = "digits",
        *,
        recipients: Sequence[AgentWorld] = (),
        canary: bytes | None = None,
    ) -> Path:
        """A bundle of the sample model for this device (or for every world in ``recipients``);
        ``canary`` replaces the model's own canary.npz."""
        files = {
            "model.tflite": self.model.model_bytes(),
            "metadata.json": self.model.metadata.read_bytes(),
            "canary.npz": canary if canary is not None else self.model.canary.read_bytes(),
            "labels.txt": "".join(f"{d}\n" for d in range(10)).encode(),
        }
        release = Release(
            name=name,
            counter=counter,
            created=int(time.time()) - 60,
            metadata=self.model.model_metadata(),
        )
        keys = [RecipientKey(w.device_id, w.device_key.public_key()) for w in recipients or [self]]
        data = build_bundle(release, files, [self.release_key], keys)
        path = self.root / f"{name}-{counter}.edgepkg"
        path.write_bytes(data)
        return path

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def write_config(self, **overrides: Any) -> Path:
        source = overrides.pop("source", None) or {
            "type": "video",
            "path": str(self.video),
            "realtime": True,
        }
        mqtt = {"url": self.broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}
        mqtt.update(overrides.pop("mqtt", {}))
        tables: dict[str, dict[str, Any]] = {
            "mqtt": mqtt,
            "keys": {"trusted_keys": ["release.pub"], "device_key": "device.key"},
            "model": {"bundle": str(self.bundle_path), "threads": 1},
            "source": source,
            "status": {"interval_s": 1.0},
        }
        for key, value in overrides.pop("tables", {}).items():
            tables.setdefault(key, {}).update(value)
        groups = overrides.pop("groups", None)
        lines = [f'device_id = "{self.device_id}"', f'state_dir = "{self.state_dir}"']
        if groups is not None:
            lines.append(f"groups = {_toml(groups)}")
        for table, values in tables.items():
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        path = self.root / "agent.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def poison_tensorflow(directory: Path) -> Path:
    """A directory holding a ``tensorflow`` package that fails on import.

    Put first on ``PYTHONPATH``, it proves a process never imports TensorFlow: if it tried, it
    would die with this message instead of loading the real package.
    """
    package = directory / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        'raise ImportError("the agent imported tensorflow; it must never do that")\n'
    )
    return directory


def hide_opencv(directory: Path) -> Path:
    """A directory whose ``sitecustomize`` makes ``cv2`` unimportable, as on a device installed
    without the video extra (``import cv2`` raises ImportError, ``find_spec`` finds nothing)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text("import sys\n\nsys.modules['cv2'] = None\n")
    return directory


class AgentProcess:
    """``edge-agent run`` as a child process with its log in a file; TensorFlow is poisoned."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        without_opencv: bool = False,
    ) -> None:
        self.log_path = log
        poison = [poison_tensorflow(log.parent / "no-tensorflow")]
        if without_opencv:
            poison.insert(0, hide_opencv(log.parent / "no-opencv"))
        env = dict(
            os.environ,
            **(env or {}),
            PYTHONPATH=os.pathsep.join([*map(str, poison), str(ROOT)]),
            PYTHONUNBUFFERED="1",
        )
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=ROOT,
            )

    def terminate(self, timeout: float = 15.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[[Path], AgentProcess]]:
    """``agents(config)`` starts ``edge-agent run``; every process is stopped at teardown."""
    started: list[AgentProcess] = []

    def start(config: Path) -> AgentProcess:
        process = AgentProcess(config, tmp_path / f"agent-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()
