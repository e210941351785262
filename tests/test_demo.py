"""`make demo` end to end: convert, sign, encrypt, broker, agent, results over MQTT, clean stop."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow, pytest.mark.broker]

ROOT = Path(__file__).resolve().parents[1]


def _demo(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "agent.demo", "--out", str(tmp_path), "--results", "5", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output + (tmp_path / "agent.log").read_text(errors="replace")
    return output


@pytest.mark.parametrize("broker", ["auto", "amqtt"])
def test_demo_runs_every_step_and_stops_cleanly(tmp_path: Path, broker: str) -> None:
    if broker == "amqtt":
        pytest.importorskip("amqtt", reason="amqtt is in the dev and demo extras")
    output = _demo(tmp_path, "--broker", broker)
    for step in range(1, 7):
        assert f"demo: step {step} done" in output, output
    results = re.findall(r"\[edge/demo-pi/results\] seq +(\d+) +digits v1 +digit (\d)", output)
    assert [int(seq) for seq, _ in results] == [1, 2, 3, 4, 5]
    # The video shows the digits 0, 1, 2, ... 9, 0, ... in order and the model reads them right:
    # each result is a later digit than the one before (a frame dropped under load skips one).
    digits = [int(digit) for _, digit in results]
    assert all((b - a) % 10 != 0 for a, b in itertools.pairwise(digits)), digits
    assert "agent exit code 0; availability offline" in output
    assert (tmp_path / "digits-1.edgepkg").is_file()
