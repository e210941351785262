"""Fuzzing the parsers of what the device persisted itself (a power cut or a bad SD card can
leave anything there): release counters, A/B slot state, the command ledger, a transfer's
bitmap. Each raises only ValueError (its callers turn that into a named error), quickly, in
bounded memory."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent.bundle.state import ReleaseState
from agent.model.slots import SlotState
from agent.update.commands import CommandLedger
from agent.update.transfer import Bitmap
from tests.support.fuzz import check_parser, fuzz_settings, json_bytes, outside_bytes

RELEASES = ReleaseState({"digits": 7, "other": 2}, 1_800_000_000).to_json()
SLOTS = SlotState("b", "a").to_json()
LEDGER = json.dumps(
    {"version": 1, "last": {"desired": {"seq": 1_800_000_000_000, "digest": "ab" * 32}}}
).encode()


def _bitmap(blocks: int) -> bytes:
    bitmap = Bitmap(blocks)
    for i in range(0, blocks, 3):
        bitmap.set(i)
    return bitmap.to_bytes()


@fuzz_settings
@given(outside_bytes([RELEASES]) | json_bytes(json.loads(RELEASES)))
def test_release_state_file_only_raises_value_error(data: bytes) -> None:
    check_parser(ReleaseState.from_json, data, (ValueError,))


@fuzz_settings
@given(outside_bytes([SLOTS], max_size=256) | json_bytes(json.loads(SLOTS)))
def test_slot_state_file_only_raises_value_error(data: bytes) -> None:
    check_parser(SlotState.from_json, data, (ValueError,))


@fuzz_settings
@given(outside_bytes([LEDGER]) | json_bytes(json.loads(LEDGER)))
def test_command_ledger_file_only_raises_value_error(data: bytes) -> None:
    check_parser(CommandLedger.from_json, data, (ValueError,))


@fuzz_settings
@given(st.integers(1, 300), st.data())
def test_transfer_bitmap_file_only_raises_value_error(blocks: int, data: st.DataObject) -> None:
    raw = data.draw(outside_bytes([_bitmap(blocks), _bitmap(blocks + 1)], max_size=128))
    check_parser(lambda d: Bitmap.from_bytes(d, blocks), raw, (ValueError,))
