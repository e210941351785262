"""What a device's status says about one bundle, and how progress is shown. Pure.

Only statuses that arrive live after the command was sent count (a retained status can be an
old attempt at the same bundle); the CLI applies those to its own :class:`FleetView`.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.mqtt.messages import UpdateStatus
from agent.reasons import Reason
from fleet.rollout import PENDING, DeviceOutcome, Outcome
from fleet.status import DeviceRow

# A device that already runs this release answers ``rejected:already_installed``: it is there.
_ALREADY = Reason.ALREADY_INSTALLED


def update_for(row: DeviceRow | None, bid: str) -> UpdateStatus | None:
    """The device's ``update`` object if it is about bundle ``bid``."""
    if row is None or row.status is None or row.status.update is None:
        return None
    update = row.status.update
    return update if update.bundle == bid else None


def install_outcome(row: DeviceRow | None, bid: str) -> DeviceOutcome:
    update = update_for(row, bid)
    if update is None:
        return PENDING
    if update.state == "installed" or (update.state == "rejected" and update.reason == _ALREADY):
        return DeviceOutcome(Outcome.INSTALLED)
    if update.state in ("rejected", "rolled_back"):
        detail = f" ({update.detail})" if update.detail else ""
        return DeviceOutcome(Outcome.FAILED, update.label + detail)
    return PENDING


def bar(done: int, total: int, width: int = 24) -> str:
    filled = width if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress_text(row: DeviceRow | None, bid: str, online: bool | None = None) -> str:
    """``[#####....] downloading (12 of 40) 2.1 MB/s`` or the outcome, for one device.

    ``row`` is the device's live status; ``online`` its last known availability."""
    update = update_for(row, bid)
    if update is None:
        if online is False:
            return "offline (gets the bundle when it reconnects)"
        return "waiting for the device"
    if update.state == "downloading":
        rate = f" {update.bytes_per_s / 1e6:.1f} MB/s" if update.bytes_per_s else ""
        return f"{bar(update.blocks_held, update.blocks)} {update.label}{rate}"
    outcome = install_outcome(row, bid)
    return outcome.reason if outcome.outcome is Outcome.FAILED else update.label


def board_lines(texts: Iterable[tuple[str, str]]) -> list[str]:
    """``device  text`` lines with the device ids aligned."""
    pairs = list(texts)
    width = max((len(d) for d, _ in pairs), default=0)
    return [f"{device.ljust(width)}  {text}" for device, text in pairs]
