"""The encrypted payload: per-block hashes before decryption, the chunked stream, the ciphers."""

from __future__ import annotations

import random

import pytest

import agent.bundle.verify as verify_module
from agent.bundle import RecipientKey, check_block, open_bundle
from agent.bundle.container import Limits, parse_header
from agent.bundle.crypto import (
    StreamError,
    decrypt_stream_into,
    encrypt_stream,
    make_aead,
    stream_nonce,
)
from agent.errors import BundleRejected
from tests.bundle.world import MODEL, Calls, World, flip


def _split(data: bytes) -> tuple[bytes, bytes]:
    length = parse_header(data, Limits()).prefix.header_length
    return data[:length], data[length:]


def test_hundred_random_payload_flips_are_rejected_before_any_decryption(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    unwraps: list[str] = []
    real_unwrap = verify_module.unwrap_payload_key

    def counting_unwrap(*args: object) -> bytes | None:
        unwraps.append("unwrap")
        return real_unwrap(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_module, "unwrap_payload_key", counting_unwrap)
    data = world.bundle()
    header, payload = _split(data)
    rng = random.Random(20261121)
    calls = Calls()
    for _ in range(100):
        index = len(header) + rng.randrange(len(payload))
        with pytest.raises(BundleRejected) as info:
            open_bundle(flip(data, index, rng.randrange(1, 256)), world.verifier(calls=calls))
        assert info.value.code == "digest_mismatch"
        assert "SHA-256 differs from the manifest" in info.value.reason
    assert calls.parses == 100  # the signed manifest, after its signatures verified
    assert (calls.decryptions, len(unwraps)) == (0, 0)


def test_manifest_of_release_a_with_payload_of_release_b_is_digest_mismatch(
    world: World, calls: Calls
) -> None:
    header_a, _ = _split(world.bundle(counter=7))
    _, payload_b = _split(world.bundle(counter=7))
    with pytest.raises(BundleRejected) as info:
        open_bundle(header_a + payload_b, world.verifier(calls=calls))
    assert info.value.code == "digest_mismatch"
    assert info.value.reason == "block 0 SHA-256 differs from the manifest"
    assert calls.decryptions == 0


def test_truncated_payload_is_stream_truncated(world: World, calls: Calls) -> None:
    data = world.bundle()
    with pytest.raises(BundleRejected) as info:
        open_bundle(data[:-1], world.verifier(calls=calls))
    assert info.value.code == "stream_truncated"
    assert calls.decryptions == 0


def test_appended_bytes_are_refused_by_the_signed_length(world: World) -> None:
    data = world.bundle()
    with pytest.raises(BundleRejected) as info:
        open_bundle(data + b"\x00", world.verifier())
    assert (info.value.code, info.value.reason) == (
        "malformed",
        f"bundle is {len(data) + 1} bytes, 1 more than the {len(data)} its signed prefix says",
    )


def test_a_header_with_trailing_bytes_is_refused_before_its_signatures(world: World) -> None:
    data = world.bundle()
    header, _ = _split(data)
    with pytest.raises(BundleRejected) as info:
        world.verifier().verify_header(header + bytes(64))
    assert (info.value.code, info.value.reason) == (
        "malformed",
        f"64 bytes follow the {len(header)}-byte header; the signed prefix says the header is "
        f"exactly {len(header)} bytes and the bundle exactly {len(data)}",
    )


def test_header_garbage_payload_is_not_a_bundle(world: World) -> None:
    data = world.bundle()
    header, _ = _split(data)
    with pytest.raises(BundleRejected) as info:
        open_bundle(header + bytes(64) + data[len(header) :], world.verifier())
    assert info.value.code == "malformed"
    assert info.value.reason.endswith(f"64 more than the {len(data)} its signed prefix says")


def test_blocks_verify_one_by_one_as_they_arrive(world: World) -> None:
    header, payload = _split(world.bundle())
    verifier = world.verifier()
    verified = verifier.verify_header(header)
    size = verified.manifest.payload.block_size
    blocks = [payload[i : i + size] for i in range(0, len(payload), size)]
    assert len(blocks) == 4
    for index, block in enumerate(blocks):
        check_block(verified, index, block)
    with pytest.raises(BundleRejected) as info:
        check_block(verified, 2, flip(blocks[2], 5))
    assert (info.value.code, info.value.reason) == (
        "digest_mismatch",
        "block 2 SHA-256 differs from the manifest",
    )
    bundle = verifier.decrypt(b"".join(blocks))
    assert bytes(bundle.files["model.tflite"]) == MODEL


def test_decrypt_before_verify_raises_runtime_error(world: World) -> None:
    _, payload = _split(world.bundle())
    verifier = world.verifier()
    with pytest.raises(RuntimeError, match="verify_header"):
        verifier.decrypt(payload)
    with pytest.raises(RuntimeError, match="verify_header"):
        verifier.check_block(0, payload[:10])


def test_aes_256_gcm_bundle_round_trips(world: World) -> None:
    data = world.bundle(cipher="aes-256-gcm")
    bundle = open_bundle(data, world.verifier())
    assert bundle.verified.manifest.payload.cipher == "aes-256-gcm"
    assert bytes(bundle.files["model.tflite"]) == MODEL


def test_decrypted_files_are_read_only_views(world: World) -> None:
    bundle = open_bundle(world.bundle(), world.verifier())
    view = bundle.files["model.tflite"]
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 1  # type: ignore[index]


def test_group_key_recipient_can_open_the_bundle(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from agent.bundle import DeviceIdentity

    group = X25519PrivateKey.generate()
    data = world.bundle(recipients=[RecipientKey("group:lab", group.public_key())])
    device = DeviceIdentity("device-b", world.device_b, "rpi4", {"group:lab": group})
    bundle = open_bundle(data, world.verifier(device=device))
    assert bundle.verified.recipient.recipient_id == "group:lab"


CHUNK = 1024


def _stream(plaintext: bytes) -> tuple[bytes, bytes]:
    key = bytes(range(32))
    return key, encrypt_stream(make_aead("chacha20-poly1305", key), plaintext, CHUNK)


def _decrypt(key: bytes, ciphertext: bytes, length: int) -> bytes:
    out = bytearray(length)
    decrypt_stream_into(make_aead("chacha20-poly1305", key), ciphertext, CHUNK, memoryview(out))
    return bytes(out)


def test_stream_round_trips_including_empty_and_exact_multiples() -> None:
    for length in (0, 1, CHUNK, 3 * CHUNK, 3 * CHUNK + 7):
        plaintext = bytes(i % 251 for i in range(length))
        key, ciphertext = _stream(plaintext)
        assert _decrypt(key, ciphertext, length) == plaintext


def test_stream_cut_at_a_chunk_boundary_is_detected_as_truncation() -> None:
    key, ciphertext = _stream(bytes(3 * CHUNK))
    step = CHUNK + 16
    with pytest.raises(StreamError) as info:
        _decrypt(key, ciphertext[: 2 * step], 2 * CHUNK)
    assert info.value.truncated
    assert str(info.value) == "stream ends after chunk 1 without its final chunk"


def test_stream_with_reordered_chunks_fails() -> None:
    key, ciphertext = _stream(bytes(3 * CHUNK))
    step = CHUNK + 16
    swapped = ciphertext[step : 2 * step] + ciphertext[:step] + ciphertext[2 * step :]
    with pytest.raises(StreamError) as info:
        _decrypt(key, swapped, 3 * CHUNK)
    assert not info.value.truncated
    assert str(info.value) == "chunk 0 does not authenticate"


def test_stream_with_an_appended_chunk_fails() -> None:
    key, ciphertext = _stream(bytes(2 * CHUNK))
    extra = make_aead("chacha20-poly1305", key).encrypt(stream_nonce(2, True), bytes(CHUNK), None)
    with pytest.raises(StreamError) as info:
        _decrypt(key, ciphertext + extra, 3 * CHUNK)
    assert str(info.value) == "chunk 1 does not authenticate"
