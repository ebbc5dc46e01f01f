"""The vectorized rebalancer's compiled kernels: exact 128-bit helpers and one array pass per rule phase.

Money is int64 units, quantities int64 lots, weights int64 over the weight scale (see
:mod:`tradepulse.portfolio.rebalance_problem`). A few decisions multiply two such numbers (a weight scaled by
10**18 times a portfolio value, a fee rate times a notional); those products need up to 126 bits. numba has no
int128, so a 128-bit value is a pair of ``uint64`` ``(hi, lo)``, multiplied, compared, subtracted and divided
exactly by the helpers below. Keep every intermediate of those ``uint64``: numba promotes a mix of ``uint64``
and ``int64`` to float64, which would silently lose bits. No float ever decides a quantity or an amount.

Everything compiled lives in this one file on purpose: numba's on-disk cache (``cache=True``) is invalidated by
a change to the file a function is defined in, not by a change to the functions it calls in other files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from tradepulse.portfolio.rebalance_plan import Reason

F = TypeVar("F", bound=Callable[..., Any])
#: an int64 or uint64 scalar (a Python int outside numba)
Int = Any
IntArray = npt.NDArray[np.int64]

#: ``numba.njit(cache=True)``, typed for mypy (numba ships no annotations).
njit = cast(Callable[[F], F], numba.njit(cache=True, nogil=True))

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_TWO64 = 18446744073709551616.0


@njit
def mul(a: Int, b: Int) -> tuple[Int, Int]:
    """Return ``a * b`` as ``(hi, lo)`` for non-negative int64 ``a`` and ``b``."""
    ua = np.uint64(a)
    ub = np.uint64(b)
    a0 = ua & _M32
    a1 = ua >> _S32
    b0 = ub & _M32
    b1 = ub >> _S32
    p00 = a0 * b0
    p01 = a0 * b1
    p10 = a1 * b0
    p11 = a1 * b1
    # middle = high half of p00 + low halves of the cross products; < 3 * 2**32, no overflow
    middle = (p00 >> _S32) + (p01 & _M32) + (p10 & _M32)
    lo = (middle << _S32) | (p00 & _M32)
    hi = p11 + (p01 >> _S32) + (p10 >> _S32) + (middle >> _S32)
    return hi, lo


@njit
def cmp(ahi: Int, alo: Int, bhi: Int, blo: Int) -> int:
    """Return -1, 0 or 1 as the 128-bit value ``a`` is below, equal to or above ``b``."""
    if ahi != bhi:
        return 1 if ahi > bhi else -1
    if alo != blo:
        return 1 if alo > blo else -1
    return 0


@njit
def sub(ahi: Int, alo: Int, bhi: Int, blo: Int) -> tuple[Int, Int]:
    """Return ``a - b`` (mod 2**128); callers only use it when ``a >= b``."""
    lo = np.uint64(alo) - np.uint64(blo)
    borrow = _ONE if np.uint64(alo) < np.uint64(blo) else _ZERO
    return np.uint64(ahi) - np.uint64(bhi) - borrow, lo


@njit
def add64(hi: Int, lo: Int, b: Int) -> tuple[Int, Int]:
    """Return ``(hi, lo) + b`` for a non-negative int64 ``b``."""
    ub = np.uint64(b)
    nlo = np.uint64(lo) + ub
    carry = _ONE if nlo < ub else _ZERO
    return np.uint64(hi) + carry, nlo


@njit
def to_float(hi: Int, lo: Int) -> float:
    """Return the 128-bit value as a float (rounded)."""
    return float(hi) * _TWO64 + float(lo)


@njit
def divmod_u128(hi: Int, lo: Int, c: Int) -> tuple[Int, Int]:
    """Return ``(q, r)`` with ``hi * 2**64 + lo == q * c + r`` and ``0 <= r < c``.

    ``c`` is a positive int64 and the quotient must be below 2**62. The quotient is estimated in floating point
    and corrected exactly: each float step is within a relative 2**-50 of the truth, so after at most a few
    steps the residual ``value - q * c`` fits an int64 and one floor division finishes the job.
    """
    est = to_float(hi, lo) / float(c)
    if est >= 4.611686018427388e18:
        raise OverflowError("quotient does not fit in 62 bits")
    q = np.int64(est)
    limit = np.uint64(1) << np.uint64(63)
    for _ in range(8):
        qhi, qlo = mul(q, c)
        if cmp(hi, lo, qhi, qlo) >= 0:
            rhi, rlo = sub(hi, lo, qhi, qlo)
            if rhi == _ZERO and rlo < limit:
                r = np.int64(rlo)
                return q + r // c, r % c
            q += max(np.int64(1), np.int64(to_float(rhi, rlo) / float(c)))
        else:
            rhi, rlo = sub(qhi, qlo, hi, lo)
            if rhi == _ZERO and rlo < limit:
                r = -np.int64(rlo)  # fits: rlo < 2**63
                return q + r // c, r % c
            q -= np.int64(to_float(rhi, rlo) / float(c)) + 1
            if q < 0:
                q = np.int64(0)
    raise OverflowError("128-bit division did not converge")


@njit
def muldiv(a: Int, b: Int, c: Int) -> tuple[Int, Int]:
    """Return ``(floor(a * b / c), a * b mod c)`` exactly, for non-negative int64 ``a``, ``b`` and positive ``c``."""
    hi, lo = mul(a, b)
    return divmod_u128(hi, lo, c)


@njit
def cmp_products(a: Int, b: Int, c: Int, d: Int) -> int:
    """Return the sign of ``a * b - c * d`` for non-negative int64 operands."""
    ahi, alo = mul(a, b)
    chi, clo = mul(c, d)
    return cmp(ahi, alo, chi, clo)


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
NO_SELL = int(Reason.NO_SELL)


@njit
def fee(notional: int, fixed: int, unit: int, rate_num: int, rate_den_units: int) -> int:
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
def targets(
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
def no_sells(trade: IntArray, reason: npt.NDArray[np.int8]) -> None:
    """Phase 1b: a buy-only rebalance sells nothing."""
    for i in range(trade.shape[0]):
        if trade[i] < 0:
            trade[i] = 0
            reason[i] = NO_SELL


@njit
def turnover_cap(trade: IntArray, lot_value: IntArray, cap_num: int, value: int, reason: npt.NDArray[np.int8]) -> None:
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
def execute_rules(
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
            f = fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
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
            total += notional + fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
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
                    left -= notional + fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
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
                base = have * lv + fee(have * lv, fee_fixed, fee_unit, rate_num, rate_den_units)
            lo_n = (have + smallest) * lv
            if lo_n + fee(lo_n, fee_fixed, fee_unit, rate_num, rate_den_units) - base > left:
                continue
            lo = smallest
            hi = most
            while lo < hi:
                mid = (lo + hi + 1) // 2
                mn = (have + mid) * lv
                if mn + fee(mn, fee_fixed, fee_unit, rate_num, rate_den_units) - base <= left:
                    lo = mid
                else:
                    hi = mid - 1
            tn = (have + lo) * lv
            left -= tn + fee(tn, fee_fixed, fee_unit, rate_num, rate_den_units) - base
            got[i] = have + lo
        for i in range(n):
            if trade[i] > 0 and got[i] != trade[i]:
                trade[i] = got[i]
                reason[i] = CASH
    for i in range(n):
        t = trade[i]
        if t > 0:
            notional = t * lot_value[i]
            f = fee(notional, fee_fixed, fee_unit, rate_num, rate_den_units)
            fees[i] = f
            cash -= notional + f
    return cash


__all__ = [
    "cmp",
    "cmp_products",
    "divmod_u128",
    "execute_rules",
    "fee",
    "mul",
    "muldiv",
    "no_sells",
    "targets",
    "turnover_cap",
]
