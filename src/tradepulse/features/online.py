"""Online twins of the batch kernels: O(1) work per new value, the same arithmetic in the same order.

Each twin's :meth:`update` takes the next value(s) and returns what the batch kernel returns at that index
(NaN during warm-up). Because the operations and their order are those of :mod:`tradepulse.features.kernels`,
the twins agree with the kernels on every step (property-tested), so a model sees the same numbers live as it
saw in training. Plain Python on purpose: one update is a handful of float operations, cheaper than a call into
compiled code.
"""

from __future__ import annotations

import math
from collections import deque

from tradepulse.features.kernels import EPS, REBASE

NAN = math.nan


class _Ring:
    """The last ``n`` values; :meth:`push` returns the value that fell out (or None)."""

    __slots__ = ("_buf", "_i", "count", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._buf = [0.0] * n
        self._i = 0
        self.count = 0

    def push(self, v: float) -> float | None:
        old = self._buf[self._i] if self.count >= self.n else None
        self._buf[self._i] = v
        self._i = (self._i + 1) % self.n
        self.count += 1
        return old

    def oldest(self) -> float:
        """The oldest of the last ``n`` values (valid once ``n`` have been pushed)."""
        return self._buf[self._i]

    def ordered_partial(self) -> list[float]:
        """The values pushed so far, oldest first (before ``n`` have been pushed)."""
        return self._buf[: self._i]

    def ordered(self) -> list[float]:
        """The last ``n`` values, oldest first (valid once ``n`` have been pushed)."""
        return self._buf[self._i :] + self._buf[: self._i]


class OnlineSMA:
    __slots__ = ("_ring", "_total", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._ring = _Ring(n)
        self._total = 0.0

    def update(self, v: float) -> float:
        self._total += v
        self._ring.push(v)
        if self._ring.count < self.n:
            return NAN
        out = self._total / self.n
        self._total -= self._ring.oldest()
        return out


class OnlineEMA:
    """EMA seeded with the mean of the first ``n`` values."""

    __slots__ = ("_count", "_k", "_k1", "_prev", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._k = 2.0 / (n + 1)
        self._k1 = 1.0 - self._k
        self._count = 0
        self._prev = 0.0

    def seed(self, mean: float) -> None:
        """Start from ``mean`` as if ``n`` values had been seen (MACD's seeding)."""
        self._prev = mean
        self._count = self.n

    def update(self, v: float) -> float:
        self._count += 1
        if self._count < self.n:
            self._prev += v
            return NAN
        if self._count == self.n:
            self._prev = (self._prev + v) / self.n
            return self._prev
        self._prev = v * self._k + self._prev * self._k1
        return self._prev


class OnlineRSI:
    """Wilder RSI; the smoothing step is ``avg * a + new * b`` exactly as in ``kernels.rsi``."""

    __slots__ = ("_a", "_b", "_count", "_gain", "_last", "_loss", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._a = (n - 1) / n
        self._b = 1.0 / n
        self._count = 0
        self._gain = 0.0
        self._loss = 0.0
        self._last = 0.0

    def update(self, v: float) -> float:
        self._count += 1
        if self._count == 1:
            self._last = v
            return NAN
        diff = v - self._last
        self._last = v
        n = self.n
        if self._count <= n + 1:
            if diff < 0:
                self._loss -= diff
            else:
                self._gain += diff
            if self._count < n + 1:
                return NAN
            self._loss /= n
            self._gain /= n
        else:
            up = diff if diff > 0.0 else 0.0
            down = -diff if diff < 0.0 else 0.0
            self._gain = self._gain * self._a + up * self._b
            self._loss = self._loss * self._a + down * self._b
        total = self._gain + self._loss
        return 100.0 * (self._gain / total) if not (-EPS < total < EPS) else 0.0


class OnlineTrueRange:
    __slots__ = ("_prev_close",)

    def __init__(self) -> None:
        self._prev_close: float | None = None

    def update(self, high: float, low: float, close: float) -> float:
        prev, self._prev_close = self._prev_close, close
        if prev is None:
            return NAN
        greatest = high - low
        v = abs(prev - high)
        if v > greatest:
            greatest = v
        v = abs(prev - low)
        if v > greatest:
            greatest = v
        return greatest


class OnlineATR:
    __slots__ = ("_a", "_b", "_count", "_prev", "_tr", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._a = (n - 1) / n
        self._b = 1.0 / n
        self._tr = OnlineTrueRange()
        self._count = 0
        self._prev = 0.0

    def update(self, high: float, low: float, close: float) -> float:
        tr = self._tr.update(high, low, close)
        self._count += 1
        if self._count == 1:
            return NAN
        if self._count <= self.n:
            self._prev += tr
            return NAN
        if self._count == self.n + 1:
            self._prev = (self._prev + tr) / self.n
            return self._prev
        self._prev = self._prev * self._a + tr * self._b
        return self._prev


class OnlineMACD:
    """MACD with TA-Lib's seeding: both EMAs start at the slow EMA's first index."""

    __slots__ = ("_count", "_fast", "_fast_n", "_ring", "_signal", "_slow", "_slow_n")

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        if fast > slow:
            fast, slow = slow, fast
        self._fast_n, self._slow_n = fast, slow
        self._fast = OnlineEMA(fast)
        self._slow = OnlineEMA(slow)
        self._signal = OnlineEMA(signal)
        self._ring = _Ring(fast)
        self._count = 0

    def update(self, v: float) -> tuple[float, float, float]:
        """Return (macd, signal, histogram)."""
        self._count += 1
        slow = self._slow.update(v)
        if self._count < self._slow_n:
            self._ring.push(v)
            return NAN, NAN, NAN
        if self._count == self._slow_n:
            self._ring.push(v)
            total = 0.0
            for x in self._ring.ordered():
                total += x
            self._fast.seed(total / self._fast_n)
            fast = total / self._fast_n
        else:
            fast = self._fast.update(v)
        line = fast - slow
        sig = self._signal.update(line)
        if math.isnan(sig):
            return NAN, NAN, NAN
        return line, sig, line - sig


class OnlineVariance:
    """Running variance around a reference re-based every ``REBASE * n`` steps (see ``kernels.variance``)."""

    __slots__ = ("_count", "_ref", "_ring", "_s1", "_s2", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._ring = _Ring(n)
        self._count = 0
        self._ref = 0.0
        self._s1 = 0.0
        self._s2 = 0.0

    def update(self, v: float) -> float:
        n = self.n
        i = self._count
        self._count += 1
        if i < n - 1:
            self._ring.push(v)
            return NAN
        if (i - n + 1) % (REBASE * n) == 0:
            # the n-1 values before v, oldest first, are the newest n-1 in the ring
            window = self._ring.ordered()[1:] if self._ring.count >= n else self._ring.ordered_partial()
            self._ref = ref = window[0] if window else v
            s1 = 0.0
            s2 = 0.0
            for x in window:
                d = x - ref
                s1 += d
                s2 += d * d
            self._s1, self._s2 = s1, s2
        self._ring.push(v)
        ref = self._ref
        d = v - ref
        self._s1 += d
        self._s2 += d * d
        inv_n = 1.0 / n
        m1 = self._s1 * inv_n
        v = self._s2 * inv_n - m1 * m1
        d = self._ring.oldest() - ref
        self._s1 -= d
        self._s2 -= d * d
        return v


class OnlineStddev:
    __slots__ = ("_var",)

    def __init__(self, n: int) -> None:
        self._var = OnlineVariance(n)

    def update(self, v: float) -> float:
        var = self._var.update(v)
        if math.isnan(var):
            return NAN
        return math.sqrt(var) if var >= EPS else 0.0


class OnlineBBands:
    """Bollinger bands: the SMA and the re-based variance of ``kernels.bbands``."""

    __slots__ = ("_nbdev", "_sd", "_sma")

    def __init__(self, n: int, nbdev: float) -> None:
        self._nbdev = nbdev
        self._sma = OnlineSMA(n)
        self._sd = OnlineStddev(n)

    def update(self, v: float) -> tuple[float, float, float]:
        """Return (upper, middle, lower)."""
        m = self._sma.update(v)
        dev = self._sd.update(v)
        if math.isnan(m):
            return NAN, NAN, NAN
        if self._nbdev != 1.0:
            dev = dev * self._nbdev
        return m + dev, m, m - dev


class OnlineStochK:
    """Fast %K; the window's extremes come from monotonic deques (O(1) amortised, the same values)."""

    __slots__ = ("_count", "_highs", "_lows", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._count = 0
        self._lows: deque[tuple[int, float]] = deque()
        self._highs: deque[tuple[int, float]] = deque()

    def update(self, high: float, low: float, close: float) -> float:
        i = self._count
        self._count += 1
        lows, highs = self._lows, self._highs
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((i, low))
        while highs and highs[-1][1] <= high:
            highs.pop()
        highs.append((i, high))
        trailing = i - self.n + 1
        while lows[0][0] < trailing:
            lows.popleft()
        while highs[0][0] < trailing:
            highs.popleft()
        if self._count < self.n:
            return NAN
        lowest = lows[0][1]
        diff = (highs[0][1] - lowest) / 100.0
        return (close - lowest) / diff if diff != 0.0 else 0.0


class OnlineOBV:
    __slots__ = ("_obv", "_prev")

    def __init__(self) -> None:
        self._prev: float | None = None
        self._obv = 0.0

    def update(self, close: float, volume: float) -> float:
        if self._prev is None:
            self._obv = volume
            self._prev = close
        if close > self._prev:
            self._obv += volume
        elif close < self._prev:
            self._obv -= volume
        self._prev = close
        return self._obv


class OnlineLag:
    """The value ``n`` updates ago (NaN until there is one)."""

    __slots__ = ("_ring",)

    def __init__(self, n: int) -> None:
        self._ring = _Ring(n)

    def update(self, v: float) -> float:
        old = self._ring.push(v)
        return NAN if old is None else old


class OnlineLogReturn:
    __slots__ = ("_lag",)

    def __init__(self, n: int) -> None:
        self._lag = OnlineLag(n)

    def update(self, v: float) -> float:
        old = self._lag.update(v)
        return NAN if math.isnan(old) else math.log(v / old)


class OnlineRocr:
    __slots__ = ("_lag",)

    def __init__(self, n: int) -> None:
        self._lag = OnlineLag(n)

    def update(self, v: float) -> float:
        old = self._lag.update(v)
        if math.isnan(old):
            return NAN
        return v / old if old != 0.0 else 0.0


class OnlineRollingSum:
    __slots__ = ("_ring", "_total", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._ring = _Ring(n)
        self._total = 0.0

    def update(self, v: float) -> float:
        self._total += v
        self._ring.push(v)
        if self._ring.count < self.n:
            return NAN
        out = self._total
        self._total -= self._ring.oldest()
        return out


class OnlineVWAP:
    __slots__ = ("_pv", "_ring_pv", "_ring_v", "_vol", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._ring_pv = _Ring(n)
        self._ring_v = _Ring(n)
        self._pv = 0.0
        self._vol = 0.0

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        pv = (high + low + close) / 3.0 * volume
        self._pv += pv
        self._vol += volume
        self._ring_pv.push(pv)
        self._ring_v.push(volume)
        if self._ring_v.count < self.n:
            return NAN
        out = self._pv / self._vol if self._vol > 0.0 else close
        self._pv -= self._ring_pv.oldest()
        self._vol -= self._ring_v.oldest()
        return out
