"""The optimized rebalancer: the same rules as the baseline, over whole arrays of exact integers.

The rules run as one compiled array pass per phase (:mod:`tradepulse.portfolio._kernels`, numba with
``cache=True``, so the compile happens once per machine) over int64 lots and money units; numpy does the
plumbing around them (picking the orders out, sells then buys).
"""

from __future__ import annotations

import numpy as np

from tradepulse.portfolio._kernels import execute_rules, no_sells, targets, turnover_cap
from tradepulse.portfolio.rebalance_plan import RebalancePlan, plan_from_arrays
from tradepulse.portfolio.rebalance_problem import RebalanceProblem


def rebalance_vectorized(problem: RebalanceProblem) -> RebalancePlan:
    """Return the plan for ``problem``; equal to :func:`~tradepulse.portfolio.rebalance_baseline.rebalance_baseline`."""
    v = problem.ints
    o = problem.options
    n = len(v.held_lots)
    trade = np.empty(n, dtype=np.int64)
    reason = np.empty(n, dtype=np.int8)
    fees = np.zeros(n, dtype=np.int64)
    invest = max(v.value - v.buffer, 0)
    targets(v.held_lots, v.lot_value, v.weight, v.tolerance, v.weight_scale, invest, o.has_bands, trade, reason)
    if not o.allow_sells:
        no_sells(trade, reason)
    if v.has_turnover:
        turnover_cap(trade, v.lot_value, v.turnover_num, v.value, reason)
    cash = execute_rules(
        v.held_lots,
        v.lot_value,
        trade,
        reason,
        fees,
        v.cash,
        v.buffer,
        v.min_notional,
        v.fee_fixed,
        v.fee_unit,
        v.fee_rate_num,
        v.fee_rate_den,
    )
    return plan_from_arrays(problem, "vectorized", trade, fees, reason, int(cash))


__all__ = ["rebalance_vectorized"]
