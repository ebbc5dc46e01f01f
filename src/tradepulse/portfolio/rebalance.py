"""Portfolio rebalancing: from holdings, prices, cash and target weights to an exact, executable order list.

Usage (Decimal mappings; a portfolio system holding numpy columns calls :func:`build_problem_arrays` instead,
the fast path, see :mod:`~tradepulse.portfolio.rebalance_columns`)::

    problem = build_problem(cash="1000", holdings={"AAPL": 10}, securities=[security("AAPL", "190.12"),
                            security("MSFT", "410.50")], targets={"AAPL": "0.5", "MSFT": "0.45"},
                            options=RebalanceOptions(drift_abs=Decimal("0.02"), cash_buffer=Decimal("50")))
    plan = rebalance(problem)          # the vectorized implementation; rebalance_baseline() gives the same plan
    for trade in plan.trades: ...      # sells first, then buys
    plan.cash_after, plan.fees, plan.turnover, plan.positions

The rules
---------
Definitions. ``V`` = cash + sum(quantity x price); ``I`` = max(V - cash_buffer, 0), the *investable* value:
weights, drift and post-trade weights are fractions of ``I``. A symbol's *step* is its lot size (or the
fractional step if it trades in fractions) and its *lot value* is price x step. Symbols are handled in sorted
order; every rounding below is exact (Decimal/Fraction in the baseline, integers in the vectorized core).

1. **Targets.** A symbol with weight 0 (or absent from the targets) is sold entirely. A held symbol with a
   positive weight whose ``|value - w x I| <= tolerance x I`` is left alone, where tolerance is ``drift_abs``,
   ``drift_rel x w``, or the smaller of both when both are set (no bands: no tolerance). A new symbol (not held)
   is always bought. Every other symbol goes to the multiple of its step *nearest* ``w x I / price``; an exact
   tie goes toward the current holding (the smaller trade).
   With ``allow_sells`` false (a buy-only rebalance) no sale is made.
2. **Turnover cap.** If the traded notional (buys + sells) exceeds ``max_turnover x V``, every trade is
   multiplied by ``floor(1e9 x max_turnover x V / traded) / 1e9`` and rounded toward zero to whole steps.
3. **Minimum notional.** A trade below ``min_trade_notional`` is dropped, unless it sells the whole holding.
4. **Sells** come first and raise cash: ``fee = fee_per_order + ceil(fee_rate x notional / fee_precision) x
   fee_precision``; a sale whose fee is not less than its proceeds is dropped (it would cost money).
5. **Buys** spend at most ``cash after sells - cash_buffer`` (the *budget*), fees included. If every wanted buy
   fits, all are made. Otherwise:
   a. pro rata: reserve ``fee_per_order`` (+ one ``fee_precision`` when there is a fee rate) per wanted buy;
      divide the rest by ``1 + fee_rate`` and round down to the money unit; each buy gets
      ``floor(wanted x f)`` steps with ``f = floor(1e9 x that / wanted notional) / 1e9``; buys that end below
      the minimum notional get nothing;
   b. top-up: in order of largest unfilled notional (then symbol), each buy takes as many more steps (up to what
      it wanted, and reaching the minimum notional) as the cash still left pays for, fees included.

Because sells precede buys and buys never spend below the buffer, cash never goes negative at any point of
execution, fees included; quantities never go below zero (no shorts). The *money unit* is ``10**-k`` for the
finest number of decimals any money input needs (cash, buffer, minimum notional, fees, every price x step).

Idempotence: rebalancing the post-trade portfolio with the same prices and options produces no orders when the
plan's fees are zero and no turnover cap cut it short (a capped plan deliberately leaves trades for the next
run). Fees lower ``V``, shifting each ideal by ``w x fees``; drift bands wider than that absorb it.

Errors (:class:`RebalanceInputError`, naming the symbol and field): weights that are negative, NaN, above 1 or
that sum above 1; prices that are NaN, not positive or off the tick grid; negative or NaN quantities; unknown
or duplicate symbols; lot sizes <= 0. Nothing is computed from invalid input.
"""

from __future__ import annotations

from typing import Literal

from tradepulse.portfolio.rebalance_baseline import rebalance_baseline
from tradepulse.portfolio.rebalance_build import build_problem
from tradepulse.portfolio.rebalance_columns import build_problem_arrays, decimal_inputs
from tradepulse.portfolio.rebalance_plan import PositionRow, Reason, RebalancePlan, Trade
from tradepulse.portfolio.rebalance_problem import (
    ModelPortfolio,
    RebalanceInputError,
    RebalanceOptions,
    RebalanceProblem,
    Security,
    security,
)
from tradepulse.portfolio.rebalance_vectorized import rebalance_vectorized

Engine = Literal["vectorized", "baseline"]


def rebalance(problem: RebalanceProblem, *, engine: Engine = "vectorized") -> RebalancePlan:
    """Return the plan for ``problem`` (both engines return equal plans; the vectorized one is faster)."""
    if engine == "baseline":
        return rebalance_baseline(problem)
    return rebalance_vectorized(problem)


__all__ = [
    "Engine",
    "ModelPortfolio",
    "PositionRow",
    "Reason",
    "RebalanceInputError",
    "RebalanceOptions",
    "RebalancePlan",
    "RebalanceProblem",
    "Security",
    "Trade",
    "build_problem",
    "build_problem_arrays",
    "decimal_inputs",
    "rebalance",
    "rebalance_baseline",
    "rebalance_vectorized",
    "security",
]
