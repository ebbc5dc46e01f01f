"""Batch indicator kernels (numba) that follow TA-Lib's conventions exactly.

Each kernel takes float64 arrays and returns an array of the same length with NaN during warm-up, where TA-Lib
returns nothing. The definitions are TA-Lib's, detail for detail: running sums for moving averages, EMAs seeded
with the SMA of their first window, Wilder smoothing for RSI/ATR, TA-Lib's peculiar MACD seeding, population
deviations, its 1e-14 zero tests and lookbacks; the results agree with TA-Lib to ~1e-12 relative or better
(tested to 1e-9). Where a different order of the same operations is much faster (the EMA and Wilder steps
as one multiply-add on the dependency chain, ATR two steps at a time, variance around a re-based reference)
the kernels take it; the online
twins in :mod:`tradepulse.features.online` use the same formulas and agree with the kernels on every step.

Speed: within TA-Lib's C time on 1M points (``make bench-ml``); outputs are allocated by numpy (see
:func:`_new`).

Why match TA-Lib rather than "a" definition: indicator definitions differ in small ways (how an EMA starts,
population vs sample deviation), and a model trained on one definition and served with another sees a shifted
distribution. One reference, tested, removes the question.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import numpy.typing as npt

# the window and volume kernels live next door (file size); one namespace for callers
from tradepulse.features.window_kernels import log_return, obv, rocr, rolling_sum, rolling_vwap, stoch_k

F64 = npt.NDArray[np.float64]

# TA-Lib's TA_IS_ZERO / TA_IS_ZERO_OR_NEG tolerance
EPS = 1e-14
#: the variance re-bases its running sums every REBASE * n steps (see :func:`variance`)
REBASE = 16


def _new(size: int) -> F64:
    """Allocate an output with numpy rather than inside a kernel: numpy asks for transparent huge pages on large
    arrays, which makes the first writes to a fresh 8 MB output several times cheaper (MACD on 1M points: 2.7 ms
    instead of 9.6 ms). So kernels take their outputs as arguments and thin wrappers allocate them."""
    return np.empty(size)


@nb.njit(cache=True)
def _nan_prefix(out: F64, first: int) -> None:
    """Set the warm-up entries (the first ``first``) of ``out`` to NaN."""
    out[: min(first, out.shape[0])] = np.nan


@nb.njit(cache=True)
def _sma_into(x: F64, n: int, out: F64) -> None:
    """Write :func:`sma` into the given outputs."""
    size = x.shape[0]
    _nan_prefix(out, n - 1)
    total = 0.0
    for i in range(min(n - 1, size)):
        total += x[i]
    for i in range(n - 1, size):
        total += x[i]
        out[i] = total / n
        total -= x[i - n + 1]


@nb.njit(cache=True)
def _ema_from(x: F64, n: int, start: int, out: F64) -> None:
    """EMA seeded with the mean of ``x[start-n+1 .. start]`` and written from ``start`` on (TA_INT_EMA).

    The step is ``x k + prev (1 - k)``: TA-Lib's ``(x - prev) k + prev`` rearranged so that only one
    multiply-add is on the loop-carried chain (1.5x faster; equal to TA-Lib within 1e-15).
    """
    k = 2.0 / (n + 1)
    k1 = 1.0 - k
    seed = 0.0
    for i in range(start - n + 1, start + 1):
        seed += x[i]
    prev = seed / n
    out[start] = prev
    for i in range(start + 1, x.shape[0]):
        prev = x[i] * k + prev * k1
        out[i] = prev


@nb.njit(cache=True)
def _ema_into(x: F64, n: int, out: F64) -> None:
    """Write :func:`ema` into the given outputs."""
    _nan_prefix(out, n - 1)
    if x.shape[0] >= n:
        _ema_from(x, n, n - 1, out)


@nb.njit(cache=True)
def _rsi_into(x: F64, n: int, out: F64) -> None:
    """Write :func:`rsi` into the given outputs."""
    size = x.shape[0]
    _nan_prefix(out, n)
    if size <= n:
        return
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        diff = x[i] - x[i - 1]
        if diff < 0:
            loss -= diff
        else:
            gain += diff
    loss /= n
    gain /= n
    total = gain + loss
    out[n] = 100.0 * (gain / total) if not (-EPS < total < EPS) else 0.0
    a = (n - 1) / n
    b = 1.0 / n
    for i in range(n + 1, size):
        diff = x[i] - x[i - 1]
        # branch-free (a sign test mispredicts half the time): the same values as the branches would give
        up = diff if diff > 0.0 else 0.0
        down = -diff if diff < 0.0 else 0.0
        gain = gain * a + up * b
        loss = loss * a + down * b
        total = gain + loss
        out[i] = 100.0 * (gain / total) if not (-EPS < total < EPS) else 0.0


@nb.njit(cache=True)
def _tr(high: F64, low: F64, close: F64, i: int) -> float:
    greatest: float = high[i] - low[i]
    v = abs(close[i - 1] - high[i])
    if v > greatest:
        greatest = v
    v = abs(close[i - 1] - low[i])
    if v > greatest:
        greatest = v
    return greatest


@nb.njit(cache=True)
def _true_range_into(high: F64, low: F64, close: F64, out: F64) -> None:
    """Write :func:`true_range` into the given outputs."""
    _nan_prefix(out, 1)
    for i in range(1, high.shape[0]):
        out[i] = _tr(high, low, close, i)


@nb.njit(cache=True)
def _atr_into(high: F64, low: F64, close: F64, n: int, out: F64) -> None:
    """Write :func:`atr` into the given outputs."""
    size = high.shape[0]
    _nan_prefix(out, n)
    if size <= n:
        return
    total = 0.0
    for i in range(1, n + 1):
        total += _tr(high, low, close, i)
    prev = total / n
    out[n] = prev
    a = (n - 1) / n
    b = 1.0 / n
    # two steps at a time: avg[i+1] = a² avg[i-1] + (a b tr[i] + b tr[i+1]) halves the multiply-add chain
    # that bounds the loop; the result differs from one step at a time by rounding only (~1e-16)
    a2 = a * a
    ab = a * b
    i = n + 1
    while i + 1 < size:
        t1 = _tr(high, low, close, i)
        t2 = _tr(high, low, close, i + 1)
        out[i] = prev * a + t1 * b
        prev = prev * a2 + (t1 * ab + t2 * b)
        out[i + 1] = prev
        i += 2
    if i < size:
        out[i] = prev * a + _tr(high, low, close, i) * b


@nb.njit(cache=True)
def _macd_into(x: F64, fast: int, slow: int, signal: int, line: F64, sig: F64, hist: F64) -> None:
    """Write :func:`macd` into the given outputs."""
    size = x.shape[0]
    if fast > slow:
        fast, slow = slow, fast
    first = slow - 1
    begin = first + signal - 1
    _nan_prefix(line, begin)
    _nan_prefix(sig, begin)
    _nan_prefix(hist, begin)
    if size <= begin:
        return
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    kf1, ks1, kg1 = 1.0 - kf, 1.0 - ks, 1.0 - kg
    seed = 0.0
    for i in range(first - fast + 1, first + 1):
        seed += x[i]
    f = seed / fast
    seed = 0.0
    for i in range(first + 1):
        seed += x[i]
    s = seed / slow
    g = f - s  # the signal EMA's seed: the sum of the first ``signal`` MACD values
    for i in range(first + 1, begin + 1):
        v = x[i]
        f = v * kf + f * kf1
        s = v * ks + s * ks1
        g += f - s
    g = g / signal
    m = f - s
    line[begin] = m
    sig[begin] = g
    hist[begin] = m - g
    for i in range(begin + 1, size):
        v = x[i]
        f = v * kf + f * kf1
        s = v * ks + s * ks1
        m = f - s
        g = m * kg + g * kg1
        line[i] = m
        sig[i] = g
        hist[i] = m - g


@nb.njit(cache=True)
def _variance_into(x: F64, n: int, root: bool, out: F64) -> None:
    """Write :func:`variance` (or, with ``root``, :func:`stddev`) into ``out``."""
    size = x.shape[0]
    _nan_prefix(out, n - 1)
    ref = 0.0
    s1 = 0.0
    s2 = 0.0
    inv_n = 1.0 / n
    countdown = 0  # steps until the next re-base (a counter: an integer modulo per step costs more)
    for i in range(n - 1, size):
        if countdown == 0:
            countdown = REBASE * n
            ref = x[i - n + 1]
            s1 = 0.0
            s2 = 0.0
            for j in range(i - n + 1, i):
                d = x[j] - ref
                s1 += d
                s2 += d * d
        countdown -= 1
        d = x[i] - ref
        s1 += d
        s2 += d * d
        m1 = s1 * inv_n
        v = s2 * inv_n - m1 * m1
        d = x[i - n + 1] - ref
        s1 -= d
        s2 -= d * d
        if root:
            v = math.sqrt(v) if v >= EPS else 0.0
        out[i] = v


@nb.njit(cache=True)
def _bbands_into(x: F64, n: int, nbdev: float, upper: F64, middle: F64, lower: F64) -> None:
    """Write :func:`bbands` into the given outputs."""
    size = x.shape[0]
    _nan_prefix(upper, n - 1)
    _nan_prefix(middle, n - 1)
    _nan_prefix(lower, n - 1)
    total = 0.0
    for i in range(min(n - 1, size)):
        total += x[i]
    ref = 0.0
    s1 = 0.0
    s2 = 0.0
    inv_n = 1.0 / n
    countdown = 0
    for i in range(n - 1, size):
        if countdown == 0:
            countdown = REBASE * n
            ref = x[i - n + 1]
            s1 = 0.0
            s2 = 0.0
            for j in range(i - n + 1, i):
                d = x[j] - ref
                s1 += d
                s2 += d * d
        countdown -= 1
        v = x[i]
        total += v
        d = v - ref
        s1 += d
        s2 += d * d
        m = total / n
        m1 = s1 * inv_n
        var = s2 * inv_n - m1 * m1
        v = x[i - n + 1]
        total -= v
        d = v - ref
        s1 -= d
        s2 -= d * d
        dev = math.sqrt(var) if var >= EPS else 0.0
        if nbdev != 1.0:
            dev = dev * nbdev
        middle[i] = m
        upper[i] = m + dev
        lower[i] = m - dev


# --- allocating wrappers (numpy allocates the outputs; see _new) ---


def sma(x: F64, n: int) -> F64:
    """Simple moving average over ``n`` (TA_SMA): a running sum, divided by ``n``."""
    out = _new(x.shape[0])
    _sma_into(x, n, out)
    return out


def ema(x: F64, n: int) -> F64:
    """Exponential moving average, ``k = 2 / (n + 1)``, seeded with the SMA of the first ``n`` values (TA_EMA)."""
    out = _new(x.shape[0])
    _ema_into(x, n, out)
    return out


def rsi(x: F64, n: int) -> F64:
    """Relative strength index with Wilder smoothing (TA_RSI); first value at index ``n``.

    Wilder's step ``avg = (avg * (n - 1) + new) / n`` is computed as ``avg * a + new * b`` with ``a = (n-1)/n``
    and ``b = 1/n``: no division on the dependency chain (2-3x faster), within 1e-15 of TA-Lib.
    """
    out = _new(x.shape[0])
    _rsi_into(x, n, out)
    return out


def true_range(high: F64, low: F64, close: F64) -> F64:
    """True range (TA_TRANGE); first value at index 1."""
    out = _new(high.shape[0])
    _true_range_into(high, low, close, out)
    return out


def atr(high: F64, low: F64, close: F64, n: int) -> F64:
    """Average true range with Wilder smoothing, seeded with the SMA of the first ``n`` true ranges (TA_ATR).

    Wilder's step is ``avg * a + tr * b`` as in :func:`rsi`, computed two steps at a time.
    """
    out = _new(high.shape[0])
    _atr_into(high, low, close, n, out)
    return out


def macd(x: F64, fast: int, slow: int, signal: int) -> tuple[F64, F64, F64]:
    """MACD line, signal line and histogram (TA_MACD), first values at ``slow + signal - 2``.

    TA-Lib seeds *both* EMAs at the slow EMA's first index: the fast EMA's seed is the mean of the ``fast``
    values ending there, not of the first ``fast`` values. Matched here, in one pass.
    """
    line = _new(x.shape[0])
    sig = _new(x.shape[0])
    hist = _new(x.shape[0])
    _macd_into(x, fast, slow, signal, line, sig, hist)
    return line, sig, hist


def variance(x: F64, n: int) -> F64:
    """Population variance over ``n`` (TA_VAR), from running sums of deviations from a reference value.

    Plain running sums of x and x² lose about eight digits to cancellation at price-like levels and drift as
    the window slides, while TA-Lib agrees with an exact two-pass variance to ~1e-12. So the sums are taken
    around a reference (the window's first value), re-based from the window itself every ``REBASE * n``
    steps: O(1) amortised and as accurate as two passes.
    """
    out = _new(x.shape[0])
    _variance_into(x, n, False, out)
    return out


def stddev(x: F64, n: int) -> F64:
    """Population standard deviation over ``n`` (TA_STDDEV with nbdev 1; a variance below 1e-14 gives 0)."""
    out = _new(x.shape[0])
    _variance_into(x, n, True, out)
    return out


def bbands(x: F64, n: int, nbdev: float) -> tuple[F64, F64, F64]:
    """Bollinger bands (upper, middle, lower) around the SMA (TA_BBANDS with SMA, equal deviations).

    The middle band is TA-Lib's running-sum SMA; the deviation is the population standard deviation computed
    as in :func:`variance` (a flat window gives exactly 0, as in TA-Lib, not the ~1e-6 that a plain sum of
    squares leaves at price-like levels). One pass.
    """
    upper = _new(x.shape[0])
    middle = _new(x.shape[0])
    lower = _new(x.shape[0])
    _bbands_into(x, n, nbdev, upper, middle, lower)
    return upper, middle, lower


__all__ = [
    "EPS",
    "REBASE",
    "atr",
    "bbands",
    "ema",
    "log_return",
    "macd",
    "obv",
    "rocr",
    "rolling_sum",
    "rolling_vwap",
    "rsi",
    "sma",
    "stddev",
    "stoch_k",
    "true_range",
    "variance",
]
