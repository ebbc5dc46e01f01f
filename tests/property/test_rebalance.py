"""Property tests of the rebalancer over random portfolios.

Both implementations must return equal plans, and every plan must be *right*, checked here independently with
Fractions: executing the orders at the plan's prices keeps cash >= 0 at every step and >= the buffer after
buying, shorts nothing, respects the minimum notional, leaves every symbol where its reason says (inside its
band, at the nearest lot, or held back by a named constraint), and rebalancing the result again is a no-op.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradepulse.domain import Side
from tradepulse.portfolio.rebalance import (
    Reason,
    RebalanceOptions,
    RebalancePlan,
    RebalanceProblem,
    build_problem,
    rebalance_baseline,
    rebalance_vectorized,
    security,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw: Any, *, fees: bool = True, turnover: bool = True) -> RebalanceProblem:
    n = draw(st.integers(1, 10))
    symbols = [f"S{i}" for i in range(n)]
    secs = []
    holdings: dict[str, Decimal] = {}
    targets: dict[str, Decimal] = {}
    fractional_step = Decimal("0.01")
    for sym in symbols:
        # small prices and lots make exact ties (half lots, positions on a band edge) common
        cents = draw(st.one_of(st.integers(1, 20).map(lambda k: k * 100), st.integers(1, 50_000)))
        price = Decimal(cents) / 100
        fractional = draw(st.booleans()) and draw(st.booleans())
        lot = Decimal(draw(st.sampled_from([1, 1, 2, 5, 10, 100])))
        secs.append(security(sym, price, lot, fractional=fractional))
        step = fractional_step if fractional else lot
        if draw(st.booleans()) or not draw(st.booleans()):
            holdings[sym] = step * draw(st.integers(0, 60))
    raw = {sym: draw(st.integers(0, 20)) for sym in symbols if draw(st.integers(0, 4))}
    total = sum(raw.values())
    invested = Fraction(draw(st.sampled_from([100, 100, 95, 80])), 100)
    for sym, r in raw.items():
        w = Fraction(r, total) * invested if total else Fraction(0)
        targets[sym] = Decimal(math.floor(w * 10**4)) / 10**4
    options = RebalanceOptions(
        drift_abs=draw(st.sampled_from([None, Decimal("0.01"), Decimal("0.05")])),
        drift_rel=draw(st.sampled_from([None, Decimal("0.1"), Decimal("0.25")])),
        min_trade_notional=Decimal(draw(st.sampled_from([0, 0, 10, 50, 500]))),
        cash_buffer=Decimal(draw(st.sampled_from([0, 0, 25, 100, 1000]))),
        max_turnover=draw(st.sampled_from([None, None, Decimal("0.1"), Decimal("0.5")])) if turnover else None,
        fee_per_order=Decimal(draw(st.sampled_from([0, 1, 5]))) if fees else Decimal(0),
        fee_rate=draw(st.sampled_from([Decimal(0), Decimal("0.001"), Decimal("0.0025")])) if fees else Decimal(0),
        fractional_step=fractional_step,
        allow_sells=draw(st.integers(0, 5)) > 0,
    )
    cash = Decimal(draw(st.integers(0, 2_000_000))) / 100
    return build_problem(cash=cash, holdings=holdings, securities=secs, targets=targets, options=options)


def fee_of(problem: RebalanceProblem, notional: Fraction) -> Fraction:
    o = problem.options
    if notional == 0:
        return Fraction(0)
    step = Fraction(o.fee_precision)
    return Fraction(o.fee_per_order) + math.ceil(Fraction(o.fee_rate) * notional / step) * step


def nearest_lot(ideal: Fraction, held: int) -> int:
    below = math.floor(ideal)
    rest = ideal - below
    return below + 1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and held > below) else below


def check_plan(problem: RebalanceProblem, plan: RebalancePlan) -> None:
    """Execute the plan at its prices and check every promise, with Fractions only."""
    o = problem.options
    n = len(problem)
    lot_value = [Fraction(problem.prices[i]) * Fraction(problem.steps[i]) for i in range(n)]
    held = [int(problem.quantities[i] / problem.steps[i]) for i in range(n)]
    buffer = Fraction(o.cash_buffer)
    minimum = Fraction(o.min_trade_notional)
    value = Fraction(problem.cash) + sum((held[i] * lot_value[i] for i in range(n)), Fraction(0))
    invest = max(value - buffer, Fraction(0))

    cash = Fraction(problem.cash)
    post = list(held)
    seen_buy = False
    traded: dict[int, int] = {}
    for trade in plan.trades:
        i = problem.index(trade.symbol)
        assert i not in traded, "one order per symbol"
        lots = Fraction(trade.quantity) / Fraction(problem.steps[i])
        assert lots.denominator == 1
        assert lots > 0
        notional = int(lots) * lot_value[i]
        assert Fraction(trade.notional) == notional
        assert Fraction(trade.fee) == fee_of(problem, notional)
        full_close = trade.side is Side.SELL and int(lots) == held[i]
        assert notional >= minimum or full_close, "minimum notional"
        if trade.side is Side.SELL:
            assert not seen_buy, "sells come before buys"
            assert Fraction(trade.fee) < notional, "a sale never costs more than it raises"
            cash += notional - Fraction(trade.fee)
            post[i] -= int(lots)
            traded[i] = -int(lots)
        else:
            seen_buy = True
            cash -= notional + Fraction(trade.fee)
            post[i] += int(lots)
            traded[i] = int(lots)
        assert cash >= 0, "cash never negative, fees included"
        assert post[i] >= 0, "no short positions"
    assert cash == Fraction(plan.cash_after)
    assert post == plan.post_lots.tolist()
    if seen_buy:
        assert cash >= buffer, "buys never spend the buffer"
    else:
        assert cash >= Fraction(problem.cash)
    fees = sum((Fraction(t.fee) for t in plan.trades), Fraction(0))
    assert Fraction(plan.fees) == fees
    assert Fraction(plan.value_after) == value - fees
    gross = sum((Fraction(t.notional) for t in plan.trades), Fraction(0))
    if o.max_turnover is not None:
        assert gross <= Fraction(o.max_turnover) * value, "turnover cap"

    left = cash - buffer
    for i, row in enumerate(plan.positions):
        w = Fraction(problem.weights[i])
        target_lots = nearest_lot(w * invest / lot_value[i], held[i]) if w else 0
        position = held[i] * lot_value[i]
        reason = row.reason
        t = traded.get(i, 0)
        if reason is Reason.IN_BAND:
            tolerances = [Fraction(b) for b in (o.drift_abs,) if b is not None]
            tolerances += [Fraction(o.drift_rel) * w] if o.drift_rel is not None else []
            assert held[i] > 0
            assert w > 0
            assert tolerances
            assert abs(position - w * invest) <= min(tolerances) * invest
            assert t == 0
        elif reason in (Reason.AT_TARGET, Reason.TRADE):
            assert post[i] == target_lots, f"{row.symbol} at the nearest lot"
            assert (t != 0) == (reason is Reason.TRADE)
        elif reason is Reason.CLOSE:
            assert w == 0
            assert post[i] == 0
            assert held[i] > 0
        elif reason is Reason.NO_SELL:
            assert not o.allow_sells
            assert t == 0
            assert target_lots < held[i]
        elif reason in (Reason.MIN_NOTIONAL, Reason.FEE):
            assert t == 0
            assert post[i] != target_lots
        elif reason is Reason.TURNOVER:
            assert o.max_turnover is not None
            wanted = target_lots - held[i]
            assert t == 0 or (t > 0) == (wanted > 0)
            assert abs(t) < abs(wanted)
        elif reason is Reason.CASH:
            assert held[i] <= post[i] < target_lots
            more = (t + 1) * lot_value[i]
            extra = more + fee_of(problem, more) - (t * lot_value[i] + fee_of(problem, t * lot_value[i]))
            if t == 0:
                extra = more + fee_of(problem, more)
            assert more < minimum or extra > left, f"{row.symbol}: cash was left for another lot"


@SETTINGS
@given(problems())
def test_both_implementations_return_the_same_plan(problem: RebalanceProblem) -> None:
    assert rebalance_baseline(problem) == rebalance_vectorized(problem)


@SETTINGS
@given(problems())
def test_plan_keeps_every_promise(problem: RebalanceProblem) -> None:
    check_plan(problem, rebalance_vectorized(problem))


def after(problem: RebalanceProblem, plan: RebalancePlan) -> RebalanceProblem:
    """Return the problem for the portfolio after the plan, with the same prices, targets and options."""
    secs = [security(s, problem.prices[i], problem.steps[i], fractional=False) for i, s in enumerate(problem.symbols)]
    holdings = {s: problem.steps[i] * int(plan.post_lots[i]) for i, s in enumerate(problem.symbols)}
    targets = {s: problem.weights[i] for i, s in enumerate(problem.symbols)}
    return build_problem(
        cash=plan.cash_after, holdings=holdings, securities=secs, targets=targets, options=problem.options
    )


@SETTINGS
@given(problems(fees=False, turnover=False))
def test_rebalancing_the_result_again_trades_nothing(problem: RebalanceProblem) -> None:
    plan = rebalance_vectorized(problem)
    again = after(problem, plan)
    second = rebalance_vectorized(again)
    assert len(second) == 0, [(t.symbol, t.side, t.quantity) for t in second.trades]
    assert rebalance_baseline(again) == second


@SETTINGS
@given(problems(turnover=False))
def test_with_fees_a_second_run_only_trades_what_the_fees_moved(problem: RebalanceProblem) -> None:
    """Fees lower the value, moving each ideal by w x fees: no second-run trade is bigger than that shift
    (plus the half lot of rounding) unless cash held it back the first time."""
    plan = rebalance_vectorized(problem)
    second = rebalance_vectorized(after(problem, plan))
    fees = Fraction(plan.fees)
    for trade in second.trades:
        i = problem.index(trade.symbol)
        assert fees > 0
        first = Reason(int(plan.reason[i]))
        if first in (Reason.CASH, Reason.MIN_NOTIONAL, Reason.FEE, Reason.IN_BAND, Reason.NO_SELL):
            continue
        lot_value = Fraction(problem.prices[i]) * Fraction(problem.steps[i])
        shift = Fraction(problem.weights[i]) * fees
        assert Fraction(trade.notional) <= shift + lot_value, (trade, shift)


@st.composite
def large_problems(draw: Any) -> RebalanceProblem:
    """Big values and fine decimals: weights with 12 places, prices with 4, fractional steps of 1e-4, values up
    to ten billion at a money unit of 1e-8. These drive the vectorized core through its 128-bit products."""
    n = draw(st.integers(1, 8))
    secs, holdings, targets = [], {}, {}
    step = Decimal("0.0001")
    for i in range(n):
        sym = f"L{i}"
        price = Decimal(draw(st.integers(1, 10**8))) / 10**4
        fractional = draw(st.booleans())
        secs.append(security(sym, price, draw(st.sampled_from([1, 100])), fractional=fractional, tick_size="0.0001"))
        unit = step if fractional else secs[-1].instrument.lot_size
        holdings[sym] = unit * draw(st.integers(0, 10**9 if fractional else 10**3))
    weights = [draw(st.integers(0, 10**12)) for _ in range(n)]
    total = sum(weights) or 1
    for i, w in enumerate(weights):
        targets[f"L{i}"] = Decimal(w * 10**12 // total) / 10**12
    options = RebalanceOptions(
        drift_abs=draw(st.sampled_from([None, Decimal("0.000123456789")])),
        drift_rel=draw(st.sampled_from([None, Decimal("0.123457")])),
        min_trade_notional=Decimal(draw(st.sampled_from([0, 1000]))),
        cash_buffer=Decimal(draw(st.integers(0, 10**9))) / 100,
        max_turnover=draw(st.sampled_from([None, Decimal("0.333333")])),
        fee_per_order=Decimal(draw(st.sampled_from(["0", "0.35"]))),
        fee_rate=Decimal(draw(st.sampled_from(["0", "0.000035"]))),
        fractional_step=step,
    )
    cash = Decimal(draw(st.integers(0, 10**11))) / 100
    return build_problem(cash=cash, holdings=holdings, securities=secs, targets=targets, options=options)


@SETTINGS
@given(large_problems())
def test_large_values_and_fine_decimals(problem: RebalanceProblem) -> None:
    plan = rebalance_vectorized(problem)
    assert rebalance_baseline(problem) == plan
    check_plan(problem, plan)
