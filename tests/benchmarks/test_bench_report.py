"""bench/report.py: measures, targets and the generated docs/benchmarks.md sections."""

from __future__ import annotations

import pytest

from bench.report import BenchResult, Machine, Measure, Target, render_document, split_sections

MACHINE = Machine("Test CPU", 2, 4.0, "3.11.0", (("mosquitto", "2.0"),), (0.5, 0.5, 0.5))


def _result(key: str, value: float) -> BenchResult:
    return BenchResult(
        key=key,
        title=f"{key} title",
        command=f"python -m bench.bench_{key}",
        setup="setup text",
        measures=[
            Measure("rate", "MB/s", [value, value * 2, value / 2], [100.0], "raw", Target(0.8))
        ],
        notes="why it misses",
        machine=MACHINE,
        when="2026-01-01 00:00 UTC",
    )


def test_ratio_is_the_median_over_the_limit_measured_in_the_same_run() -> None:
    measure = Measure("rate", "MB/s", [10.0, 30.0, 20.0], [50.0, 40.0], "raw", Target(0.5))
    assert measure.median == 20.0
    assert measure.limit_median == 45.0
    assert measure.ratio == pytest.approx(20.0 / 45.0)
    assert measure.met is False


def test_a_value_target_compares_the_median_itself() -> None:
    within = Measure(
        "p99", "ms", [2.0, 2.5, 9.0], target=Target(3.0, at_least=False, on_ratio=False)
    )
    assert within.met is True
    assert within.ratio is None
    assert Measure("rss", "MB", [1.0]).met is None


def test_a_ratio_target_without_a_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="ratio target but no limit"):
        Measure("rate", "MB/s", [1.0], target=Target(0.8))
    with pytest.raises(ValueError, match="no runs"):
        Measure("rate", "MB/s", [])


def test_a_section_shows_command_machine_medians_ratio_target_and_verdict() -> None:
    text = _result("bundle", 40.0).markdown()
    assert "`python -m bench.bench_bundle` — medians of 3 run(s), 2026-01-01 00:00 UTC." in text
    assert "Machine: Test CPU, 2 cores, 4.0 GiB RAM" in text
    assert "| rate | **40.0 MB/s** | 20.0 MB/s – 80.0 MB/s | raw 100.0 MB/s | 0.40 " in text
    assert "| ratio ≥ 0.8 | **missed** |" in text
    assert text.rstrip().endswith("why it misses")


def test_rewriting_one_section_keeps_the_others_in_place() -> None:
    first = render_document("", [_result("agent", 1.0), _result("bundle", 2.0)])
    assert list(split_sections(first)) == ["agent", "bundle"]
    second = render_document(first, [_result("bundle", 90.0), _result("update", 3.0)])
    sections = split_sections(second)
    assert list(sections) == ["agent", "bundle", "update"]
    assert sections["agent"] == split_sections(first)["agent"]
    assert "**90.0 MB/s**" in sections["bundle"]
    assert render_document(second, []) == second


def test_text_between_generated_sections_survives_a_rewrite() -> None:
    first = render_document("", [_result("agent", 1.0), _result("bundle", 2.0)])
    by_hand = "## Fleet view (by hand)\n\nmeasured once, kept verbatim\n"
    agent_end = "<!-- /bench:agent -->\n"
    edited = first.replace(agent_end, agent_end + "\n" + by_hand)
    second = render_document(edited, [_result("agent", 7.0), _result("update", 3.0)])
    assert by_hand in second
    assert second.index(by_hand) < second.index("<!-- bench:bundle -->")
    assert list(split_sections(second)) == ["agent", "bundle", "update"]
    assert "**7.0 MB/s**" in split_sections(second)["agent"]
