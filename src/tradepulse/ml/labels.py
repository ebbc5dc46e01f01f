"""Labels: BUY / HOLD / SELL from what happens *after* t, against a threshold known *at* t.

Classes are encoded ``SELL = 0, HOLD = 1, BUY = 2`` (the order of ``Signal.probabilities``); ``-1`` marks a
sample whose label is not known yet (the last ``horizon`` bars).

* **Fixed horizon**: the log return from the close of bar t to the close of bar ``t + horizon`` against
  ``± k * sigma_t * sqrt(horizon)``, where ``sigma_t`` is the realised volatility of one-bar log returns over
  the ``vol_window`` bars up to and including t (known at t, never after).
* **Triple barrier** (López de Prado): an upper and a lower barrier at ``± k * sigma_t * sqrt(horizon)`` around
  the close of t, and a vertical barrier ``horizon`` bars later. The label is BUY or SELL for whichever
  horizontal barrier bar highs/lows cross first (SELL when both are touched in the same bar: the conservative
  reading), HOLD if neither is touched in time.

Either way the label of sample t depends on bars ``t+1 .. t+horizon`` only: that interval is what validation
purges around test periods.
"""

from __future__ import annotations

from typing import Literal

import numba as nb
import numpy as np
import numpy.typing as npt

from tradepulse.features import BarArrays
from tradepulse.features import kernels as k

SELL, HOLD, BUY = 0, 1, 2
CLASS_NAMES = ("SELL", "HOLD", "BUY")
LabelMethod = Literal["fixed_horizon", "triple_barrier"]


def volatility_at(close: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    """Realised volatility of one-bar log returns over the last ``window`` bars, known at each bar."""
    r = k.log_return(close, 1)
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] > window:
        out[1:] = k.stddev(np.ascontiguousarray(r[1:]), window)
    return out


def forward_return(close: npt.NDArray[np.float64], horizon: int) -> npt.NDArray[np.float64]:
    """``log(close[t + horizon] / close[t])``; NaN for the last ``horizon`` bars."""
    out = np.full(close.shape[0], np.nan)
    out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return out


def thresholds(
    close: npt.NDArray[np.float64], horizon: int, k_sigma: float, vol_window: int
) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = k_sigma * volatility_at(close, vol_window) * np.sqrt(horizon)
    return out


def fixed_horizon_labels(
    close: npt.NDArray[np.float64], horizon: int, k_sigma: float, vol_window: int
) -> npt.NDArray[np.int8]:
    """Return the fixed-horizon labels (``-1`` where unknown)."""
    fwd = forward_return(close, horizon)
    thr = thresholds(close, horizon, k_sigma, vol_window)
    labels = np.full(close.shape[0], -1, dtype=np.int8)
    known = ~np.isnan(fwd) & ~np.isnan(thr)
    labels[known] = HOLD
    labels[known & (fwd > thr)] = BUY
    labels[known & (fwd < -thr)] = SELL
    return labels


@nb.njit(cache=True)
def _barriers(close: np.ndarray, high: np.ndarray, low: np.ndarray, thr: np.ndarray, horizon: int) -> np.ndarray:
    n = close.shape[0]
    out = np.full(n, -1, dtype=np.int8)
    for t in range(n - horizon):
        if np.isnan(thr[t]):
            continue
        up = close[t] * np.exp(thr[t])
        down = close[t] * np.exp(-thr[t])
        label = 1
        for j in range(t + 1, t + horizon + 1):
            if low[j] < down:
                label = 0
                break
            if high[j] > up:
                label = 2
                break
        out[t] = label
    return out


def triple_barrier_labels(bars: BarArrays, horizon: int, k_sigma: float, vol_window: int) -> npt.NDArray[np.int8]:
    """Return triple-barrier labels (``-1`` where unknown)."""
    thr = thresholds(bars.close, horizon, k_sigma, vol_window)
    return np.asarray(_barriers(bars.close, bars.high, bars.low, thr, horizon), dtype=np.int8)


def make_labels(
    bars: BarArrays, method: LabelMethod, horizon: int, k_sigma: float, vol_window: int
) -> npt.NDArray[np.int8]:
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if method == "fixed_horizon":
        return fixed_horizon_labels(bars.close, horizon, k_sigma, vol_window)
    if method == "triple_barrier":
        return triple_barrier_labels(bars, horizon, k_sigma, vol_window)
    raise ValueError(f"unknown label method {method!r} (fixed_horizon or triple_barrier)")
