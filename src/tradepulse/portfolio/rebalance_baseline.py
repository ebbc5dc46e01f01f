"""The baseline rebalancer: the rules of :mod:`tradepulse.portfolio.rebalance`, one position at a time.

Plain Python over Decimals (exact: the money context traps any rounding) and Fractions for ratios, written to
be read against the rules rather than to be fast. It is the reference the vectorized implementation must equal,
and the benchmark's baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from tradepulse.domain.money import EXACT, ZERO
from tradepulse.portfolio.rebalance_plan import Reason, RebalancePlan, plan_from_arrays
from tradepulse.portfolio.rebalance_problem import RebalanceProblem

SCALE = 10**9  # turnover and cash scale factors are rounded down to 9 decimal places


def rebalance_baseline(problem: RebalanceProblem) -> RebalancePlan:
    """Return the plan for ``problem``, computed position by position."""
    with localcontext(EXACT):
        return _rebalance(problem)


def _rebalance(problem: RebalanceProblem) -> RebalancePlan:
    o = problem.options
    n = len(problem)
    unit = Decimal(1).scaleb(-problem.ints.money_exponent)

    def fee(notional: Decimal) -> Decimal:
        if notional == 0:
            return ZERO
        variable = math.ceil(Fraction(o.fee_rate * notional) / Fraction(o.fee_precision)) * o.fee_precision
        return o.fee_per_order + variable

    lot_values = [problem.prices[i] * problem.steps[i] for i in range(n)]
    held = [int(problem.quantities[i] / problem.steps[i]) for i in range(n)]
    value = problem.cash + sum((problem.quantities[i] * problem.prices[i] for i in range(n)), ZERO)
    invest = max(value - o.cash_buffer, ZERO)

    # 1. where each symbol should be: closed, left in its band, or at the lot nearest its target
    trade = [0] * n
    reason = [Reason.AT_TARGET] * n
    for i in range(n):
        w = problem.weights[i]
        if w == 0:
            trade[i] = -held[i]
            reason[i] = Reason.CLOSE if held[i] else Reason.AT_TARGET
            continue
        target_value = w * invest
        if o.has_bands and held[i] > 0:
            tolerances = []
            if o.drift_abs is not None:
                tolerances.append(o.drift_abs)
            if o.drift_rel is not None:
                tolerances.append(o.drift_rel * w)
            position = problem.quantities[i] * problem.prices[i]
            if abs(position - target_value) <= min(tolerances) * invest:
                reason[i] = Reason.IN_BAND
                continue
        ideal = Fraction(target_value) / Fraction(lot_values[i])
        below = math.floor(ideal)
        rest = ideal - below
        # nearest step; an exact tie goes toward the current holding
        up = rest > Fraction(1, 2) or (rest == Fraction(1, 2) and held[i] > below)
        nearest = below + 1 if up else below
        trade[i] = nearest - held[i]
        reason[i] = Reason.TRADE if trade[i] else Reason.AT_TARGET

    # 1b. a buy-only rebalance sells nothing
    if not o.allow_sells:
        for i in range(n):
            if trade[i] < 0:
                trade[i] = 0
                reason[i] = Reason.NO_SELL

    # 2. the turnover cap scales every trade down by the same factor, rounded toward zero
    if o.max_turnover is not None:
        gross = sum((abs(trade[i]) * lot_values[i] for i in range(n)), ZERO)
        if gross > o.max_turnover * value:
            factor = math.floor(SCALE * Fraction(o.max_turnover * value) / Fraction(gross))
            for i in range(n):
                if trade[i]:
                    scaled = abs(trade[i]) * factor // SCALE
                    scaled = scaled if trade[i] > 0 else -scaled
                    if scaled != trade[i]:
                        trade[i] = scaled
                        reason[i] = Reason.TURNOVER

    # 3. skip trades below the minimum notional, except the sale of a whole holding
    for i in range(n):
        if trade[i] and abs(trade[i]) * lot_values[i] < o.min_trade_notional and trade[i] != -held[i]:
            trade[i] = 0
            reason[i] = Reason.MIN_NOTIONAL

    # 4. sells first: they raise cash; a sale whose fee eats its proceeds is skipped
    fees = [ZERO] * n
    cash = problem.cash
    for i in range(n):
        if trade[i] < 0:
            notional = -trade[i] * lot_values[i]
            f = fee(notional)
            if f >= notional:
                trade[i] = 0
                reason[i] = Reason.FEE
                continue
            fees[i] = f
            cash += notional - f

    # 5. buys within the cash above the buffer
    budget = cash - o.cash_buffer
    wanted = {i: trade[i] for i in range(n) if trade[i] > 0}

    def cost(i: int, lots: int) -> Decimal:
        return lots * lot_values[i] + fee(lots * lot_values[i]) if lots else ZERO

    if sum((cost(i, b) for i, b in wanted.items()), ZERO) > budget:
        got = dict.fromkeys(wanted, 0)
        # 5a. pro rata: reserve each order's fixed fee (and one fee step of rounding), scale the rest
        slack = o.fee_precision if o.fee_rate > 0 else ZERO
        spendable = budget - len(wanted) * (o.fee_per_order + slack)
        if spendable > 0:
            # what is left after the proportional fee, rounded down to the money unit
            spendable = math.floor(Fraction(spendable) / (1 + Fraction(o.fee_rate)) / Fraction(unit)) * unit
            wanted_notional = sum((b * lot_values[i] for i, b in wanted.items()), ZERO)
            factor = math.floor(SCALE * Fraction(spendable) / Fraction(wanted_notional))
            for i, b in wanted.items():
                got[i] = b * factor // SCALE
        for i in wanted:
            if got[i] and got[i] * lot_values[i] < o.min_trade_notional:
                got[i] = 0
        left = budget - sum((cost(i, k) for i, k in got.items()), ZERO)
        # 5b. top up, biggest shortfall first (then by symbol), with as many lots as the rest of the cash buys
        for i in sorted(wanted, key=lambda i: (-(wanted[i] - got[i]) * lot_values[i], i)):
            have = got[i]

            def extra_cost(extra: int, i: int = i, have: int = have) -> Decimal:
                return cost(i, have + extra) - cost(i, have)

            extra = _most_lots(have, wanted[i], left, lot_values[i], o.min_trade_notional, extra_cost)
            if extra:
                left -= cost(i, got[i] + extra) - cost(i, got[i])
                got[i] += extra
        for i, b in wanted.items():
            if got[i] != b:
                trade[i] = got[i]
                reason[i] = Reason.CASH
    for i in range(n):
        if trade[i] > 0:
            fees[i] = fee(trade[i] * lot_values[i])
            cash -= trade[i] * lot_values[i] + fees[i]

    units = problem.ints.money_exponent
    return plan_from_arrays(
        problem,
        "baseline",
        np.array(trade, dtype=np.int64),
        np.array([int(f.scaleb(units)) for f in fees], dtype=np.int64),
        np.array([int(r) for r in reason], dtype=np.int8),
        int(cash.scaleb(units)),
    )


def _most_lots(
    have: int, want: int, left: Decimal, lot_value: Decimal, minimum: Decimal, extra_cost: Callable[[int], Decimal]
) -> int:
    """Return the most extra lots (up to ``want - have``) whose extra cost fits in ``left`` and whose total
    reaches the minimum notional; 0 if none do. Extra cost grows with the lots, so a bisection finds it."""
    smallest = max(1, math.ceil(Fraction(minimum) / Fraction(lot_value)) - have)
    most = min(want - have, math.floor(Fraction(max(left, ZERO)) / Fraction(lot_value)))
    if smallest > most or extra_cost(smallest) > left:
        return 0
    lo, hi = smallest, most  # extra_cost(lo) fits; find the largest that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if extra_cost(mid) <= left:
            lo = mid
        else:
            hi = mid - 1
    return lo


__all__ = ["rebalance_baseline"]
