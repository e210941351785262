"""Soak: the real agent on a looping video for N minutes with periodic broker kills and model
pushes; its RSS is sampled every few seconds and must not grow by 5 MB or more after the warm-up.

    make soak MINUTES=30            # python -m bench.soak --minutes 30
    python -m bench.soak --minutes 2 --restart-every 30

Writes ``summary.json``, ``summary.md`` and ``rss.png`` (RSS over time) under ``--out``
(default ``bench/out/soak``). Growth is the median RSS of the last ``--window`` seconds minus the
median of the first ``--window`` seconds after the warm-up, so a single spike does not decide it.
Every ``--push-every`` seconds a new release of the model (counter + 1) is pushed the way
``edge-fleet push`` does it (retained header and blocks, a signed desired command); the agent
downloads, verifies, canaries and swaps it while it keeps serving.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.mqtt.batch import results_in
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import get_converted_model
from tests.update.harness import Publisher, UpdateWorld

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 5.0


@dataclass
class SoakResult:
    minutes: float
    warmup_s: float
    window_s: float
    broker_kills: int
    pushes: int
    last_version_served: int
    results: int
    contiguous: int
    duplicates: int
    rss_baseline_mb: float
    rss_final_mb: float
    rss_max_after_warmup_mb: float
    samples: list[tuple[float, float]] = field(default_factory=list)  # (s, RSS MB)
    alive: bool = True

    @property
    def growth_mb(self) -> float:
        return self.rss_final_mb - self.rss_baseline_mb

    @property
    def met(self) -> bool:
        return (
            self.alive
            and self.growth_mb < LIMIT_MB
            and self.contiguous == self.results
            and self.last_version_served == self.pushes + 1
        )

    def markdown(self) -> str:
        return "\n".join(
            [
                f"Soak of {self.minutes:g} min, warm-up {self.warmup_s:g} s, "
                f"broker SIGKILLed {self.broker_kills} times, {self.pushes} model pushes.",
                "",
                "| measure | value |",
                "| --- | --- |",
                f"| model version served at the end (pushed up to {self.pushes + 1}) "
                f"| {self.last_version_served} |",
                f"| results received (distinct seqs) | {self.results} |",
                f"| contiguous from 1 (none lost) | {self.contiguous} |",
                f"| duplicate copies (re-sends, flagged) | {self.duplicates} |",
                f"| RSS after warm-up (median of first {self.window_s:g} s) "
                f"| {self.rss_baseline_mb:.1f} MB |",
                f"| RSS at the end (median of last {self.window_s:g} s) "
                f"| {self.rss_final_mb:.1f} MB |",
                f"| **growth** (limit < {LIMIT_MB:g} MB) | **{self.growth_mb:+.2f} MB — "
                f"{'met' if self.met else 'missed'}** |",
                f"| max RSS after warm-up | {self.rss_max_after_warmup_mb:.1f} MB |",
                f"| agent alive at the end | {self.alive} |",
            ]
        )


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _seqs(watcher: Subscriber) -> list[int]:
    return [r.seq for m in watcher.messages for r in results_in(m.payload)]


def _last_version(watcher: Subscriber) -> int:
    messages = watcher.messages
    return int(results_in(messages[-1].payload)[-1].model.version) if messages else 0


def _contiguous(seqs: Sequence[int]) -> int:
    seen, n = set(seqs), 0
    while n + 1 in seen:
        n += 1
    return n


def run_soak(
    work: Path,
    *,
    minutes: float,
    restart_every_s: float = 60.0,
    push_every_s: float = 120.0,
    sample_every_s: float = 2.0,
    warmup_s: float = 30.0,
    window_s: float = 20.0,
    fps: float = 30.0,
) -> SoakResult:
    """Run the soak in ``work`` (a fresh directory) and return its figures."""
    model = get_converted_model(work / "models", "int8")
    broker = MosquittoBroker(work / "broker", persistence=True).start()
    world = UpdateWorld(AgentWorld(work / "device", model, broker.url, frames=60, fps=fps), broker)
    watcher = Subscriber(broker, f"edge/{DEVICE_ID}/results", "soak-watcher", persistent=True)
    time.sleep(1.5)  # mosquitto autosaves the watcher's session
    agent = AgentProcess(world.config(), work / "agent.log")
    publisher = Publisher(broker)
    samples: list[tuple[float, float]] = []
    kills = pushes = 0
    start = time.monotonic()
    next_kill = start + restart_every_s
    next_push = start + push_every_s
    try:
        while (now := time.monotonic()) - start < minutes * 60:
            rss = _rss_mb(agent.process.pid)
            if rss is None or agent.process.poll() is not None:
                break
            samples.append((now - start, rss))
            if now >= next_kill:
                broker.kill()
                time.sleep(1.0)
                broker.start()
                kills += 1
                next_kill = time.monotonic() + restart_every_s
            if now >= next_push:
                pushes += 1
                bundle = world.bundle(counter=pushes + 1)
                publisher.everything(bundle)
                publisher.desired(world, bundle)
                next_push = time.monotonic() + push_every_s
            time.sleep(sample_every_s)
        alive = agent.process.poll() is None
        time.sleep(5.0)  # let the outbox drain after the last outage
        if alive:
            agent.terminate()
    finally:
        agent.close()
        publisher.close()
        watcher.close()
        broker.close()
    result = _summarise(
        samples,
        _seqs(watcher),
        minutes=minutes,
        warmup_s=warmup_s,
        window_s=window_s,
        kills=kills,
        alive=alive,
    )
    result.pushes = pushes
    result.last_version_served = _last_version(watcher)
    return result


def _summarise(
    samples: list[tuple[float, float]],
    seqs: list[int],
    *,
    minutes: float,
    warmup_s: float,
    window_s: float,
    kills: int,
    alive: bool,
) -> SoakResult:
    after = [(t, r) for t, r in samples if t >= warmup_s]
    if not after:
        raise RuntimeError(f"no RSS samples after the {warmup_s} s warm-up (agent died?)")
    first = [r for t, r in after if t < after[0][0] + window_s]
    last = [r for t, r in after if t > after[-1][0] - window_s]
    return SoakResult(
        minutes=minutes,
        warmup_s=warmup_s,
        window_s=window_s,
        broker_kills=kills,
        pushes=0,
        last_version_served=0,
        results=len(set(seqs)),
        contiguous=_contiguous(seqs),
        duplicates=len(seqs) - len(set(seqs)),
        rss_baseline_mb=statistics.median(first),
        rss_final_mb=statistics.median(last),
        rss_max_after_warmup_mb=max(r for _, r in after),
        samples=samples,
        alive=alive,
    )


def write_outputs(result: SoakResult, out: Path) -> None:
    from bench.plots import series_over_time

    out.mkdir(parents=True, exist_ok=True)
    summary = asdict(result) | {"growth_mb": result.growth_mb, "met": result.met}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(result.markdown() + "\n")
    series_over_time(
        out / "rss.png",
        result.samples,
        f"agent RSS, {result.minutes:g} min soak, {result.broker_kills} broker kills, "
        f"{result.pushes} model pushes",
        "RSS (MB)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--restart-every", type=float, default=60.0, help="broker kill period, s")
    parser.add_argument("--push-every", type=float, default=120.0, help="model push period, s")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds ignored at the start")
    parser.add_argument("--window", type=float, default=60.0, help="median window, s")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "soak")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = run_soak(
            Path(tmp),
            minutes=args.minutes,
            restart_every_s=args.restart_every,
            push_every_s=args.push_every,
            warmup_s=args.warmup,
            window_s=args.window,
        )
    write_outputs(result, args.out)
    print(result.markdown())
    print(f"wrote {args.out}/summary.md, summary.json, rss.png")
    return 0 if result.met else 1


if __name__ == "__main__":
    sys.exit(main())
