"""The optimized rebalancer: the same rules as the baseline, over whole arrays of exact integers.

Quantities are int64 lots, money int64 units, weights int64 over the weight scale (see
:mod:`tradepulse.portfolio.rebalance_problem`). Each phase of the rules is one array pass compiled by numba
(``cache=True``, so the compile happens once per machine); products that need more than 64 bits go through the
exact 128-bit helpers of :mod:`tradepulse.portfolio._u128`. No float ever decides a quantity or an amount.
numpy does the plumbing around the kernel (picking the orders out, sells then buys).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tradepulse.portfolio._u128 import cmp_products, muldiv, njit
from tradepulse.portfolio.rebalance_plan import Reason, RebalancePlan, plan_from_arrays
from tradepulse.portfolio.rebalance_problem import RebalanceProblem

IntArray = npt.NDArray[np.int64]
SCALE = 10**9
TURNOVER_DEN = 10**6  # max_turnover is an integer over 10**6 (at most 6 decimal places)

AT_TARGET = int(Reason.AT_TARGET)
IN_BAND = int(Reason.IN_BAND)
TRADE = int(Reason.TRADE)
CLOSE = int(Reason.CLOSE)
MIN_NOTIONAL = int(Reason.MIN_NOTIONAL)
TURNOVER = int(Reason.TURNOVER)
FEE = int(Reason.FEE)
CASH = int(Reason.CASH)


@njit
def _fee(notional: int, fixed: int, unit: int, rate_num: int, rate_den_units: int) -> int:
    """Return ``fixed + unit * ceil(rate * notional / unit)`` for a non-zero notional, else 0."""
    if notional == 0:
        return 0
    if rate_num == 0:
        return fixed
    q, r = muldiv(rate_num, notional, rate_den_units)
    if r > 0:
        q += 1
    return int(fixed + q * unit)


@njit
def _targets(
    held: IntArray,
    lot_value: IntArray,
    weight: IntArray,
    tolerance: IntArray,
    scale: int,
    invest: int,
    has_bands: bool,
    trade: IntArray,
    reason: npt.NDArray[np.int8],
) -> None:
    """Phase 1: close zero targets, leave positions inside their band, round the rest to the nearest lot."""
    for i in range(held.shape[0]):
        h = held[i]
        lv = lot_value[i]
        if weight[i] == 0:
            trade[i] = -h
            reason[i] = CLOSE if h != 0 else AT_TARGET
            continue
        # target value = tq + tr / scale (money units), exactly
        tq, tr = muldiv(weight[i], invest, scale)
        if has_bands and h > 0:
            oq, orr = muldiv(tolerance[i], invest, scale)
            e = h * lv - tq
            # |position - target| as an integer part and a fraction over ``scale``
            if e > 0 or (e == 0 and tr == 0):
                di, df = (e - 1, scale - tr) if tr > 0 else (e, 0)
            else:
                di, df = -e, tr
            if di < oq or (di == oq and df <= orr):
                trade[i] = 0
                reason[i] = IN_BAND
                continue
        k = tq // lv
        s = 2 * (tq - k * lv) - lv  # sign of (rest - 1/2) is the sign of s * scale + 2 * tr
        if s >= 1:
            c = 1
        elif s <= -2:
            c = -1
        elif s == 0:
            c = 1 if tr > 0 else 0
        else:
            d = 2 * tr - scale
            c = 1 if d > 0 else (-1 if d < 0 else 0)
        nearest = k + 1 if (c > 0 or (c == 0 and h > k)) else k
        trade[i] = nearest - h
        reason[i] = TRADE if nearest != h else AT_TARGET


@njit
def _turnover_cap(trade: IntArray, lot_value: IntArray, cap_num: int, value: int, reason: npt.NDArray[np.int8]) -> None:
    """Phase 2: if the traded notional exceeds ``cap_num / 10**6`` of the value, scale every trade down."""
    gross = 0
    for i in range(trade.shape[0]):
        gross += abs(trade[i]) * lot_value[i]
    if gross == 0 or cmp_products(gross, TURNOVER_DEN, cap_num, value) <= 0:
        return
    factor, _ = muldiv(cap_num * (SCALE // TURNOVER_DEN), value, gross)
    for i in range(trade.shape[0]):
        t = trade[i]
        if t != 0:
            q, _ = muldiv(abs(t), factor, SCALE)
            scaled = q if t > 0 else -q
            if scaled != t:
                trade[i] = scaled
                reason[i] = TURNOVER


@njit
def _execute_rules(
    held: IntArray,
    lot_value: IntArray,
    trade: IntArray,
    reason: npt.NDArray[np.int8],
    fees: IntArray,
    cash: int,
    buffer: int,
    min_notional: int,
    fee_fixed: int,
    fee_unit: int,
    rate_num: int,
    rate_den: int,
) -> int:
    """Phases 3-5: minimum notional, sells, then buys within the cash above the buffer. Return cash after."""
    n = held.shape[0]
    rate_den_units = rate_den * fee_unit
    for i in range(n):
        t = trade[i]
        if t != 0 and abs(t) * lot_value[i] < min_notional and t != -held[i]:
            trade[i] = 0
            reason[i] = MIN_NOTIONAL
    for i in range(n):
        t = trade[i]
        if t < 0:
            notional = -t * lot_value[i]
            f = _fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
            if f >= notional:
                trade[i] = 0
                reason[i] = FEE
                continue
            fees[i] = f
            cash += notional - f
    budget = cash - buffer
    total = 0
    buys = 0
    wanted_notional = 0
    for i in range(n):
        t = trade[i]
        if t > 0:
            notional = t * lot_value[i]
            total += notional + _fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
            wanted_notional += notional
            buys += 1
    if total > budget:
        got = np.zeros(n, dtype=np.int64)
        slack = fee_unit if rate_num > 0 else 0
        spend = budget - buys * (fee_fixed + slack)
        if spend > 0:
            if rate_num > 0:
                spend, _ = muldiv(spend, rate_den, rate_den + rate_num)
            factor, _ = muldiv(SCALE, spend, wanted_notional)
            for i in range(n):
                if trade[i] > 0:
                    got[i], _ = muldiv(trade[i], factor, SCALE)
        left = budget
        for i in range(n):
            g = got[i]
            if g > 0:
                notional = g * lot_value[i]
                if notional < min_notional:
                    got[i] = 0
                else:
                    left -= notional + _fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
        shortfall = np.zeros(n, dtype=np.int64)
        for i in range(n):
            if trade[i] > 0:
                shortfall[i] = -(trade[i] - got[i]) * lot_value[i]
        order = np.argsort(shortfall, kind="mergesort")
        for j in range(n):
            i = order[j]
            want = trade[i]
            if want <= 0:
                continue
            have = got[i]
            lv = lot_value[i]
            smallest = max(1, -((-min_notional) // lv) - have)
            most = want - have
            most = min(most, left // lv) if left > 0 else 0
            if smallest > most:
                continue
            base = 0
            if have > 0:
                base = have * lv + _fee(have * lv, fee_fixed, fee_unit, rate_num, rate_den_units)
            lo_n = (have + smallest) * lv
            if lo_n + _fee(lo_n, fee_fixed, fee_unit, rate_num, rate_den_units) - base > left:
                continue
            lo = smallest
            hi = most
            while lo < hi:
                mid = (lo + hi + 1) // 2
                mn = (have + mid) * lv
                if mn + _fee(mn, fee_fixed, fee_unit, rate_num, rate_den_units) - base <= left:
                    lo = mid
                else:
                    hi = mid - 1
            tn = (have + lo) * lv
            left -= tn + _fee(tn, fee_fixed, fee_unit, rate_num, rate_den_units) - base
            got[i] = have + lo
        for i in range(n):
            if trade[i] > 0 and got[i] != trade[i]:
                trade[i] = got[i]
                reason[i] = CASH
    for i in range(n):
        t = trade[i]
        if t > 0:
            notional = t * lot_value[i]
            f = _fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
            fees[i] = f
            cash -= notional + f
    return cash


def rebalance_vectorized(problem: RebalanceProblem) -> RebalancePlan:
    """Return the plan for ``problem``; equal to :func:`~tradepulse.portfolio.rebalance_baseline.rebalance_baseline`."""
    v = problem.ints
    o = problem.options
    n = len(v.held_lots)
    trade = np.empty(n, dtype=np.int64)
    reason = np.empty(n, dtype=np.int8)
    fees = np.zeros(n, dtype=np.int64)
    invest = max(v.value - v.buffer, 0)
    _targets(v.held_lots, v.lot_value, v.weight, v.tolerance, v.weight_scale, invest, o.has_bands, trade, reason)
    if v.has_turnover:
        _turnover_cap(trade, v.lot_value, v.turnover_num, v.value, reason)
    cash = _execute_rules(
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
