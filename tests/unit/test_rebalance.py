"""The rebalancer on small portfolios worked out by hand, and its errors on bad input."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from tradepulse.domain import Side
from tradepulse.portfolio.rebalance import (
    ModelPortfolio,
    Reason,
    RebalanceInputError,
    RebalanceOptions,
    RebalancePlan,
    build_problem,
    rebalance,
    rebalance_baseline,
    security,
)


def plan_for(
    cash: str, holdings: dict[str, Any], prices: dict[str, str], targets: Any, **options: Any
) -> RebalancePlan:
    lots = options.pop("lots", {})
    fractional = options.pop("fractional", set())
    secs = [security(s, p, lots.get(s, 1), fractional=s in fractional) for s, p in prices.items()]
    problem = build_problem(
        cash=cash, holdings=holdings, securities=secs, targets=targets, options=RebalanceOptions(**options)
    )
    plan = rebalance(problem)
    assert rebalance_baseline(problem) == plan
    return plan


def orders(plan: RebalancePlan) -> list[tuple[str, str, str]]:
    return [(t.side.value, t.symbol, str(t.quantity)) for t in plan.trades]


def test_sells_absent_symbols_buys_new_ones_sells_first() -> None:
    plan = plan_for(
        "0", {"OLD": 10, "KEEP": 50}, {"OLD": "100", "KEEP": "10", "NEW": "25"}, {"KEEP": "0.5", "NEW": "0.5"}
    )
    # V = 1000 + 500 = 1500; KEEP target 750 -> 75 shares; NEW 750 -> 30 shares
    assert orders(plan) == [("SELL", "OLD", "10"), ("BUY", "KEEP", "25"), ("BUY", "NEW", "30")]
    assert plan.cash_after == 0
    assert plan.turnover == D("1.3333333333")  # (1000 + 250 + 750) / 1500


def test_nearest_lot_and_tie_toward_holding() -> None:
    # V = 1000; target 0.5 -> 500 at price 40 = 12.5 lots: an exact tie
    plan = plan_for("1000", {}, {"A": "40"}, {"A": "0.5"})
    assert orders(plan) == [("BUY", "A", "12")]  # not held: the tie goes toward 0 held, i.e. down
    plan = plan_for("480", {"A": 13}, {"A": "40"}, {"A": "0.5"})  # V = 1000, holds 13: tie goes toward 13
    assert orders(plan) == []
    assert plan.positions[0].reason is Reason.AT_TARGET


def test_lot_size_and_fractional_steps() -> None:
    plan = plan_for("10000", {}, {"A": "3", "B": "7"}, {"A": "0.4", "B": "0.5"}, lots={"A": 100}, fractional={"B"})
    # A: 4000 / 3 = 1333.3 shares = 13.3 lots of 100 -> 13 lots; B: 5000 / 7 = 714.28571 -> 714.2857 (step 1e-4)
    assert orders(plan) == [("BUY", "A", "1300"), ("BUY", "B", "714.2857")]
    # at 0.5 / 0.5 the nearest lots (17 of A) cost more than the cash: the buys are cut to fit
    plan = plan_for("10000", {}, {"A": "3", "B": "7"}, {"A": "0.5", "B": "0.5"}, lots={"A": 100}, fractional={"B"})
    assert plan.cash_after >= 0
    assert plan.positions[0].reason is Reason.CASH


def test_drift_bands_leave_positions_alone() -> None:
    # V = 2000: A is 1100 (55 %) against 50 %
    base = {"cash": "0", "holdings": {"A": 11, "B": 9}, "prices": {"A": "100", "B": "100"}}
    targets = {"A": "0.5", "B": "0.5"}
    assert orders(plan_for(**base, targets=targets, drift_abs=D("0.05"))) == []
    assert orders(plan_for(**base, targets=targets, drift_abs=D("0.04"))) == [("SELL", "A", "1"), ("BUY", "B", "1")]
    # relative: 5 points is 10 % of 50 %
    assert orders(plan_for(**base, targets=targets, drift_rel=D("0.1"))) == []
    # both: the tighter one decides (min(5 %, 25 % x 50 %) = 5 %)
    assert orders(plan_for(**base, targets=targets, drift_abs=D("0.049"), drift_rel=D("0.25"))) != []


def test_min_notional_skips_small_trades_but_not_full_sales() -> None:
    plan = plan_for(
        "0",
        {"A": 1, "B": 100},
        {"A": "10", "B": "10"},
        {"B": "0.9"},
        min_trade_notional=D("50"),
    )
    # V = 1010, B target 909 -> 91 shares: sell 9 (90 >= 50). A is absent: sold whole although 10 < 50.
    assert orders(plan) == [("SELL", "A", "1"), ("SELL", "B", "9")]
    plan = plan_for("0", {"B": 100}, {"B": "10"}, {"B": "0.97"}, min_trade_notional=D("50"))
    assert orders(plan) == []  # sell 3 = 30 < 50
    assert plan.positions[0].reason is Reason.MIN_NOTIONAL


def test_cash_buffer_and_fees_bound_the_buys() -> None:
    plan = plan_for(
        "1000",
        {},
        {"A": "10", "B": "10"},
        {"A": "0.5", "B": "0.5"},
        cash_buffer=D("100"),
        fee_per_order=D("1"),
        fee_rate=D("0.01"),
    )
    # I = 900: wants 45 + 45 shares = 900 + fees 2 x (1 + 4.50) = 911 > budget 900, so pro rata + top-up
    assert plan.cash_after >= 100
    assert all(t.side is Side.BUY for t in plan.trades)
    spent = sum((t.notional + t.fee for t in plan.trades), D(0))
    assert spent == D(1000) - plan.cash_after
    assert plan.cash_after - 100 < D("10") + D("1.10")  # no room for another share of either
    assert {r.reason for r in plan.positions} == {Reason.CASH}


def test_sale_whose_fee_eats_the_proceeds_is_skipped() -> None:
    plan = plan_for("100", {"A": 1}, {"A": "0.5"}, {}, fee_per_order=D("5"))
    assert orders(plan) == []
    assert plan.positions[0].reason is Reason.FEE


def test_turnover_cap_scales_trades_down() -> None:
    plan = plan_for("1000", {}, {"A": "1", "B": "1"}, {"A": "0.5", "B": "0.5"}, max_turnover=D("0.3"))
    # wants 500 + 500 = 1000 of 1000; cap 300: factor 0.3 -> 150 + 150
    assert orders(plan) == [("BUY", "A", "150"), ("BUY", "B", "150")]
    assert plan.turnover == D("0.3000000000")


def test_model_portfolio_is_normalised_and_rounded_down() -> None:
    model = ModelPortfolio(name="thirds", weights={"A": D(1), "B": D(1), "C": D(1)})
    targets = model.targets()
    assert targets == {"A": D("0.333333333333")} | {"B": D("0.333333333333"), "C": D("0.333333333333")}
    plan = plan_for("999", {}, {"A": "1", "B": "1", "C": "1"}, model)
    assert orders(plan) == [("BUY", "A", "333"), ("BUY", "B", "333"), ("BUY", "C", "333")]


def test_result_reports_weights_cash_turnover_and_cost() -> None:
    plan = plan_for("1000", {"A": 10}, {"A": "50", "B": "20"}, {"A": "0.25", "B": "0.7"}, fee_per_order=D("1"))
    # V = 1500: A 375 -> 7.5 lots, a tie, toward the 10 held -> 8 (sell 2 = 100); B 1050 -> 52.5 -> 52 (1040)
    assert orders(plan) == [("SELL", "A", "2"), ("BUY", "B", "52")]
    assert plan.fees == 2
    assert plan.cash_after == D(1000) + 100 - 1 - 1040 - 1
    assert plan.value_after == D(1498)
    assert plan.turnover == (D(1140) / D(1500)).quantize(D("1e-10"))
    a, b = plan.positions
    assert (a.quantity_before, a.quantity_after, b.quantity_after) == (10, 8, 52)
    assert a.weight_after == (D(400) / D(1498)).quantize(D("1e-8"))
    submits = plan.submit_orders(strategy_id="rb-test")
    assert [s.side for s in submits] == [Side.SELL, Side.BUY]
    assert submits[0].client_order_id == plan.submit_orders()[0].client_order_id  # deterministic
    assert submits[0].client_order_id.startswith("rb-")
    assert submits[0].client_order_id.endswith("-S-A")


def securities(prices: dict[str, str], lots: dict[str, str], duplicate: bool) -> list[Any]:
    secs = [security(s, p, lots.get(s, 1)) for s, p in prices.items()]
    return [*secs, security("A", "11")] if duplicate else secs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": {"A": "0.7", "B": "0.4"}}, "weight: target weights sum to 1.1, more than 1"),
        ({"targets": {"A": "-0.1"}}, "A: weight: must be >= 0"),
        ({"targets": {"A": "NaN"}}, "A: weight: is NaN"),
        ({"targets": {"A": 0.5}}, "A: weight: use a Decimal, int or str, not float"),
        ({"targets": {"ZZZ": "0.1"}}, "ZZZ: symbol: unknown symbol in targets"),
        ({"holdings": {"ZZZ": "1"}}, "ZZZ: symbol: unknown symbol in holdings"),
        ({"targets": [("A", "0.1"), ("A", "0.2")]}, "A: symbol: duplicate symbol in targets"),
        ({"holdings": [("A", "1"), ("A", "2")]}, "A: symbol: duplicate symbol in holdings"),
        ({"holdings": {"A": "-3"}}, "A: quantity: must be >= 0 (no short positions)"),
        ({"holdings": {"A": "1.5"}}, "A: quantity: 1.5 is not a multiple of the step 1"),
        ({"prices": {"A": "-1", "B": "2"}}, "A: price: must be > 0"),
        ({"prices": {"A": "NaN", "B": "2"}}, "A: price: is NaN"),
        ({"prices": {"A": "1.234", "B": "2"}}, "A: price: 1.234 is not a multiple of the tick size 0.01"),
        ({"lots": {"A": "0"}}, "A: lot_size: must be > 0"),
        ({"lots": {"A": "-5"}}, "A: lot_size: must be > 0"),
        ({"cash": "-1"}, "cash: must be >= 0"),
        ({"duplicate_security": True}, "A: symbol: duplicate symbol in securities"),
    ],
)
def test_bad_input_names_symbol_and_field(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"cash": "100", "holdings": {"A": "1"}, "targets": {"A": "0.5", "B": "0.5"}}
    prices = kwargs.pop("prices", {"A": "10", "B": "20"})
    lots = kwargs.pop("lots", {})
    duplicate = kwargs.pop("duplicate_security", False)
    args.update(kwargs)
    with pytest.raises(RebalanceInputError) as info:
        build_problem(securities=securities(prices, lots, duplicate), **args)
    assert message in str(info.value)


def test_bad_options_name_the_field() -> None:
    with pytest.raises(RebalanceInputError, match="drift_abs: must be >= 0"):
        RebalanceOptions(drift_abs=D("-0.1"))
    with pytest.raises(RebalanceInputError, match="fee_rate: must be >= 0 and <= 1"):
        RebalanceOptions(fee_rate=D("2"))
    with pytest.raises(RebalanceInputError, match="max_turnover: is NaN"):
        RebalanceOptions(max_turnover=D("NaN"))


def test_magnitudes_beyond_the_exact_core_are_refused() -> None:
    with pytest.raises(RebalanceInputError, match=r"cash: .* is too large"):
        build_problem(cash=D(10) ** 17, holdings={}, securities=[security("A", "1")], targets={})
