"""Executing a plan against a broker that really fills: sells first, buys re-planned when sells fall short,
no double trading when the same rebalance runs twice."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

from tests.support.fake_broker import FakeBroker
from tradepulse.domain import OrderStatus, Side
from tradepulse.portfolio.rebalance import RebalanceOptions, build_problem, rebalance, security
from tradepulse.portfolio.rebalance_execute import execute_plan

PRICES = {"A": D("50"), "B": D("20"), "C": D("10"), "OLD": D("30")}
OPTIONS = RebalanceOptions(cash_buffer=D("100"), fee_per_order=D("1"), fee_rate=D("0.001"))


def problem(cash: str = "1000", holdings: dict[str, D] | None = None):  # type: ignore[no-untyped-def]
    held = holdings if holdings is not None else {"A": D(40), "OLD": D(20)}
    return build_problem(
        cash=cash,
        holdings=held,
        securities=[security(s, p) for s, p in PRICES.items()],
        targets={"A": D("0.3"), "B": D("0.4"), "C": D("0.25")},
        options=OPTIONS,
    )


def broker(p, **kwargs) -> FakeBroker:  # type: ignore[no-untyped-def]
    return FakeBroker(
        p.cash,
        dict(zip(p.symbols, p.quantities, strict=True)),
        PRICES,
        fee_per_order=OPTIONS.fee_per_order,
        fee_rate=OPTIONS.fee_rate,
        **kwargs,
    )


async def test_sells_fill_before_buys_and_the_result_matches_the_plan() -> None:
    p = problem()
    plan = rebalance(p)
    assert plan.sells
    assert plan.buys
    b = broker(p)
    result = await execute_plan(plan, b.submit)
    assert [o.side for o in result.orders] == [Side.SELL] * len(plan.sells) + [Side.BUY] * len(plan.buys)
    assert all(o.status is OrderStatus.FILLED for o in result.orders)
    assert result.replanned_buys is None
    assert result.cash == plan.cash_after == b.cash
    assert result.holdings == {s: p.steps[i] * int(plan.post_lots[i]) for i, s in enumerate(p.symbols)}
    assert b.min_cash_seen >= 0
    assert len(rebalance(result.after())) == 0  # nothing left to do (fees moved nothing across a lot here)


async def test_running_the_same_rebalance_twice_never_trades_twice() -> None:
    p = problem()
    b = broker(p)
    first = await execute_plan(rebalance(p), b.submit)
    cash, holdings = b.cash, dict(b.holdings)
    again = await execute_plan(rebalance(p), b.submit)  # e.g. after a crash, from the same files
    assert (b.cash, b.holdings) == (cash, holdings)
    assert [o.client_order_id for o in again.orders] == [o.client_order_id for o in first.orders]
    assert len(b.orders) == len(first.orders)


async def test_short_sells_replan_the_buys_within_the_cash_really_raised() -> None:
    p = problem(cash="0")
    plan = rebalance(p)
    b = broker(p, fill_ratio={"OLD": Fraction(1, 2)})  # only half of OLD sells
    result = await execute_plan(plan, b.submit)
    assert result.replanned_buys is not None
    assert [o.status for o in result.unfilled] == [OrderStatus.CANCELED]  # the partly filled sale
    assert all(o.status is OrderStatus.FILLED for o in result.orders if o.side is Side.BUY)
    assert b.min_cash_seen >= 0
    assert result.cash >= OPTIONS.cash_buffer
    assert result.cash == b.cash
    planned_buy_cost = sum((t.notional + t.fee for t in plan.buys), D(0))
    spent = sum((o.filled_notional + o.fees for o in result.orders if o.side is Side.BUY), D(0))
    assert spent < planned_buy_cost


async def test_a_rejected_sale_does_not_let_buys_overspend() -> None:
    p = problem(cash="50")
    b = broker(p, reject={"OLD"})
    result = await execute_plan(rebalance(p), b.submit)
    assert any(o.status is OrderStatus.REJECTED for o in result.orders)
    assert not [o for o in result.orders if o.status is OrderStatus.REJECTED and o.side is Side.BUY]
    assert b.min_cash_seen >= 0
    assert result.cash >= OPTIONS.cash_buffer
