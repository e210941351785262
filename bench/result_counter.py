"""An independent subscriber that counts results, not messages: ``python -m bench.result_counter``.

Runs ``mosquitto_sub`` (C) on the results topic and counts, per message line, the result
objects it carries: one for a single result, the length of the list for a batch
(docs/mqtt-protocol.md, "Result batches"). Counting is a byte count of ``"v":`` keys (every
result object has one; a batch adds one more), so this process costs little CPU next to the
publisher it measures. Prints ``{"count", "messages", "first", "last"}`` (``time.monotonic()``,
comparable across processes on Linux) and exits once ``--count`` results arrived, or after
``--idle`` seconds without a message once at least one arrived.

    python -m bench.result_counter --host H --port P --topic T [--count N] [--idle S]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence

_BATCH = b'{"v":1,"batch":['


def results_in_line(line: bytes) -> int:
    """Result objects in one message as ``mosquitto_sub`` prints it (compact JSON, no newline)."""
    return line.count(b'"v":') - (1 if line.startswith(_BATCH) else 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=0, help="stop after this many results")
    parser.add_argument("--idle", type=float, default=2.0, help="stop after this long idle")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", args.host, "-p", str(args.port), "-q", "1", "-t", args.topic],
        stdout=subprocess.PIPE,
    )
    assert sub.stdout is not None
    fd = sub.stdout.fileno()
    count = messages = 0
    first = last = 0.0
    deadline = time.monotonic() + args.timeout
    buffered = b""
    try:
        while time.monotonic() < deadline and not (args.count and count >= args.count):
            ready, _, _ = select.select([fd], [], [], args.idle if count else 1.0)
            if not ready:
                if count:
                    break
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            now = time.monotonic()
            *lines, buffered = (buffered + chunk).split(b"\n")
            for line in lines:
                count += results_in_line(line)
                messages += 1
            if lines:
                first = first or now
                last = now
    finally:
        sub.kill()
        sub.wait(5)
    json.dump({"count": count, "messages": messages, "first": first, "last": last}, sys.stdout)
    print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
