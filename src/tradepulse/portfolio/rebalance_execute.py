"""Executing a rebalance plan: sells first, their fills awaited, then buys sized to the cash they really raised.

The rebalancer does not know the execution engine; it talks to one callable,
``submit(SubmitOrder) -> Awaitable[Order]``, which must resolve once the order is *terminal* (filled, or
rejected / canceled / expired, possibly after partial fills). The engine's client provides it; tests use a small
broker that really fills.

Safety:

- Sells are all sent first and awaited. Only then are buys sent, so buys spend cash that exists.
- If the sells raised less than planned (partial fills, rejections, worse prices, higher fees), the buys are
  planned again, buy-only, from the portfolio as it now is (same prices, targets and options, the cash actually
  there), so they never spend cash the sells did not bring.
- Client order ids are deterministic (see :meth:`RebalancePlan.submit_orders`): running the same rebalance
  again after a crash re-sends the same ids, which the engine deduplicates instead of trading twice; the
  re-planned buys derive from the recorded sell outcomes, so their ids repeat too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from tradepulse.domain import Order, OrderStatus, Side, SubmitOrder
from tradepulse.domain.money import ZERO
from tradepulse.portfolio.rebalance_build import build_problem
from tradepulse.portfolio.rebalance_plan import RebalancePlan
from tradepulse.portfolio.rebalance_problem import RebalanceInputError, RebalanceProblem
from tradepulse.portfolio.rebalance_vectorized import rebalance_vectorized

SubmitFn = Callable[[SubmitOrder], Awaitable[Order]]


class ExecutionError(RuntimeError):
    """The submit callable broke its contract (e.g. returned an order that is not terminal)."""


@dataclass
class ExecutionResult:
    """What happened: every final order, the cash and holdings they leave, and the plans used."""

    plan: RebalancePlan
    orders: list[Order] = field(default_factory=list)
    cash: Decimal = ZERO
    holdings: dict[str, Decimal] = field(default_factory=dict)
    replanned_buys: RebalancePlan | None = None

    @property
    def unfilled(self) -> list[Order]:
        """Return the orders that did not fill completely."""
        return [o for o in self.orders if o.status is not OrderStatus.FILLED]

    def after(self) -> RebalanceProblem:
        """Return the portfolio after execution as a problem (same prices, targets and options), e.g. to show
        post-trade weights against targets or to check that nothing is left to do."""
        return _problem_like(self.plan.problem, self.cash, self.holdings)


def _problem_like(
    problem: RebalanceProblem, cash: Decimal, holdings: dict[str, Decimal], *, buy_only: bool = False
) -> RebalanceProblem:
    options = msgspec.structs.replace(problem.options, allow_sells=False) if buy_only else problem.options
    return build_problem(
        cash=cash,
        holdings=holdings,
        securities=problem.securities,
        targets=dict(zip(problem.symbols, problem.weights, strict=True)),
        options=options,
    )


def _apply(order: Order, cash: Decimal, holdings: dict[str, Decimal]) -> Decimal:
    if not order.is_terminal:
        raise ExecutionError(f"order {order.client_order_id}: submit returned it in status {order.status}")
    sign = 1 if order.side is Side.BUY else -1
    holdings[order.symbol] = holdings.get(order.symbol, ZERO) + sign * order.filled_quantity
    return cash - sign * order.filled_notional - order.fees


async def execute_plan(
    plan: RebalancePlan,
    submit: SubmitFn,
    *,
    strategy_id: str = "rebalance",
    account_id: str = "default",
    prefix: str = "rb",
    key: str | None = None,
) -> ExecutionResult:
    """Send ``plan``'s sells, await them, then its buys (re-planned if the sells raised less cash than planned).
    ``key`` fixes the client order ids' middle part (see :meth:`RebalancePlan.submit_orders`)."""
    problem = plan.problem
    result = ExecutionResult(
        plan=plan, cash=problem.cash, holdings=dict(zip(problem.symbols, problem.quantities, strict=True))
    )
    orders = plan.submit_orders(strategy_id=strategy_id, account_id=account_id, prefix=prefix, key=key)
    sells = [o for o in orders if o.side is Side.SELL]
    buys = [o for o in orders if o.side is Side.BUY]
    done = await asyncio.gather(*(submit(o) for o in sells))
    cash = problem.cash
    for order in done:
        cash = _apply(order, cash, result.holdings)
    result.orders.extend(done)
    planned = problem.cash + sum((t.notional - t.fee for t in plan.sells), ZERO)
    if buys and cash < planned:
        try:
            replan = rebalance_vectorized(_problem_like(problem, cash, result.holdings, buy_only=True))
        except RebalanceInputError as exc:
            raise ExecutionError(
                f"sells raised less cash than planned and the buys cannot be re-planned: {exc}"
            ) from exc
        result.replanned_buys = replan
        buys = replan.submit_orders(strategy_id=strategy_id, account_id=account_id, prefix=prefix, key=key)
    done = await asyncio.gather(*(submit(o) for o in buys))
    for order in done:
        cash = _apply(order, cash, result.holdings)
    result.orders.extend(done)
    result.cash = cash
    return result


__all__ = ["ExecutionError", "ExecutionResult", "SubmitFn", "execute_plan"]
