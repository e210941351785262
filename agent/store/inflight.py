"""What the outbox has handed to the MQTT client and not yet seen acknowledged (pure, in memory).

A message token may carry several sequence numbers (a result batch). ``floor`` lets the outbox
read only rows it has not sent: every row up to it is in flight, because rows are only ever sent
as a prefix of what the outbox last offered (:meth:`InFlight.offer`). Anything else (a send out
of that order, a partial release) sets ``mixed`` until the window drains, and the outbox then
reads the in-flight rows again and skips them, as it did before there was a floor.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    topic: str
    payload: bytes
    created: float
    historical: bool


class InFlight:
    def __init__(self) -> None:
        self._sent: dict[int, tuple[int, float]] = {}  # seq -> (token, sent at), in send order
        self._by_token: dict[int, list[int]] = {}
        self.floor = 0
        self.mixed = False
        self._offered: list[int] = []

    def __contains__(self, seq: int) -> bool:
        return seq in self._sent

    @property
    def messages(self) -> int:
        return len(self._by_token)

    @property
    def seqs(self) -> int:
        return len(self._sent)

    def offer(self, seqs: list[int]) -> None:
        """The outbox offered these rows (the oldest above ``floor`` not in flight), in order."""
        self._offered = seqs

    def sent(self, seqs: list[int], token: int, at: float) -> None:
        for seq in seqs:
            self.forget(seq)
            self._sent[seq] = (token, at)
        self._by_token[token] = list(seqs)
        if self._offered[: len(seqs)] == seqs:
            self._offered = self._offered[len(seqs) :]
            self.floor = max(self.floor, seqs[-1])
        else:
            self.mixed = True

    def acked(self, tokens: list[int]) -> list[int]:
        """The sequence numbers these PUBACKs acknowledge (unknown tokens carry none)."""
        seqs = [seq for token in tokens for seq in self._by_token.pop(token, ())]
        for seq in seqs:
            self._sent.pop(seq, None)
        if not self._sent:
            self.mixed = False
        return seqs

    def stale(self, before: float) -> list[int]:
        """Sequence numbers sent before ``before``: the head of the send order."""
        out = []
        for seq, (_token, at) in self._sent.items():
            if at >= before:
                break
            out.append(seq)
        return out

    def release(self, seqs: list[int] | None = None) -> int:
        """Forget ``seqs`` (all when None): they will be offered again."""
        count = len(self._sent) if seqs is None else len(seqs)
        if seqs is None:
            self._sent.clear()
            self._by_token.clear()
        else:
            for seq in seqs:
                self.forget(seq)
        self.floor, self.mixed, self._offered = 0, bool(self._sent), []
        return count

    def forget(self, seq: int) -> None:
        entry = self._sent.pop(seq, None)
        if entry is not None:
            together = self._by_token.get(entry[0])
            if together is not None:
                together.remove(seq)
                if not together:
                    del self._by_token[entry[0]]


class Tail:
    """The committed rows not yet offered, kept in memory so a caught-up forwarder reads no SQL.

    Valid (``known``) only once a query reached the end of the table; anything that changes
    rows behind the outbox's back (a release, a drop, a backlog flag) or a tail longer than
    ``most`` makes it unknown again, and the outbox reads SQLite until it catches up."""

    def __init__(self, most: int = 4096) -> None:
        self.known = False
        self.items: list[OutboxItem] = []
        self._most = most

    def forget(self) -> None:
        self.known = False
        self.items = []

    def caught_up(self, items: list[OutboxItem]) -> None:
        """A query returned every offerable row: these."""
        self.known, self.items = True, items

    def committed(self, items: list[OutboxItem]) -> None:
        if self.known:
            self.items.extend(items)
            if len(self.items) > self._most:
                self.forget()

    def sent(self, seqs: list[int]) -> None:
        if self.known:
            if [item.seq for item in self.items[: len(seqs)]] == seqs:
                del self.items[: len(seqs)]
            else:
                self.forget()
