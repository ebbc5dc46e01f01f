"""Time bars from trade ticks: a batch aggregation for training and its online twin for the live service.

A bar covers ``[start, start + interval)`` with ``start`` a multiple of the interval (epoch-aligned); open/high/
low/close come from trade prices, volume is the sum of trade sizes. The online :class:`BarBuilder` closes a bar
when the first tick of a later interval arrives, and gives exactly the bars the batch function gives for the
same ticks (tested), so the model is served the bars it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BarArrays:
    """OHLCV bars as columns (float64), with the start time of each bar in nanoseconds."""

    start_ns: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return int(self.close.shape[0])

    def slice(self, start: int, stop: int) -> BarArrays:
        return BarArrays(
            self.start_ns[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )

    @classmethod
    def from_close(cls, close: F64, volume: F64 | None = None) -> BarArrays:
        """Bars whose open/high/low equal the close (for tests and single-price series)."""
        close = np.ascontiguousarray(close, dtype=np.float64)
        vol = np.ones_like(close) if volume is None else np.ascontiguousarray(volume, dtype=np.float64)
        return cls(np.arange(close.shape[0], dtype=np.int64), close, close.copy(), close.copy(), close, vol)


@nb.njit(cache=True)
def _aggregate(ts: I64, price: F64, size: F64, interval: int) -> tuple[I64, F64, F64, F64, F64, F64]:
    n = ts.shape[0]
    start = np.empty(n, dtype=np.int64)
    op = np.empty(n)
    hi = np.empty(n)
    lo = np.empty(n)
    cl = np.empty(n)
    vo = np.empty(n)
    j = -1
    current = -1
    for i in range(n):
        b = ts[i] // interval
        if j < 0 or b != current:
            j += 1
            current = b
            start[j] = b * interval
            op[j] = price[i]
            hi[j] = price[i]
            lo[j] = price[i]
            vo[j] = 0.0
        elif price[i] > hi[j]:
            hi[j] = price[i]
        elif price[i] < lo[j]:
            lo[j] = price[i]
        cl[j] = price[i]
        vo[j] += size[i]
    m = j + 1
    return start[:m], op[:m], hi[:m], lo[:m], cl[:m], vo[:m]


def bars_from_ticks(ts_ns: I64, price: F64, size: F64, interval_ns: int) -> BarArrays:
    """Aggregate one symbol's ticks (sorted by time) into bars of ``interval_ns``; empty intervals are skipped."""
    if interval_ns <= 0:
        raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
    ts = np.ascontiguousarray(ts_ns, dtype=np.int64)
    if ts.shape[0] > 1 and bool(np.any(np.diff(ts) < 0)):
        raise ValueError("ticks must be sorted by time")
    start, op, hi, lo, cl, vo = _aggregate(
        ts, np.ascontiguousarray(price, dtype=np.float64), np.ascontiguousarray(size, dtype=np.float64), interval_ns
    )
    return BarArrays(start, op, hi, lo, cl, vo)


@dataclass(frozen=True, slots=True)
class ClosedBar:
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class BarBuilder:
    """Build one symbol's bars tick by tick; :meth:`add` returns the bar a tick closed, if any.

    A tick older than the bar being built (a redelivery, or out of order) is ignored and counted.
    """

    __slots__ = ("_bucket", "_close", "_high", "_low", "_open", "_volume", "interval_ns", "stale")

    def __init__(self, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        self.interval_ns = interval_ns
        self._bucket = -1
        self._open = self._high = self._low = self._close = self._volume = 0.0
        self.stale = 0

    def add(self, ts_ns: int, price: float, size: float) -> ClosedBar | None:
        bucket = ts_ns // self.interval_ns
        if bucket == self._bucket:
            if price > self._high:
                self._high = price
            elif price < self._low:
                self._low = price
            self._close = price
            self._volume += size
            return None
        if bucket < self._bucket:
            self.stale += 1
            return None
        closed = (
            ClosedBar(self._bucket * self.interval_ns, self._open, self._high, self._low, self._close, self._volume)
            if self._bucket >= 0
            else None
        )
        self._bucket = bucket
        self._open = self._high = self._low = self._close = price
        self._volume = size
        return closed
