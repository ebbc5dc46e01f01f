"""The rebalancing benchmark still runs and still times what it says: a smoke run on a small portfolio."""

from __future__ import annotations

from tests.performance.rebalance_benchmark import make_inputs, measure, to_columns
from tradepulse.portfolio.rebalance import build_problem, build_problem_arrays


def test_the_columns_hold_the_same_portfolio_as_the_decimal_inputs() -> None:
    inputs = make_inputs(80)
    columns = to_columns(inputs)
    assert columns["symbols"].tolist() != sorted(columns["symbols"].tolist())  # shuffled: the sort is timed
    assert build_problem_arrays(**columns) == build_problem(**inputs)


def test_a_small_run_reports_every_figure() -> None:
    result = measure(60, runs=1)  # raises if any two paths or engines disagree
    timed = ("baseline_ms", "optimized_ms", "decimal_path_ms", "engine_ms", "baseline_engine_ms")
    for key in (*timed, "submit_orders_ms", "trades_ms", "optimized_orders_ms"):
        assert result[key] > 0, key
    assert result["orders"] > 0
