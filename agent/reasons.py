"""Every reason code the device publishes, in one enum shared by the agent and ``edge-fleet``.

A code is the ``reason`` of the status ``update`` object (``rejected:<code>``,
``rolled_back:<code>``) and the ``code`` of an error (:mod:`agent.errors`). The values are the
wire format: never rename one. ``docs/mqtt-protocol.md`` lists each of them (a test checks).

Each code has a blame (:attr:`Reason.blame`), the question an operator asks first:

* ``bundle`` -- the bundle or signed command is bad; the same bytes are never retried;
* ``device`` -- the device could not take it (disk, I/O, its runtime); the bundle may be fine;
* ``transfer`` -- the download was too slow or the broker failed; retried later with backoff;
* ``rollback`` -- why a model that was installed was swapped back out;
* ``error`` -- the generic code of an error class (bad input, config, backend);
* ``fleet`` -- the fleet manager withdrew its command (an aborted or cancelled rollout).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Blame = Literal["bundle", "device", "transfer", "rollback", "error", "fleet"]


class Reason(StrEnum):
    # The bundle (or signed command) is bad: BundleRejected.
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    STREAM_TRUNCATED = "stream_truncated"
    DIGEST_MISMATCH = "digest_mismatch"
    SIGNATURE_INVALID = "signature_invalid"
    THRESHOLD_NOT_MET = "threshold_not_met"
    NOT_A_RECIPIENT = "not_a_recipient"
    WRONG_HARDWARE = "wrong_hardware"
    ROLLBACK = "rollback"
    ALREADY_INSTALLED = "already_installed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    CLOCK_BEHIND_FLOOR = "clock_behind_floor"
    WRONG_DEVICE = "wrong_device"
    REPLAYED = "replayed"
    HEADER_MISMATCH = "header_mismatch"
    OFFER_MISMATCH = "offer_mismatch"
    CANARY_MISSING = "canary_missing"
    CANARY_MALFORMED = "canary_malformed"
    CANARY_LOAD = "canary_load"
    CANARY_MISMATCH = "canary_mismatch"
    CANARY_LATENCY = "canary_latency"
    CANARY_TIMEOUT = "canary_timeout"
    CANARY_CRASH = "canary_crash"
    # The device could not take it: DeviceError.
    NO_SPACE = "no_space"
    IO_ERROR = "io_error"
    LOAD_FAILED = "load_failed"
    NO_PREVIOUS_SLOT = "no_previous_slot"
    ROOT_EXPIRED = "root_expired"
    # The transfer is retried later.
    DEADLINE = "deadline"
    TOO_SLOW = "too_slow"
    TRANSPORT = "transport"
    # Why an installed model was rolled back.
    NAN_OUTPUT = "nan_output"
    ERRORS = "errors"
    LATENCY = "latency"
    COMMAND = "command"
    # The generic codes of the error classes in agent.errors.
    ERROR = "error"
    BAD_INPUT = "bad_input"
    BAD_CONFIG = "bad_config"
    BACKEND = "backend"
    OUTBOX = "outbox"
    # The fleet cleared the retained desired command while it was being fetched.
    WITHDRAWN = "withdrawn"

    @property
    def blame(self) -> Blame:
        return _BLAME[self]


_NOT_THE_BUNDLE: dict[Blame, tuple[Reason, ...]] = {
    "device": (
        Reason.NO_SPACE,
        Reason.IO_ERROR,
        Reason.LOAD_FAILED,
        Reason.NO_PREVIOUS_SLOT,
        Reason.ROOT_EXPIRED,
    ),
    "transfer": (Reason.DEADLINE, Reason.TOO_SLOW, Reason.TRANSPORT),
    "rollback": (Reason.NAN_OUTPUT, Reason.ERRORS, Reason.LATENCY, Reason.COMMAND),
    "error": (Reason.ERROR, Reason.BAD_INPUT, Reason.BAD_CONFIG, Reason.BACKEND, Reason.OUTBOX),
    "fleet": (Reason.WITHDRAWN,),
}
_BUNDLE: Blame = "bundle"
_BLAME: dict[Reason, Blame] = dict.fromkeys(Reason, _BUNDLE) | {
    reason: blame for blame, reasons in _NOT_THE_BUNDLE.items() for reason in reasons
}
