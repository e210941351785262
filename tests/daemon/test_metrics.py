"""Status figures: fps, latency percentiles, error counting with log throttling."""

from __future__ import annotations

import signal
from pathlib import Path

from agent.daemon.lifecycle import Flags
from agent.daemon.metrics import RollingStats, cpu_temperature_c, rss_bytes
from agent.errors import ErrorLog


def test_fps_and_percentiles_over_the_window() -> None:
    stats = RollingStats(window=100)
    for i in range(11):
        stats.add(latency_s=(i + 1) / 1000.0, now=i * 0.1)
    assert abs(stats.fps() - 10.0) < 1e-9
    assert stats.percentile_ms(50) == 6.0
    assert stats.percentile_ms(100) == 11.0


def test_empty_stats_report_nothing() -> None:
    stats = RollingStats()
    assert stats.fps() == 0.0
    assert stats.percentile_ms(95) is None


def test_error_log_counts_every_error_but_logs_once_per_period() -> None:
    log = ErrorLog(period_s=60.0)
    assert [log.record("bad_line", t) for t in (0.0, 1.0, 59.9, 60.0)] == [True, False, False, True]
    assert log.record("bad_frame", 1.0) is True
    assert log.counts == {"bad_line": 4, "bad_frame": 1}


def test_rss_is_read_from_proc() -> None:
    rss = rss_bytes()
    assert rss is not None
    assert rss > 10 * 1024 * 1024


def test_cpu_temperature_reads_millidegrees_and_tolerates_absence(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert cpu_temperature_c(zone) == 48.312
    assert cpu_temperature_c(tmp_path / "missing") is None


def test_signal_handlers_only_set_flags() -> None:
    flags = Flags()
    flags.handle(signal.SIGHUP)
    assert flags.reload.is_set()
    assert not flags.stop.is_set()
    flags.handle(signal.SIGTERM)
    assert flags.stop.is_set()
