"""Which source a config builds and which modules it pulls in: OpenCV only for image sources,
and never for the MJPEG sources when OpenCV is off or not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import sys
from pathlib import Path
import agent.cli, agent.daemon.service
from agent.config import SourceConfig
from agent.secrets import FileResolver
from agent.sources.factory import build_source
path = Path(sys.argv[2])
source = build_source(SourceConfig(type=sys.argv[1], path=str(path)), FileResolver(path.parent))
loaded = "cv2" in sys.modules
source.close()
print(loaded)
"""


def _loads_opencv(kind: str, path: Path) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, kind, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() == "True"


def test_a_sensor_agent_never_loads_opencv(tmp_path: Path) -> None:
    readings = tmp_path / "readings.jsonl"
    readings.write_text('{"x": 1.0}\n')
    assert _loads_opencv("sensor", readings) is False


def test_a_video_agent_loads_opencv(tmp_path: Path) -> None:
    assert _loads_opencv("video", tmp_path / "missing.avi") is True


_BUILT = """
import sys
from pathlib import Path
from agent.config import SourceConfig
from agent.secrets import FileResolver
from agent.sources.factory import build_source
kind, value = sys.argv[1], sys.argv[2]
keys = {"camera": "device", "mjpeg_http": "url"}.get(kind, "path")
source = build_source(SourceConfig(type=kind, **{keys: value}), FileResolver(Path.cwd()))
print(type(source).__module__, getattr(source, "health").name, "cv2" in sys.modules)
source.close()
"""


def _built(kind: str, value: str, *, opencv: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _BUILT, kind, value],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin", "PYTHONPATH": str(ROOT), "EDGE_AGENT_OPENCV": opencv},
    )
    return out.stdout.split()


@pytest.mark.parametrize(("kind", "value", "module", "name"), [
    ("camera", "/dev/video97", "agent.sources.jpegstream", "camera"),
    ("mjpeg_http", "http://127.0.0.1:9/stream.mjpg", "agent.sources.jpegstream", "mjpeg_http"),
    ("video", "clip.mjpeg", "agent.sources.jpegstream", "video"),
    ("video", "clip.avi", "agent.sources.jpegstream", "video"),
])  # fmt: skip
def test_without_opencv_image_sources_are_the_mjpeg_ones_and_never_load_cv2(
    kind: str, value: str, module: str, name: str
) -> None:
    assert _built(kind, value, opencv="off") == [module, name, "False"]


def test_with_opencv_a_camera_and_an_avi_are_opencv_captures_but_raw_mjpeg_is_ours() -> None:
    assert _built("camera", "/dev/video97", opencv="auto")[0] == "agent.sources.camera"
    assert _built("video", "clip.avi", opencv="auto")[0] == "agent.sources.camera"
    assert _built("video", "clip.mjpeg", opencv="auto")[0] == "agent.sources.jpegstream"
