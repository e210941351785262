"""Structured benchmark results, and the writer of ``docs/benchmarks.md``.

A benchmark module builds one :class:`BenchResult` and ends ``main()`` with
``return report(result)``. Run alone (``python -m bench.bench_bundle``) that prints the
section as Markdown; run through ``python -m bench [NAME ...]`` (``make bench [BENCH=NAME]``)
the runner also rewrites that benchmark's section of ``docs/benchmarks.md`` and keeps every
other section as it was.

Every figure is a :class:`Measure`: the values of each run, their median, and, where there is
one, the limit measured in the same run (bare interpreter loop, raw AEAD, raw mosquitto) with
the ratio ``median / limit``. A :class:`Target` on the ratio or on the value says met/missed.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
PLOT_DIR = ROOT / "docs" / "benchmarks"

_reported: list[BenchResult] = []


@dataclass(frozen=True)
class Target:
    """``bound`` on the ratio to the limit (``on_ratio``) or on the median itself."""

    bound: float
    at_least: bool = True
    on_ratio: bool = True

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def describe(self, unit: str) -> str:
        sign = "≥" if self.at_least else "≤"
        if self.on_ratio:
            return f"ratio {sign} {self.bound:g}"
        return f"{sign} {self.bound:g} {unit}".rstrip()


@dataclass(frozen=True)
class Measure:
    """One figure: every run's value, optionally the same-run limit and a target."""

    name: str
    unit: str
    runs: Sequence[float]
    limit: Sequence[float] = ()
    limit_name: str = ""
    target: Target | None = None
    digits: int = 1

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError(f"measure {self.name!r} has no runs")
        if self.target is not None and self.target.on_ratio and not self.limit:
            raise ValueError(f"measure {self.name!r} has a ratio target but no limit")

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def limit_median(self) -> float | None:
        return statistics.median(self.limit) if self.limit else None

    @property
    def ratio(self) -> float | None:
        limit = self.limit_median
        return self.median / limit if limit else None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio if self.target.on_ratio else self.median
        return value is not None and self.target.met(value)

    def format(self, value: float) -> str:
        return f"{value:,.{self.digits}f} {self.unit}".rstrip()


@dataclass(frozen=True)
class Plot:
    """A PNG under ``docs/benchmarks/`` (see :func:`plot_path`) shown in the section."""

    path: Path
    caption: str


@dataclass(frozen=True)
class Machine:
    """Where the figures were measured; one line in every section."""

    cpu: str
    cores: int
    ram_gib: float
    python: str
    versions: tuple[tuple[str, str], ...]
    load: tuple[float, float, float]

    @classmethod
    def detect(cls) -> Machine:
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            ram_gib=_ram_bytes() / (1 << 30),
            python=platform.python_version(),
            versions=(
                ("ai-edge-litert", _package_version("ai-edge-litert")),
                ("cryptography", _package_version("cryptography")),
                ("paho-mqtt", _package_version("paho-mqtt")),
                ("mosquitto", _mosquitto_version()),
            ),
            load=os.getloadavg(),
        )

    def line(self) -> str:
        versions = ", ".join(f"{name} {version}" for name, version in self.versions)
        load = "/".join(f"{x:.1f}" for x in self.load)
        return (
            f"{self.cpu}, {self.cores} cores, {self.ram_gib:.1f} GiB RAM, {platform.machine()}, "
            f"Python {self.python}, {versions}; load average {load} at start"
        )


@dataclass
class BenchResult:
    """One benchmark's section of ``docs/benchmarks.md``."""

    key: str
    title: str
    command: str
    setup: str
    measures: list[Measure]
    notes: str = ""
    plots: list[Plot] = field(default_factory=list)
    extra: str = ""
    machine: Machine = field(default_factory=Machine.detect)
    when: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    )

    @property
    def runs(self) -> int:
        return max((len(m.runs) for m in self.measures), default=0)

    def markdown(self) -> str:
        lines = [
            f"## {self.title}",
            "",
            f"`{self.command}` — medians of {self.runs} run(s), {self.when}.",
            "",
            f"Machine: {self.machine.line()}.",
            "",
            self.setup.strip(),
            "",
            "| measure | median | runs | limit (same run) | ratio | target | |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [_row(m) for m in self.measures]
        if self.extra.strip():
            lines += ["", self.extra.strip()]
        for plot in self.plots:
            lines += ["", f"![{plot.caption}]({_relative_to_docs(plot.path)})"]
        if self.notes.strip():
            lines += ["", self.notes.strip()]
        return "\n".join(lines) + "\n"


def _row(m: Measure) -> str:
    spread = f"{m.format(min(m.runs))} – {m.format(max(m.runs))}" if len(m.runs) > 1 else "1 run"
    limit = m.limit_median
    limit_text = f"{m.limit_name} {m.format(limit)}".strip() if limit is not None else "—"
    ratio = f"{m.ratio:.2f}" if m.ratio is not None else "—"
    target = m.target.describe(m.unit) if m.target is not None else "—"
    verdict = {None: "", True: "met", False: "**missed**"}[m.met]
    return (
        f"| {m.name} | **{m.format(m.median)}** | {spread} | {limit_text} | {ratio} | {target} "
        f"| {verdict} |"
    )


def _relative_to_docs(path: Path) -> str:
    try:
        return path.resolve().relative_to(DOC.parent).as_posix()
    except ValueError:
        return path.as_posix()


def plot_path(name: str) -> Path:
    """Where a benchmark writes its PNG so the generated document can show it."""
    PLOT_DIR.mkdir(parents=True, exist_ok=True)
    return PLOT_DIR / name


def report(result: BenchResult) -> int:
    """Print the section and hand it to the runner; the value to return from ``main()``."""
    print(result.markdown(), flush=True)
    _reported.append(result)
    return 0


def take_reported() -> list[BenchResult]:
    """The results reported since the last call (used by ``python -m bench``)."""
    taken = list(_reported)
    _reported.clear()
    return taken


# -- docs/benchmarks.md -----------------------------------------------------------------------

_HEADER = """# Benchmarks

Generated by `make bench` (`python -m bench`; one benchmark: `make bench BENCH=agent`). Each
section is rewritten when its benchmark runs; the others stay as they were, so every section
carries its own machine line and date. Edit the text of a section in its `bench/bench_*.py`
(`NOTES`), not here. Ratios are to the limit measured in the same run on the same machine.
"""

_SECTION = re.compile(
    r"<!-- bench:(?P<key>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=key) -->\n", re.S
)


def split_sections(text: str) -> dict[str, str]:
    """The generated sections of an existing document, by key, in document order."""
    return {m["key"]: m["body"] for m in _SECTION.finditer(text)}


def render_document(previous: str, results: Iterable[BenchResult]) -> str:
    """The document with each result's section replaced in place (or appended at the end); all
    other text -- the header, by-hand sections between the generated ones -- kept as it was."""
    fresh = {result.key: result.markdown() for result in results}

    def replace(match: re.Match[str]) -> str:
        key = match["key"]
        return _section(key, fresh.pop(key, match["body"]))

    text = _SECTION.sub(replace, previous) if previous else _HEADER
    return "\n".join([text.rstrip("\n") + "\n", *(_section(k, b) for k, b in fresh.items())])


def _section(key: str, body: str) -> str:
    return f"<!-- bench:{key} -->\n{body}<!-- /bench:{key} -->\n"


def write_document(results: Sequence[BenchResult], path: Path = DOC) -> None:
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    text = render_document(previous, results)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# -- machine facts ----------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _ram_bytes() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _mosquitto_version() -> str:
    try:
        out = subprocess.run(
            ["mosquitto", "-h"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    found = re.search(r"version (\S+)", out)
    return found[1] if found else "unknown"
