"""The device install carries the agent only: no edge-fleet, no converter, no demo.

``make install`` installs the wheel that ``scripts/device_wheel.py`` builds; these tests build it
(pip, isolated build environment: about 10 s) and install it into a directory as pip would.
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
