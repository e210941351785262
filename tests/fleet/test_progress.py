"""What a device's live status says about one bundle, and the progress text shown for it."""

from __future__ import annotations

from typing import Any

from agent.mqtt.messages import StatusMessage, UpdateStatus
from fleet.progress import bar, board_lines, install_outcome, progress_text
from fleet.rollout import Outcome
from fleet.status import DeviceRow

BID = "0123456789abcdef0123456789abcdef"


def row(**update: Any) -> DeviceRow:
    fields: dict[str, Any] = {"bundle": BID, "name": "digits", "counter": 2, **update}
    return DeviceRow(
        "pi-1", True, StatusMessage(ts=1.0, state="running", update=UpdateStatus(**fields))
    )


def test_installed_and_already_installed_count_as_installed() -> None:
    assert install_outcome(row(state="installed"), BID).outcome is Outcome.INSTALLED
    already = row(state="rejected", reason="already_installed")
    assert install_outcome(already, BID).outcome is Outcome.INSTALLED


def test_rejections_and_rollbacks_fail_with_the_label_and_detail() -> None:
    outcome = install_outcome(
        row(state="rejected", reason="canary_mismatch", detail="top-1 differs"), BID
    )
    assert (outcome.outcome, outcome.reason) == (
        Outcome.FAILED,
        "rejected:canary_mismatch (top-1 differs)",
    )
    rolled = install_outcome(row(state="rolled_back", reason="nan_outputs"), BID)
    assert (rolled.outcome, rolled.reason) == (Outcome.FAILED, "rolled_back:nan_outputs")


def test_a_status_about_another_bundle_or_without_update_is_pending() -> None:
    other = row(state="installed", bundle="f" * 32)
    assert install_outcome(other, BID).outcome is Outcome.PENDING
    assert install_outcome(DeviceRow("pi-1", True), BID).outcome is Outcome.PENDING
    assert install_outcome(None, BID).outcome is Outcome.PENDING


def test_progress_text_shows_a_bar_while_downloading() -> None:
    text = progress_text(
        row(state="downloading", blocks_held=10, blocks=40, bytes_per_s=2_500_000), BID
    )
    assert text == "[######..................] downloading (10 of 40) 2.5 MB/s"


def test_progress_text_names_offline_devices_and_outcomes() -> None:
    assert progress_text(None, BID, online=False).startswith("offline")
    assert progress_text(None, BID, online=True) == "waiting for the device"
    assert progress_text(row(state="canary"), BID) == "canary"
    assert progress_text(row(state="rejected", reason="no_space"), BID) == "rejected:no_space"


def test_bar_and_board_lines() -> None:
    assert bar(0, 4, width=4) == "[....]"
    assert bar(4, 4, width=4) == "[####]"
    assert bar(1, 0, width=4) == "[####]"
    assert board_lines([("a", "x"), ("long-id", "y")]) == ["a        x", "long-id  y"]
