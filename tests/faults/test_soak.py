"""Soak, CI size: two minutes of the real agent on a looping video with a broker kill every
30 s and a model push every 40 s. RSS growth after the warm-up stays under 5 MB, no result is
lost, and every push is installed. ``make soak MINUTES=30`` runs the long form (bench/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import LIMIT_MB, run_soak, write_outputs

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


def test_two_minute_soak_keeps_rss_flat_and_loses_no_result(tmp_path: Path) -> None:
    result = run_soak(
        tmp_path / "work", minutes=2, restart_every_s=30, push_every_s=40, warmup_s=45, window_s=20
    )
    write_outputs(result, tmp_path / "out")
    print(result.markdown())
    assert result.alive
    assert result.broker_kills >= 3
    assert result.pushes >= 2
    assert result.last_version_served == result.pushes + 1  # every push was installed
    assert result.results > 1000
    assert result.contiguous == result.results
    assert result.growth_mb < LIMIT_MB
    assert (tmp_path / "out" / "rss.png").stat().st_size > 0
