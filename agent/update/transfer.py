"""The block transfer as a pure state machine: what to ask for, progress, when to give up.

No sockets, no files, no clock: every method that needs the time takes ``now`` (monotonic
seconds). The adapter (:mod:`agent.update.updater`) subscribes to the block topics this object
asks for, feeds it what arrives and whether the block verified, and persists the bitmap.

* **Window.** At most ``window`` blocks are requested (subscribed) at a time.
* **Bad blocks.** A block that fails its hash is asked for again after a jittered backoff, so a
  corrupt retained copy does not turn into a hot loop.
* **Deadline.** A transfer not done ``deadline_s`` after it started is ``deadline``.
* **Watermark.** Fewer than ``min_bytes_per_s`` over the last ``rate_window_s`` is ``too_slow``;
  the rate is only judged once the transfer (or its resume after a reconnect) has run for a
  whole rate window.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from agent.backoff import Backoff
from agent.errors import BundleRejected
from agent.reasons import Reason

_BITMAP_MAGIC = b"EDGEBMP1"
_BITMAP_HEAD = struct.Struct(">8sI")


class Bitmap:
    """One bit per block: set when the block is held (verified and written)."""

    def __init__(self, size: int, bits: bytes | None = None) -> None:
        if size < 0:
            raise ValueError("a bitmap needs a non-negative size")
        self.size = size
        self._bits = bytearray(bits) if bits is not None else bytearray((size + 7) // 8)
        if len(self._bits) != (size + 7) // 8:
            raise ValueError(f"{len(self._bits)} bitmap bytes do not fit {size} blocks")
        self._count = sum(1 for i in range(size) if self.has(i))

    def has(self, index: int) -> bool:
        return bool(self._bits[index >> 3] & (1 << (index & 7)))

    def set(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"block {index} is outside 0..{self.size - 1}")
        if not self.has(index):
            self._bits[index >> 3] |= 1 << (index & 7)
            self._count += 1

    @property
    def count(self) -> int:
        return self._count

    @property
    def complete(self) -> bool:
        return self._count == self.size

    def held(self) -> list[int]:
        return [i for i in range(self.size) if self.has(i)]

    def missing(self) -> list[int]:
        return [i for i in range(self.size) if not self.has(i)]

    def to_bytes(self) -> bytes:
        return _BITMAP_HEAD.pack(_BITMAP_MAGIC, self.size) + bytes(self._bits)

    @classmethod
    def from_bytes(cls, data: bytes, size: int) -> Bitmap:
        """A saved bitmap for ``size`` blocks. Raises ``ValueError`` if it is not one."""
        if len(data) != _BITMAP_HEAD.size + (size + 7) // 8:
            raise ValueError(f"bitmap file is {len(data)} bytes, not one for {size} blocks")
        magic, saved = _BITMAP_HEAD.unpack_from(data)
        if magic != _BITMAP_MAGIC or saved != size:
            raise ValueError(f"bitmap file is not one for {size} blocks")
        bits = data[_BITMAP_HEAD.size :]
        spare = size & 7
        if spare and bits[-1] >> spare:
            raise ValueError("bitmap file sets bits past the last block")
        return cls(size, bits)


@dataclass(frozen=True)
class TransferLimits:
    window: int = 8
    deadline_s: float = 3600.0
    min_bytes_per_s: float = 1024.0
    rate_window_s: float = 30.0

    def __post_init__(self) -> None:
        if self.window < 1 or self.deadline_s <= 0 or self.rate_window_s <= 0:
            raise ValueError("transfer limits need window >= 1 and positive durations")


class Transfer:
    """Blocks of one payload: requested, held, to retry; progress and the give-up decisions."""

    def __init__(
        self,
        held: Bitmap,
        block_sizes: list[int],
        limits: TransferLimits,
        now: float,
        backoff: Backoff | None = None,
    ) -> None:
        if len(block_sizes) != held.size:
            raise ValueError("one block size per bitmap bit")
        self.held = held
        self.limits = limits
        self._sizes = block_sizes
        self._outstanding: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._backoff = backoff or Backoff(base=0.5, max_delay=10.0)
        self._started = now
        self._resumed = now
        self._arrivals: deque[tuple[float, int]] = deque()
        self.requested = 0
        self.bad_blocks = 0

    @property
    def complete(self) -> bool:
        return self.held.complete

    @property
    def outstanding(self) -> frozenset[int]:
        return frozenset(self._outstanding)

    def requests(self, now: float) -> list[int]:
        """Blocks to subscribe to now: missing, not outstanding, not waiting for a retry."""
        room = self.limits.window - len(self._outstanding)
        chosen: list[int] = []
        if room <= 0:
            return chosen
        for index in range(self.held.size):
            if len(chosen) == room:
                break
            if self.held.has(index) or index in self._outstanding:
                continue
            if self._retry_at.get(index, now) > now:
                continue
            chosen.append(index)
        for index in chosen:
            self._outstanding.add(index)
            self._retry_at.pop(index, None)
        self.requested += len(chosen)
        return chosen

    def next_retry(self) -> float | None:
        """When the earliest bad block may be asked for again, if any waits."""
        return min(self._retry_at.values(), default=None)

    def is_expected(self, index: int) -> bool:
        """Whether a message for ``index`` is one we asked for and do not hold yet."""
        return index in self._outstanding and not self.held.has(index)

    def arrived(self, index: int, now: float) -> None:
        """Block ``index`` verified and was written: hold it (the adapter unsubscribes it)."""
        if not self.is_expected(index):
            raise ValueError(f"block {index} was not requested or is already held")
        self._outstanding.discard(index)
        self.held.set(index)
        self._arrivals.append((now, self._sizes[index]))
        self._trim(now)

    def corrupt(self, index: int, now: float) -> float:
        """Block ``index`` failed its hash: count it, ask again after the returned delay."""
        if not self.is_expected(index):
            raise ValueError(f"block {index} was not requested or is already held")
        self._outstanding.discard(index)
        self.bad_blocks += 1
        delay = self._backoff.next_delay()
        self._retry_at[index] = now + delay
        return delay

    def resumed(self, now: float) -> None:
        """The connection came back: the throughput watermark starts a fresh grace period."""
        self._resumed = now
        self._arrivals.clear()

    def bytes_per_s(self, now: float) -> float:
        self._trim(now)
        span = min(self.limits.rate_window_s, max(now - self._resumed, 1e-3))
        return sum(size for _, size in self._arrivals) / span

    def verdict(self, now: float) -> str | None:
        """``deadline`` or ``too_slow`` when the transfer should be abandoned, else ``None``."""
        if self.complete:
            return None
        if now - self._started > self.limits.deadline_s:
            return Reason.DEADLINE
        if now - self._resumed >= self.limits.rate_window_s and (
            self.bytes_per_s(now) < self.limits.min_bytes_per_s
        ):
            return Reason.TOO_SLOW
        return None

    def _trim(self, now: float) -> None:
        horizon = now - self.limits.rate_window_s
        while self._arrivals and self._arrivals[0][0] < horizon:
            self._arrivals.popleft()


def block_sizes(length: int, block_size: int) -> list[int]:
    """The size of every block of a payload of ``length`` bytes."""
    return [min(block_size, length - start) for start in range(0, length, block_size)]


BLOCK_PACKET_OVERHEAD = 1024  # fixed header, topic and properties of a block PUBLISH


def check_block_fits(block_size: int, max_packet_bytes: int) -> None:
    """Refuse (``too_large``) a bundle whose blocks this device would never receive."""
    if block_size + BLOCK_PACKET_OVERHEAD > max_packet_bytes:
        raise BundleRejected(
            Reason.TOO_LARGE,
            f"blocks are {block_size} bytes; this device accepts MQTT packets of at most "
            f"{max_packet_bytes} bytes (mqtt.max_packet_bytes)",
        )
