"""A/B slots: which slot a bundle goes to, switching, rolling back, migrating current.edgepkg."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.bundle.container import MAGIC, PREFIX
from agent.errors import BundleRejected, ConfigError
from agent.model.slots import SlotState, SlotStore


def _bundle(payload: bytes) -> bytes:
    """The smallest thing shaped like a bundle: a prefix with an empty body, then a payload."""
    return PREFIX.pack(MAGIC, 0, 0, len(payload)) + payload


def test_the_first_bundle_goes_to_slot_a_and_the_next_to_the_other_slot() -> None:
    empty = SlotState()
    assert empty.inactive == "a"
    first = empty.activated("a")
    assert first == SlotState("a", None)
    assert first.inactive == "b"
    assert first.activated("b") == SlotState("b", "a")


def test_rolling_back_swaps_active_and_previous() -> None:
    state = SlotState("b", "a")
    assert state.rolled_back() == SlotState("a", "b")
    assert state.rolled_back().rolled_back() == state


def test_without_a_previous_slot_there_is_no_rollback() -> None:
    with pytest.raises(ValueError, match="no previous slot"):
        SlotState("a").rolled_back()


def test_invalid_slot_states_are_refused() -> None:
    with pytest.raises(ValueError, match="different slots"):
        SlotState("a", "a")
    with pytest.raises(ValueError, match="one of a, b"):
        SlotState("c")
    with pytest.raises(ValueError, match="needs an active"):
        SlotState(None, "a")


def test_the_store_writes_slots_and_commits_the_state(tmp_path: Path) -> None:
    store = SlotStore(tmp_path)
    assert store.load() == SlotState()
    store.write("a", _bundle(b"bundle one"))
    store.commit(SlotState("a"))
    assert store.load() == SlotState("a")
    assert store.read("a") == _bundle(b"bundle one")
    assert (store.path("a").stat().st_mode & 0o777) == 0o600


def test_a_legacy_current_edgepkg_is_migrated_to_slot_a(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "current.edgepkg").write_bytes(_bundle(b"old layout"))
    store = SlotStore(tmp_path)
    assert store.load() == SlotState("a")
    assert store.read("a") == _bundle(b"old layout")
    assert not (models / "current.edgepkg").exists()


def test_a_migration_interrupted_after_the_rename_completes_on_the_next_start(
    tmp_path: Path,
) -> None:
    store = SlotStore(tmp_path)
    store.write("a", b"renamed, but slots.json never written")
    assert store.load() == SlotState("a")


def test_a_corrupt_slots_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    store = SlotStore(tmp_path)
    store.write("a", b"x")
    store.state_path.write_bytes(b'{"active":"z","previous":null}')
    with pytest.raises(ConfigError, match=r"slots\.json is corrupt"):
        store.load()


def test_a_slot_longer_than_its_signed_prefix_says_is_refused_naming_both_lengths(
    tmp_path: Path,
) -> None:
    store = SlotStore(tmp_path)
    store.write("b", PREFIX.pack(MAGIC, 0, 0, 4) + bytes(64) + b"data")
    with pytest.raises(BundleRejected) as info:
        store.read("b")
    assert (info.value.code, info.value.reason) == (
        "malformed",
        "slot b holds 90 bytes; its signed prefix says 26 (header 22 + payload 4)",
    )
