"""Exact 128-bit integer helpers for the numba kernels.

The vectorized rebalancer keeps money in int64 minor units and quantities in int64 lots, but a few decisions
multiply two such numbers (a weight scaled by 10**18 times a portfolio value, a fee rate times a notional).
Those products need up to 126 bits. numba has no int128, so a 128-bit value is a pair of ``uint64``
``(hi, lo)``; the helpers below multiply, compare, subtract and divide such pairs exactly.

Every operand of :func:`mul` is a non-negative int64 (< 2**63). Keep every intermediate ``uint64``: numba
promotes a mix of ``uint64`` and ``int64`` to float64, which would silently lose bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

F = TypeVar("F", bound=Callable[..., Any])
#: an int64 or uint64 scalar (a Python int outside numba)
Int = Any

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

    ``c`` is a positive int64 and the quotient must fit in an int64 below 2**62. The quotient is estimated in
    floating point, then corrected exactly: the estimate is within a relative 2**-50 of the truth, so the
    residual ``value - q * c`` fits comfortably in an int64 and one floor division finishes the job.
    """
    est = to_float(hi, lo) / float(c)
    if est >= 4.611686018427388e18:
        raise OverflowError("quotient does not fit in 62 bits")
    q = np.int64(est)
    if q < 0:
        q = np.int64(0)
    qhi, qlo = mul(q, c)
    # residual = value - q*c as a signed 128-bit number, known to be small
    if cmp(hi, lo, qhi, qlo) >= 0:
        rhi, rlo = sub(hi, lo, qhi, qlo)
        if rhi != _ZERO or rlo >= np.uint64(1) << np.uint64(63):
            raise OverflowError("residual out of range")
        r = np.int64(rlo)
    else:
        rhi, rlo = sub(qhi, qlo, hi, lo)
        if rhi != _ZERO or rlo >= np.uint64(1) << np.uint64(63):
            raise OverflowError("residual out of range")
        r = -np.int64(rlo)
    q += r // c
    r = r % c
    return q, r


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


__all__ = ["add64", "cmp", "cmp_products", "divmod_u128", "mul", "muldiv", "njit", "sub", "to_float"]
