"""Bundle benchmark: verify+decrypt throughput against raw ``cryptography`` AEAD throughput on
the same bytes (same cipher, same chunk size), and peak extra memory while decrypting.

Run: ``.venv/bin/python -m bench.bench_bundle`` (or ``python bench/bench_bundle.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import (
    BundleVerifier,
    DeviceIdentity,
    RecipientKey,
    Release,
    ReleaseState,
    TrustRoot,
    build_bundle,
    open_bundle,
)
from agent.bundle.crypto import TAG_SIZE, chunk_count, make_aead, stream_nonce
from agent.bundle.writer import DEFAULT_CHUNK_SIZE

MB = 1 << 20


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _raw_decrypt(cipher: str, key: bytes, ciphertext: bytes, plain_len: int, chunk: int) -> None:
    """The baseline: the same AEAD over the same chunks, into one buffer, nothing else."""
    aead = make_aead(cipher, key)
    out = memoryview(bytearray(plain_len))
    view = memoryview(ciphertext)
    count = chunk_count(plain_len, chunk)
    step = chunk + TAG_SIZE
    for i in range(count):
        part = view[i * step : (i + 1) * step]
        aead.decrypt_into(
            stream_nonce(i, i == count - 1), part, None, out[i * chunk : i * chunk + len(part) - 16]
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cipher", default="chacha20-poly1305")
    args = parser.parse_args(argv)
    size = args.size_mb * MB
    model = os.urandom(size)
    signer, device = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    payload_key = os.urandom(32)
    now = int(time.time())
    data = build_bundle(
        Release("bench", 1, now, cipher=args.cipher),
        {"model.tflite": model},
        [signer],
        [RecipientKey("bench-device", device.public_key())],
        random=lambda n: payload_key,
    )

    def verifier() -> BundleVerifier:
        return BundleVerifier(
            TrustRoot.from_keys([signer.public_key()]),
            DeviceIdentity("bench-device", device),
            ReleaseState(),
            now=now,
        )

    header_len = verifier().verify_header(data).header_length
    ciphertext = data[header_len:]
    chunk = DEFAULT_CHUNK_SIZE
    raw = _median_seconds(
        lambda: _raw_decrypt(args.cipher, payload_key, ciphertext, size, chunk), args.repeats
    )
    ours = _median_seconds(lambda: open_bundle(data, verifier()), args.repeats)
    sha = _median_seconds(lambda: hashlib.sha256(ciphertext).digest(), args.repeats)

    checker = verifier()
    checker.verify_header(data)
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    bundle = checker.decrypt(memoryview(data)[header_len:])
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    assert bytes(bundle.files["model.tflite"]) == model

    print(
        f"bundle benchmark: {args.size_mb} MB random model, {args.cipher}, "
        f"{chunk // 1024} KiB chunks"
    )
    print(f"  header {header_len} bytes, payload {len(ciphertext)} bytes, median of {args.repeats}")
    print(f"  raw AEAD decrypt:       {size / MB / raw:8.1f} MB/s ({raw * 1000:.1f} ms)")
    print(f"  verify+decrypt:         {size / MB / ours:8.1f} MB/s ({ours * 1000:.1f} ms)")
    print(f"  SHA-256 alone:          {size / MB / sha:8.1f} MB/s ({sha * 1000:.1f} ms)")
    print(f"  ratio verify+decrypt / raw AEAD: {raw / ours:.2f} (target >= 0.8)")
    bound = raw / (raw + 2 * sha)
    print(f"  bound with two SHA-256 passes (ciphertext, plaintext): {bound:.2f}")
    print(
        f"  peak extra memory while decrypting: {peak / MB:.2f} MB "
        f"(model {size / MB:.2f} MB + {(peak - size) / 1024:.0f} KiB; chunk {chunk // 1024} KiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
