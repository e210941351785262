"""Who, where, which release and when: recipient, hardware, counters, expiry, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import DeviceIdentity, Limits, ReleaseState, StateStore, open_bundle
from agent.bundle.container import PREFIX, parse_header
from agent.errors import BundleRejected
from tests.bundle.world import NOW, Calls, World


def _code(world: World, data: bytes, **kwargs: object) -> tuple[str, str]:
    with pytest.raises(BundleRejected) as info:
        open_bundle(data, world.verifier(**kwargs))  # type: ignore[arg-type]
    return info.value.code, info.value.reason


def test_bundle_for_device_a_given_to_device_b_is_not_a_recipient(world: World) -> None:
    device_b = DeviceIdentity("device-b", world.device_b, "rpi4")
    assert _code(world, world.bundle(), device=device_b) == (
        "not_a_recipient",
        "bundle is not encrypted for device 'device-b'",
    )


def test_device_b_claiming_device_a_id_cannot_unwrap_the_key(world: World, calls: Calls) -> None:
    impostor = DeviceIdentity("device-a", world.device_b, "rpi4")
    code, _ = _code(world, world.bundle(), device=impostor, calls=calls)
    assert code == "not_a_recipient"
    assert calls.decryptions == 0


def test_wrong_hardware_id_is_rejected(world: World) -> None:
    data = world.bundle(hardware=("coral-devboard",))
    assert _code(world, data) == (
        "wrong_hardware",
        "bundle is for hardware coral-devboard; this device is rpi4",
    )


def test_bundle_without_hardware_list_runs_anywhere(world: World) -> None:
    bundle = open_bundle(world.bundle(hardware=()), world.verifier())
    assert bundle.verified.manifest.hardware == ()


def test_rollback_to_lower_counter_is_rejected(world: World) -> None:
    state = ReleaseState().installed("digits", 6, NOW - 100)
    assert _code(world, world.bundle(counter=5), state=state) == (
        "rollback",
        "digits release 5 is older than installed 6",
    )


def test_equal_counter_is_already_installed(world: World) -> None:
    state = ReleaseState().installed("digits", 5, NOW - 100)
    assert _code(world, world.bundle(counter=5), state=state)[0] == "already_installed"


def test_reopening_the_installed_release_accepts_its_counter_but_not_a_lower_one(
    world: World,
) -> None:
    state = ReleaseState().installed("digits", 5, NOW - 100)
    bundle = open_bundle(
        world.bundle(counter=5), world.verifier(state=state, reopen_installed=True)
    )
    assert bundle.verified.manifest.counter == 5
    code, _ = _code(world, world.bundle(counter=4), state=state, reopen_installed=True)
    assert code == "rollback"


def test_counters_are_per_model_name(world: World) -> None:
    state = ReleaseState().installed("faces", 50, NOW - 100)
    bundle = open_bundle(world.bundle(counter=5), world.verifier(state=state))
    assert bundle.verified.manifest.counter == 5


def test_rollback_is_rejected_after_a_restart(world: World, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    bundle = open_bundle(world.bundle(counter=8), world.verifier(state=store.load()))
    store.record_installed(bundle)
    reloaded = StateStore(tmp_path).load()  # a fresh process reading the same directory
    assert reloaded.highest("digits") == 8
    assert _code(world, world.bundle(counter=7), state=reloaded)[0] == "rollback"
    assert _code(world, world.bundle(counter=8), state=reloaded)[0] == "already_installed"
    assert (tmp_path / "bundle-state.json").stat().st_mode & 0o777 == 0o600


def test_installing_raises_the_time_floor_to_the_signed_creation_time(world: World) -> None:
    state = ReleaseState(time_floor=10).installed("digits", 5, NOW - 60)
    assert state.time_floor == NOW - 60
    assert state.installed("digits", 4, 5).time_floor == NOW - 60


def test_expired_bundle_is_rejected(world: World) -> None:
    data = world.bundle(expires=NOW - 1)
    assert _code(world, data) == ("expired", f"bundle expired at {NOW - 1}")


def test_clock_set_back_behind_the_floor_does_not_revive_an_expired_bundle(world: World) -> None:
    data = world.bundle(created=NOW - 7200, expires=NOW)
    state = ReleaseState(time_floor=NOW + 10)
    code, reason = _code(world, data, state=state, now=NOW - 3600)
    assert code == "clock_behind_floor"
    assert reason.startswith(f"wall clock {NOW - 3600} is behind the time floor {NOW + 10}")
    assert open_bundle(data, world.verifier(now=NOW - 3600)).verified.manifest.expires == NOW


def test_oversize_header_is_too_large_before_parsing(world: World, calls: Calls) -> None:
    data = world.bundle()
    limits = Limits(max_header=parse_header(data, Limits()).prefix.header_length - 1)
    code, _ = _code(world, data, limits=limits, calls=calls)
    assert code == "too_large"
    assert calls.parses == 0


def test_oversize_payload_is_too_large_before_parsing(world: World, calls: Calls) -> None:
    data = world.bundle()
    limits = Limits(max_payload=parse_header(data, Limits()).prefix.payload_length - 1)
    code, reason = _code(world, data, limits=limits, calls=calls)
    assert code == "too_large"
    assert reason.startswith("payload is ")
    assert calls.parses == 0


def test_payload_length_claimed_in_the_prefix_is_capped(world: World, calls: Calls) -> None:
    data = bytearray(world.bundle())
    magic, body, sigs, _ = PREFIX.unpack_from(data)
    PREFIX.pack_into(data, 0, magic, body, sigs, 1 << 40)
    code, _ = _code(world, bytes(data), calls=calls)
    assert code == "too_large"
    assert calls.parses == 0


def test_too_many_recipients_is_too_large(world: World) -> None:
    from agent.bundle import RecipientKey

    recipients = [
        RecipientKey(f"device-{i}", X25519PrivateKey.generate().public_key()) for i in range(5)
    ]
    data = world.bundle(recipients=recipients)
    assert _code(world, data, limits=Limits(max_recipients=4)) == (
        "too_large",
        "5 recipients, limit is 4",
    )


def test_too_many_signatures_is_too_large(world: World) -> None:
    data = world.bundle(signers=world.release[:3])
    assert _code(world, data, limits=Limits(max_signatures=2)) == (
        "too_large",
        "3 signatures, limit is 2",
    )


def test_state_file_survives_a_round_trip_and_rejects_corruption(tmp_path: Path) -> None:
    from agent.errors import ConfigError

    store = StateStore(tmp_path)
    store.save(ReleaseState().installed("digits", 3, 1234))
    assert StateStore(tmp_path).load() == ReleaseState().installed("digits", 3, 1234)
    (tmp_path / "bundle-state.json").write_bytes(b'{"version":1,"version":1}')
    with pytest.raises(ConfigError, match="corrupt"):
        store.load()
