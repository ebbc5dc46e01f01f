"""The benchmarks' summary: each figure against the issue's goal and, where the seed names one, the seed's target."""

from __future__ import annotations

import pytest
from benchmarks.common import Metric, print_summary


def test_a_figure_is_judged_against_the_goal_and_the_seed_separately() -> None:
    p95 = Metric(2.6, "ms", 2.0, label="p95", seed=100.0)
    rate = Metric(3_797, "orders/s", 20_000, lower_is_better=False, label="rate", seed=1_000)
    assert (p95.passed, p95.seed_passed) == (False, True)
    assert (rate.passed, rate.seed_passed) == (False, True)
    assert Metric(1_000, "orders/s", 20_000, lower_is_better=False, seed=1_000).seed_passed is False  # "more than"
    assert p95.as_json() == {
        "value": 2.6,
        "unit": "ms",
        "target": 2.0,
        "pass": False,
        "seed_target": 100.0,
        "seed_pass": True,
    }
    plain = Metric(1.0, "ms", label="p50")
    assert plain.seed_passed is None
    assert plain.as_json() == {"value": 1.0, "unit": "ms", "target": None, "pass": None}


def test_the_summary_prints_both_verdicts_and_returns_the_goals_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = {
        "p95": Metric(2.6, "ms", 2.0, label="round trip p95", seed=100.0),
        "p99": Metric(9.0, "ms", 10.0, label="round trip p99.9"),
    }
    assert print_summary("execution", metrics) is False  # the goal decides, not the seed's floor
    out = capsys.readouterr().out
    assert "FAIL: round trip p95 2.600 ms < 2 ms target" in out
    assert "PASS: round trip p95 2.600 ms < 100 ms seed target" in out
    assert "PASS: round trip p99.9 9.000 ms < 10 ms target" in out
    table = out.split("❌")[0]
    assert "seed" in table  # the table has the seed's columns
    assert "< 100 ms" in table
    assert print_summary("ok", {"p99": metrics["p99"]}) is True
