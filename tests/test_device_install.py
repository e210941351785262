"""The device install carries the agent only: no edge-fleet, no converter, no demo, no OpenCV.

``make install`` installs the wheel that ``scripts/device_wheel.py`` builds; these tests build it
(pip, isolated build environment: about 10 s) and install it into a directory as pip would,
and into a fresh venv with the ``device`` extra (about 15 s), whose ``edge-agent`` then serves
an AVI/MJPEG file to a real mosquitto with no OpenCV installed at all.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import device_wheel  # noqa: E402

from agent.mqtt.batch import results_in  # noqa: E402
from tests.support.agent_env import DEVICE_ID, AgentWorld  # noqa: E402
from tests.support.broker import MosquittoBroker, Subscriber  # noqa: E402
from tests.support.models import ModelFactory  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return device_wheel.build(tmp_path_factory.mktemp("dist"))


def test_device_wheel_holds_only_the_agent_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == {"agent", "edge_agent-0.1.0.dist-info"}


def test_device_wheel_has_every_agent_module(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.endswith(".py")}
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "agent").rglob("*.py")}
    assert packed == source


def test_device_wheel_installs_edge_agent_alone_without_tensorflow(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        info = "edge_agent-0.1.0.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert entry_points.split() == ["[console_scripts]", "edge-agent", "=", "agent.cli:main"]
    assert "Provides-Extra: device" in metadata
    assert "Provides-Extra: tflite-runtime" in metadata
    assert "Provides-Extra: convert" not in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [line for line in requires if "tensorflow" in line.lower()] == []


def test_device_extras_are_the_workstation_projects_own(wheel: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("edge_agent-0.1.0.dist-info/METADATA").decode()
    assert f"Version: {project['version']}" in metadata
    for requirement in project["optional-dependencies"]["device"]:
        name = requirement.split(">")[0].split("<")[0].split("=")[0]
        assert f"Requires-Dist: {name}" in metadata


def test_a_device_install_has_no_fleet_convert_or_demo_package(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    installed = sorted(p.name for p in target.iterdir())
    assert installed == ["agent", "bin", "edge_agent-0.1.0.dist-info"]
    assert sorted(p.name for p in (target / "bin").iterdir()) == ["edge-agent"]


def test_opencv_is_the_video_extra_not_the_device_one() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for name in ("device", "tflite-runtime"):
        assert not [r for r in extras[name] if r.startswith("opencv")], name
        assert any(r.startswith("simplejpeg") for r in extras[name]), name
    assert [r.split(">")[0] for r in extras["video"]] == ["opencv-python-headless"]


#: The device install without the video extra (docs/operations.md): what pip puts in
#: site-packages for ``edge-agent[device]``, pip itself not counted.
MAX_DEVICE_MB = 200


@pytest.fixture(scope="module")
def device_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no pip of its own) with ``edge-agent[device]`` installed from the wheel."""
    venv = tmp_path_factory.mktemp("device-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
    subprocess.run([*pip, f"{wheel}[device]"], check=True)
    return venv


def _site_packages_mb(venv: Path) -> float:
    (site,) = (venv / "lib").glob("python3*/site-packages")
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6


def test_the_device_install_without_the_video_extra_is_small_and_has_no_opencv(
    device_venv: Path,
) -> None:
    python = str(device_venv / "bin" / "python")
    assert _site_packages_mb(device_venv) <= MAX_DEVICE_MB
    probe = "import importlib.util as u; print(u.find_spec('cv2'), bool(u.find_spec('simplejpeg')))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "True"]


@pytest.mark.broker
@pytest.mark.tensorflow
def test_edge_agent_of_the_device_install_serves_an_mjpeg_file_without_opencv(
    device_venv: Path, tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker
) -> None:
    world = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url)
    config = world.write_config(
        source={"type": "video", "path": str(world.video), "realtime": False}
    )
    agent = device_venv / "bin" / "edge-agent"
    checked = subprocess.run(
        [agent, "check-config", config], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    watcher = Subscriber(broker, f"edge/{DEVICE_ID}/results")
    with open(tmp_path / "agent.log", "wb") as log:
        process = subprocess.Popen([agent, "run", "--config", config], stdout=log, stderr=log)
    try:
        watcher.wait_for(
            lambda got: len([r for m in got for r in results_in(m.payload)]) >= world.frames,
            timeout=60,
            describe=lambda _: (tmp_path / "agent.log").read_text(),
        )
    finally:
        process.terminate()
        process.wait(30)
        watcher.close()
    seqs = [r.seq for m in watcher.messages for r in results_in(m.payload)]
    assert seqs == list(range(1, world.frames + 1))
    rtsp = world.write_config(source={"type": "stream", "url": "rtsp://127.0.0.1:8554/cam"})
    refused = subprocess.run(
        [agent, "check-config", rtsp], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 4
    assert "needs the video extra: pip install 'edge-agent[video]'" in refused.stderr
