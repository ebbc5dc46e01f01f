"""Window and volume kernels (numba): rolling extremes (stochastic %K), rates of change, on-balance volume,
rolling sums and VWAP. Same conventions as :mod:`tradepulse.features.kernels` (TA-Lib's definitions, NaN
warm-ups, numpy-allocated outputs); split from it to keep each file one size.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


# These two helpers repeat kernels.py's on purpose: numba's on-disk cache does not notice when a jitted function
# in *another* module changes, so a kernel calling across files could keep running stale code.


def _new(size: int) -> F64:
    """Allocate an output with numpy (huge-page advice; see ``kernels._new``)."""
    return np.empty(size)


@nb.njit(cache=True)
def _nan_prefix(out: F64, first: int) -> None:
    """Set the warm-up entries (the first ``first``) of ``out`` to NaN."""
    out[: min(first, out.shape[0])] = np.nan


@nb.njit(cache=True)
def _stoch_k_into(high: F64, low: F64, close: F64, n: int, out: F64) -> None:
    """Write :func:`stoch_k` into the given outputs."""
    size = high.shape[0]
    _nan_prefix(out, n - 1)
    lo_idx = -1
    hi_idx = -1
    lowest = 0.0
    highest = 0.0
    for i in range(n - 1, size):
        trailing = i - n + 1
        v = low[i]
        if lo_idx < trailing:
            lo_idx = trailing
            lowest = low[lo_idx]
            for j in range(trailing + 1, i + 1):
                if low[j] < lowest:
                    lowest = low[j]
                    lo_idx = j
        elif v <= lowest:
            lo_idx = i
            lowest = v
        v = high[i]
        if hi_idx < trailing:
            hi_idx = trailing
            highest = high[hi_idx]
            for j in range(trailing + 1, i + 1):
                if high[j] > highest:
                    highest = high[j]
                    hi_idx = j
        elif v >= highest:
            hi_idx = i
            highest = v
        diff = (highest - lowest) / 100.0
        out[i] = (close[i] - lowest) / diff if diff != 0.0 else 0.0


@nb.njit(cache=True)
def _obv_into(close: F64, volume: F64, out: F64) -> None:
    """Write :func:`obv` into the given outputs."""
    size = close.shape[0]
    if size == 0:
        return
    prev_obv = volume[0]
    prev = close[0]
    for i in range(size):
        c = close[i]
        if c > prev:
            prev_obv += volume[i]
        elif c < prev:
            prev_obv -= volume[i]
        out[i] = prev_obv
        prev = c


@nb.njit(cache=True)
def _rocr_into(x: F64, n: int, out: F64) -> None:
    """Write :func:`rocr` into the given outputs."""
    _nan_prefix(out, n)
    for i in range(n, x.shape[0]):
        old = x[i - n]
        r = x[i] / old
        out[i] = r if old != 0.0 else 0.0


@nb.njit(cache=True)
def _log_return_into(x: F64, n: int, out: F64) -> None:
    """Write :func:`log_return` into the given outputs."""
    _nan_prefix(out, n)
    for i in range(n, x.shape[0]):
        out[i] = math.log(x[i] / x[i - n])


@nb.njit(cache=True)
def _rolling_vwap_into(high: F64, low: F64, close: F64, volume: F64, n: int, out: F64) -> None:
    """Write :func:`rolling_vwap` into the given outputs."""
    size = close.shape[0]
    _nan_prefix(out, n - 1)
    if size < n:
        return
    pv = 0.0
    vol = 0.0
    for i in range(n - 1):
        pv += (high[i] + low[i] + close[i]) / 3.0 * volume[i]
        vol += volume[i]
    for i in range(n - 1, size):
        pv += (high[i] + low[i] + close[i]) / 3.0 * volume[i]
        vol += volume[i]
        out[i] = pv / vol if vol > 0.0 else close[i]
        j = i - n + 1
        pv -= (high[j] + low[j] + close[j]) / 3.0 * volume[j]
        vol -= volume[j]


@nb.njit(cache=True)
def _rolling_sum_into(x: F64, n: int, out: F64) -> None:
    """Write :func:`rolling_sum` into the given outputs."""
    _nan_prefix(out, n - 1)
    if x.shape[0] < n:
        return
    total = 0.0
    for i in range(n - 1):
        total += x[i]
    for i in range(n - 1, x.shape[0]):
        total += x[i]
        out[i] = total
        total -= x[i - n + 1]


def stoch_k(high: F64, low: F64, close: F64, n: int) -> F64:
    """Fast stochastic %K over ``n`` bars (TA_STOCHF's fastk): 100 (c - lowest low) / (highest - lowest).

    The extremes are tracked with their index and rescanned only when they leave the window, as TA-Lib does.
    """
    out = _new(high.shape[0])
    _stoch_k_into(high, low, close, n, out)
    return out


def obv(close: F64, volume: F64) -> F64:
    """On-balance volume starting at ``volume[0]`` (TA_OBV)."""
    out = _new(close.shape[0])
    _obv_into(close, volume, out)
    return out


def rocr(x: F64, n: int) -> F64:
    """Rate-of-change ratio ``x[t] / x[t-n]`` (TA_ROCR; 0 when the old value is 0)."""
    out = _new(x.shape[0])
    _rocr_into(x, n, out)
    return out


def log_return(x: F64, n: int) -> F64:
    """Log return over ``n`` bars: ``log(x[t] / x[t-n])``."""
    out = _new(x.shape[0])
    _log_return_into(x, n, out)
    return out


def rolling_vwap(high: F64, low: F64, close: F64, volume: F64, n: int) -> F64:
    """Volume-weighted average of the typical price ``(h + l + c) / 3`` over ``n`` bars (running sums)."""
    out = _new(high.shape[0])
    _rolling_vwap_into(high, low, close, volume, n, out)
    return out


def rolling_sum(x: F64, n: int) -> F64:
    """Sum over the last ``n`` values (running sum)."""
    out = _new(x.shape[0])
    _rolling_sum_into(x, n, out)
    return out
