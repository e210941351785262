"""Property-based fuzzing helpers: mutations of valid inputs, and the "only documented errors,
no hang, bounded memory" check every parser of outside bytes must pass.

``FUZZ_EXAMPLES`` (environment) sets how many examples each fuzz test runs: 150 by default,
so ``make test`` runs a reduced form; ``make fuzz`` runs 5,000 per parser.
"""

from __future__ import annotations

import copy
import json
import os
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))

#: Settings for every fuzz test: generous deadline (a hang is seconds, not milliseconds, and the
#: machine is shared), no database writes outside the tree's .hypothesis directory.
fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Peak Python allocation a parser may make for a small hostile input.
DEFAULT_PEAK_BYTES = 8 << 20


def check_parser(
    parse: Callable[[bytes], object],
    data: bytes,
    documented: tuple[type[BaseException], ...],
    max_peak: int = DEFAULT_PEAK_BYTES,
) -> BaseException | None:
    """Run ``parse(data)``: it returns or raises one of ``documented`` (returned), and its peak
    traced allocation stays under ``max_peak``. Anything else propagates to fail the test."""
    tracemalloc.start()
    try:
        parse(data)
    except documented as exc:
        return exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= max_peak, f"parser peaked at {peak} bytes on {len(data)} input bytes"
    return None


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], max_edits: int = 8) -> bytes:
    """A valid seed with a few byte edits: flips, overwrites, truncation, insertion, repeats."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, max_edits))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "repeat", "extreme"]))
        at = draw(st.integers(0, len(data)))
        if op == "cut":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "repeat" and data:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        elif at < len(data):
            if op == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif op == "set":
                data[at] = draw(st.integers(0, 255))
            else:  # "extreme": a length or count field set to its maximum
                data[at : at + 4] = b"\xff\xff\xff\xff"
    return bytes(data)


def outside_bytes(seeds: Sequence[bytes], max_size: int = 2048) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or mutations of valid ``seeds`` (which reach deeper into a parser)."""
    return st.one_of(st.binary(max_size=max_size), mutated(seeds))


JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=24),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def json_variants(draw: st.DrawFn, valid: Any, max_edits: int = 3) -> Any:
    """``valid`` (a JSON document) with a few values replaced, keys removed or added."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, max_edits))):
        parent, key = _pick(draw, doc)
        if parent is None:
            return draw(JSON_VALUES)
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace" or isinstance(parent, list):
            parent[key] = draw(JSON_VALUES)
        elif op == "delete":
            del parent[key]
        else:
            parent[draw(st.text(max_size=12))] = draw(JSON_VALUES)
    return doc


def _pick(draw: st.DrawFn, doc: Any) -> tuple[Any, Any]:
    """A (container, key) somewhere inside ``doc``, chosen by walking down at random."""
    parent: Any = None
    key: Any = None
    node = doc
    while isinstance(node, dict | list) and node:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, draw(st.sampled_from(keys))
        node = node[key]
        if draw(st.booleans()):
            break
    return parent, key


def json_bytes(valid: Any) -> st.SearchStrategy[bytes]:
    """Serialized variants of ``valid`` (NaN/Infinity allowed, as hostile senders would)."""
    return json_variants(valid).map(lambda doc: json.dumps(doc).encode())
