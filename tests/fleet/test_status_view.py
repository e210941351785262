"""The fleet view built from retained availability and status messages (pure)."""

from __future__ import annotations

import json

from agent.mqtt.messages import ModelRef, StatusMessage, UpdateStatus
from fleet.status import FleetView, age_text, device_topic, render_table

MODEL = ModelRef("digits", "3", "ab" * 32)


def status(ts: float = 1000.0, state: str = "running") -> bytes:
    return StatusMessage(ts=ts, state=state, model=MODEL).to_json()


def test_device_topic_accepts_only_availability_and_status_under_the_prefix() -> None:
    assert device_topic("site/edge/", "site/edge/pi-1/status") == ("pi-1", "status")
    assert device_topic("site/edge/", "site/edge/pi-1/availability") == ("pi-1", "availability")
    assert device_topic("site/edge/", "site/edge/pi-1/results") is None
    assert device_topic("site/edge/", "site/edge/bundles/abc/header") is None
    assert device_topic("site/edge/", "other/pi-1/status") is None
    assert device_topic("site/edge/", "site/edge/$bad/status") is None


def test_view_merges_availability_and_status_per_device_sorted() -> None:
    view = FleetView("edge")
    view.apply("edge/pi-2/status", status(990.0))
    view.apply("edge/pi-1/availability", b"online")
    view.apply("edge/pi-1/status", status(995.0, "degraded"))
    view.apply("edge/pi-2/availability", b"offline")
    rows = view.rows()
    assert [(r.device_id, r.online, r.state, r.model, r.version) for r in rows] == [
        ("pi-1", True, "degraded", "digits", "3"),
        ("pi-2", False, "running", "digits", "3"),
    ]


def test_a_hostile_status_payload_is_reported_not_raised_and_keeps_the_last_good_one() -> None:
    view = FleetView("edge")
    view.apply("edge/pi-1/status", status())
    view.apply("edge/pi-1/status", b'{"v":1,"ts":1,"ts":2}')
    row = view.row("pi-1")
    assert row is not None
    assert row.state == "running"
    assert row.problem == "bad status: status: duplicate JSON key 'ts'"


def test_cleared_retained_topics_remove_the_device() -> None:
    view = FleetView("edge")
    view.apply("edge/pi-1/status", status())
    view.apply("edge/pi-1/availability", b"online")
    view.apply("edge/pi-1/status", b"")
    view.apply("edge/pi-1/availability", b"")
    assert view.rows() == []


def test_table_is_aligned_with_online_state_model_and_age() -> None:
    view = FleetView("edge")
    view.apply("edge/pi-1/availability", b"online")
    view.apply("edge/pi-1/status", status(1000.0))
    view.apply("edge/camera-long-name/availability", b"offline")
    table = render_table(view.rows(), now=1125.0)
    assert table.splitlines() == [
        "DEVICE            ONLINE  STATE    MODEL   VERSION  UPDATE  LAST SEEN",
        "camera-long-name  no      -        -       -        -       -",
        "pi-1              yes     running  digits  3        -       2m ago",
    ]


def test_table_shows_update_progress_as_the_issue_spells_it() -> None:
    view = FleetView("edge")
    update = UpdateStatus(state="downloading", bundle="ab" * 16, blocks_held=5, blocks=16)
    view.apply("edge/pi-1/status", StatusMessage(ts=1.0, state="running", update=update).to_json())
    view.apply(
        "edge/pi-2/status",
        StatusMessage(
            ts=1.0, state="running", update=UpdateStatus(state="rejected", reason="no_space")
        ).to_json(),
    )
    rows = view.rows()
    assert [r.update for r in rows] == ["downloading (5 of 16)", "rejected:no_space"]


def test_rows_serialise_to_json_with_the_full_status() -> None:
    view = FleetView("edge")
    view.apply("edge/pi-1/status", status())
    (row,) = view.rows()
    obj = json.loads(json.dumps(row.to_obj()))
    assert obj["device"] == "pi-1"
    assert obj["online"] is None
    assert obj["model"] == {"name": "digits", "version": "3", "sha256": "ab" * 32}
    assert obj["status"]["state"] == "running"


def test_age_text_uses_the_largest_unit() -> None:
    assert [age_text(s) for s in (-5, 0.5, 59, 60, 3599, 3600, 86400 * 3)] == [
        "now",
        "now",
        "59s ago",
        "1m ago",
        "59m ago",
        "1h ago",
        "3d ago",
    ]


def test_one_broker_takes_the_last_status_even_if_its_clock_went_back() -> None:
    view = FleetView("edge")
    view.apply("edge/pi-1/status", status(1000.0, "running"))
    view.apply("edge/pi-1/status", status(900.0, "degraded"))
    row = view.row("pi-1")
    assert row is not None
    assert row.state == "degraded"


def test_merged_from_cluster_nodes_the_newest_status_wins_in_any_order() -> None:
    for order in ((1000.0, 900.0), (900.0, 1000.0)):
        view = FleetView("edge", newest_status=True)
        for ts in order:
            view.apply("edge/pi-1/status", status(ts, "running" if ts == 1000.0 else "degraded"))
        row = view.row("pi-1")
        assert row is not None
        assert (row.state, row.last_seen) == ("running", 1000.0)


def test_merged_from_cluster_nodes_a_retained_offline_left_on_an_old_node_loses_to_online() -> None:
    view = FleetView("edge", newest_status=True)
    view.apply("edge/pi-1/availability", b"online", retained=True)
    view.apply("edge/pi-1/availability", b"offline", retained=True)  # the will, on the old node
    assert (row := view.row("pi-1")) is not None
    assert row.online is True
    view.apply("edge/pi-1/availability", b"offline")  # live: the device went away
    assert (row := view.row("pi-1")) is not None
    assert row.online is False
