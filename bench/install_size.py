"""Device install size with and without video decoding (OpenCV), for ``bench/bench_agent.py``.

A fresh venv gets the device wheel of this checkout (``scripts/device_wheel.py``, as
``make install`` does) with an extras string; its size on disk is summed (apparent sizes,
symlinks not followed; pip and setuptools of the venv itself included, as on a device).

While OpenCV is part of the ``device`` extra, "without video" is that install with
``opencv-python-headless`` uninstalled again; once a separate video extra exists, pass its name
(``--video-extra video``) and the two installs are ``device`` and ``device,video``. Needs PyPI
(through pip) and takes minutes the first time; pip's cache makes reruns faster.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENCV = "opencv-python-headless"


@dataclass(frozen=True)
class Install:
    """One device install: a label, the extras to install, packages removed afterwards."""

    label: str
    extras: str
    drop: tuple[str, ...] = ()


def plan(base: str = "device", video_extra: str = "") -> tuple[Install, Install]:
    """(without video, with video): by a separate extra when it exists, else by removing OpenCV."""
    if video_extra:
        return (
            Install(f"[{base}]", base),
            Install(f"[{base},{video_extra}]", f"{base},{video_extra}"),
        )
    return Install(f"[{base}] − {OPENCV}", base, (OPENCV,)), Install(f"[{base}]", base)


def tree_bytes(path: Path) -> int:
    """Apparent size of every regular file under ``path`` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _run(*command: str | Path) -> str:
    args = [str(c) for c in command]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


def install_bytes(install: Install, work: Path, wheel: Path) -> int:
    venv = work / f"venv-{abs(hash(install.label))}"
    _run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    _run(pip, "install", "-q", f"{wheel}[{install.extras}]")
    if install.drop:
        _run(pip, "uninstall", "-q", "-y", *install.drop)
    return tree_bytes(venv)


def measure(base: str = "device", video_extra: str = "") -> dict[str, int]:
    """Bytes on disk of each install of :func:`plan`, by label."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        work = Path(tmp)
        out = _run(sys.executable, ROOT / "scripts" / "device_wheel.py", work / "dist")
        wheel = Path(out.strip().splitlines()[-1])
        return {i.label: install_bytes(i, work, wheel) for i in plan(base, video_extra)}
