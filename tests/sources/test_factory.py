"""Which modules a configured source pulls in: OpenCV only for image sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
