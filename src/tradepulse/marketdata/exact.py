"""Exact sums of floats, as ``m * 2**e`` with an integer ``m``: what the 1-minute rollup sums volume with.

Float addition is not associative: a running float sum of a minute's sizes depends on how its ticks were split
into batches. The exact sum does not, and every finite float is ``mantissa * 2**exponent`` with a 53-bit integer
mantissa, so a sum of floats is exactly an integer times a power of two. Partial sums are kept that way, merged
exactly (align the exponents, add the integers), and rounded to the nearest float once, when a bar is read:
``float(m) * 2**e`` is correctly rounded because int-to-float conversion is, and scaling by a power of two is
exact (outside the subnormal range, below 2.2e-308, which no price or size reaches).

:func:`exact_sums` is vectorised. Each group gets a common exponent (its smallest); each mantissa is split into
three limbs of 17/18/18 bits, shifted to that exponent and summed per group in int64, which cannot overflow while
the exponents in a group span at most 27 bits (values within a factor of ~10^8 of each other) and a group has
fewer than 2^19 values. The rare group outside those bounds is summed with Python integers instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_TWO53 = float(2**53)
_LIMB = 18
_LIMB_MASK = (1 << _LIMB) - 1
_MAX_SHIFT = 27
_MAX_COUNT = 1 << 19


@dataclass(frozen=True, eq=False)
class ExactSums:
    """Exact group sums: group g is ``m(g) * 2**e[g]``, with ``m(g) = a << 36 + b << 18 + c`` unless in ``big``."""

    a: I64
    b: I64
    c: I64
    e: I64
    #: groups whose mantissa does not fit the limbs (kept as Python integers)
    big: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.e)

    def mantissa(self, g: int) -> int:
        if g in self.big:
            return self.big[g]
        return (int(self.a[g]) << (2 * _LIMB)) + (int(self.b[g]) << _LIMB) + int(self.c[g])

    def small(self) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Return the mantissas as int64 and where that is exact (elsewhere use :meth:`mantissa`)."""
        ok = (self.a < (1 << 25)) & (self.b < (1 << 43)) & (self.c < (1 << 61))  # so the sum stays < 2**63
        if self.big:
            ok[list(self.big)] = False
        a, b, c = (np.where(ok, x, 0) for x in (self.a, self.b, self.c))
        return (a << (2 * _LIMB)) + (b << _LIMB) + c, ok

    def mantissas(self) -> list[int]:
        """Return every mantissa as a Python integer."""
        m, ok = self.small()
        out: list[int] = m.tolist()
        for g in np.flatnonzero(~ok).tolist():
            out[g] = self.mantissa(g)
        return out

    def floats(self) -> list[float]:
        return [dyadic_float(m, e) for m, e in zip(self.mantissas(), self.e.tolist(), strict=True)]


def exact_sums(values: F64, starts: npt.NDArray[np.integer]) -> ExactSums:
    """Return the exact sum of each group of ``values``; group g is ``values[starts[g]:starts[g + 1]]``.

    Values must be finite and not negative (sizes and turnovers are).
    """
    n = len(values)
    groups = len(starts)
    if n and (not np.isfinite(values).all() or (values < 0).any()):
        raise ValueError("exact_sums: values must be finite and >= 0")
    if groups == 0:
        z = np.zeros(0, dtype=np.int64)
        return ExactSums(z, z, z, z)
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.diff(np.append(starts, n))
    group = np.repeat(np.arange(groups, dtype=np.int64), counts)
    frac, exp2 = np.frexp(values)
    mant = (frac * _TWO53).astype(np.int64)  # exact: frac has 53 significant bits
    exp = exp2.astype(np.int64) - 53
    nonzero = mant != 0
    big_exp = np.iinfo(np.int64).max
    emin = np.minimum.reduceat(np.where(nonzero, exp, big_exp), starts)
    emin = np.where(emin == big_exp, 0, emin)
    shift = np.where(nonzero, exp - emin[group], 0)
    fits = (np.maximum.reduceat(shift, starts) <= _MAX_SHIFT) & (counts < _MAX_COUNT)
    shift = np.where(fits[group], shift, 0)  # rows of groups that do not fit are summed below, exactly
    a = np.add.reduceat((mant >> (2 * _LIMB)) << shift, starts)
    b = np.add.reduceat(((mant >> _LIMB) & _LIMB_MASK) << shift, starts)
    c = np.add.reduceat((mant & _LIMB_MASK) << shift, starts)
    big: dict[int, int] = {}
    for g in np.flatnonzero(~fits).tolist():
        lo, hi = int(starts[g]), int(starts[g]) + int(counts[g])
        e0 = int(emin[g])
        big[g] = sum((m << (x - e0) for m, x in zip(mant[lo:hi].tolist(), exp[lo:hi].tolist(), strict=True) if m), 0)
    return ExactSums(a, b, c, emin, big)


def dyadic_add(m1: int, e1: int, m2: int, e2: int) -> tuple[int, int]:
    """Return ``m1 * 2**e1 + m2 * 2**e2`` as (m, e) with ``e = min(e1, e2)``, exactly (the stores' rule too)."""
    if e1 <= e2:
        return m1 + (m2 << (e2 - e1)), e1
    return (m1 << (e1 - e2)) + m2, e2


def dyadic_float(m: int, e: int) -> float:
    """Return ``m * 2**e`` rounded to the nearest float (correctly, outside the subnormal range)."""
    if m == 0:
        return 0.0
    # float(m) rounds once; scaling by a power of two is exact. Shift huge mantissas down first so that
    # float(m) cannot overflow; dropping bits below the 64th keeps the rounding right (sticky bit).
    excess = m.bit_length() - 64
    if excess > 0:
        sticky = 1 if m & ((1 << excess) - 1) else 0
        m = (m >> excess) | sticky
        e += excess
    return math.ldexp(float(m), e)


_INT64_MAX = (1 << 63) - 1


def sqlite_mantissa(m: int) -> int | str:
    """Return a mantissa as SQLite can hold it: an INTEGER when it fits in 64 bits, else decimal TEXT."""
    return m if m <= _INT64_MAX else str(m)


def sqlite_exact_add(m1: int | str, e1: int, m2: int | str, e2: int) -> int | str:
    """The SQLite store's merge function: the mantissa of ``m1 * 2**e1 + m2 * 2**e2`` at ``min(e1, e2)``."""
    return sqlite_mantissa(dyadic_add(int(m1), e1, int(m2), e2)[0])
