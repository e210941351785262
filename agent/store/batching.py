"""Pure decisions of the outbox's batching: when to group-commit, which runs to delete."""

from __future__ import annotations


def commit_due(pending: int, waited_s: float, gap_s: float, most: int, bound_s: float) -> bool:
    """Group commit: commit when ``most`` items are pending, when the oldest has waited
    ``bound_s``, or when results come slower than ``bound_s`` apart (waiting would only add
    latency: the next one is not about to arrive)."""
    return pending >= most or (pending > 0 and (waited_s >= bound_s or gap_s >= bound_s))


def ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Inclusive runs of consecutive numbers, sorted: [3, 1, 2, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        elif not runs or seq != runs[-1][1]:
            runs.append((seq, seq))
    return runs
