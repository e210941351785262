"""What counts as progress for the systemd watchdog (agent.daemon.watchdog), with time passed in."""

from __future__ import annotations

from agent.config import SourceConfig
from agent.daemon.watchdog import DEFAULT_LIVE_STALL_S, Progress, stall_limit_s


def test_live_sources_stall_by_default_event_sources_do_not() -> None:
    for kind in ("camera", "stream", "video"):
        assert stall_limit_s(SourceConfig(type=kind)) == DEFAULT_LIVE_STALL_S  # type: ignore[arg-type]
    for kind in ("images", "sensor", "mqtt_sensor"):
        assert stall_limit_s(SourceConfig(type=kind)) is None  # type: ignore[arg-type]


def test_stall_limit_is_configurable_can_be_off_and_respects_slow_pacing() -> None:
    assert stall_limit_s(SourceConfig(type="sensor", stall_s=5.0)) == 5.0
    assert stall_limit_s(SourceConfig(type="camera", stall_s=0.0)) is None
    assert stall_limit_s(SourceConfig(type="camera", stall_s=5.0, fps=0.1)) == 30.0


def test_pings_at_the_interval_while_inference_progresses() -> None:
    progress = Progress(interval_s=1.0, stall_s=3.0)
    progress.start(0.0)
    sent = []
    for tick in range(50):
        now = tick * 0.1
        progress.inferred(now)
        if progress.due(now, expecting_input=True):
            sent.append(round(now, 1))
    assert sent == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_no_ping_once_a_live_source_stalls_and_pings_resume_with_inference() -> None:
    progress = Progress(interval_s=1.0, stall_s=3.0)
    progress.start(0.0)
    progress.inferred(1.0)
    assert progress.due(2.0, expecting_input=True)
    assert progress.due(4.0, expecting_input=True)
    assert progress.stalled(4.5, expecting_input=True)
    assert not progress.due(4.5, expecting_input=True)
    assert not progress.due(60.0, expecting_input=True)
    progress.inferred(61.0)
    assert progress.due(61.0, expecting_input=True)


def test_idle_without_expected_input_is_progress() -> None:
    progress = Progress(interval_s=1.0, stall_s=3.0)
    progress.start(0.0)
    assert progress.due(100.0, expecting_input=False)
    quiet_sensor = Progress(interval_s=1.0, stall_s=None)
    quiet_sensor.start(0.0)
    assert quiet_sensor.due(100.0, expecting_input=True)
