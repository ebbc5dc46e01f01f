"""Bar aggregation: ticks -> OHLCV bars, in one go (:func:`aggregate_ticks`) or incrementally (the stores).

Open and close are the first and last trade by (time, seq), high and low the extremes, volume the sum of sizes,
turnover the sum of ``price * size`` and VWAP their ratio, trades the count. Buckets are aligned to the Unix
epoch (so daily bars are UTC days).

A store keeps ``ohlc_1min`` up to date as ticks arrive: each write computes, for every (symbol, minute) it
touches, a partial bar of just that batch, and merges it into the stored row. The merge gives exactly the bar
that aggregating all raw ticks of the minute at once would give, whatever order the batches arrive in:

- open and close are the prices of the first and last tick by ``(time, seq)``; the partial carries those keys
  (``first_time, first_seq``, ``last_time, last_seq``), so a later batch holding an earlier tick of the minute
  replaces the open, and one holding an earlier *last* tick leaves the close alone. ``seq`` is the store's
  arrival order, which breaks ties between prints at the same microsecond the same way in both places;
- high, low and the trade count merge by max, min and sum, which are exact;
- volume (sum of sizes) and turnover (sum of ``price * size``, the VWAP numerator) are *exact* sums of the
  float values (see :mod:`tradepulse.marketdata.exact`), rounded to the nearest float only when a bar is read.
  The VWAP is then ``turnover / volume`` of those two floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradepulse.domain import Bar
from tradepulse.domain.batch import F64, I64, TickBatch, interval_seconds
from tradepulse.marketdata.exact import ExactSums, exact_sums, sqlite_mantissa

NS_PER_US = 1_000
US_PER_MINUTE = 60_000_000
US_PER_DAY = 86_400_000_000


def ts_us(ts_ns: I64) -> I64:
    """Floor nanosecond timestamps to microseconds (the stores' resolution)."""
    return np.floor_divide(ts_ns, NS_PER_US)


@dataclass(frozen=True, eq=False)
class MinutePartials:
    """One partial 1-minute bar per (symbol, minute) a batch touches, ordered by (symbol, bucket)."""

    #: the batch's symbol dictionary, and each partial's index into it
    symbols: tuple[str, ...]
    symbol_idx: npt.NDArray[np.int32]
    bucket_us: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: ExactSums
    turnover: ExactSums
    trades: I64
    first_us: I64
    first_seq: I64
    last_us: I64
    last_seq: I64

    def __len__(self) -> int:
        return len(self.bucket_us)

    @property
    def symbol(self) -> list[str]:
        """The symbol of each partial."""
        return np.asarray(self.symbols, dtype=object)[self.symbol_idx].tolist() if len(self) else []

    def rows(self) -> list[tuple[object, ...]]:
        """Return the partials as row tuples in the SQLite store's column order.

        Exact sums are (mantissa, exponent): the mantissa an INTEGER when it fits in 64 bits, else decimal text.
        """
        return list(
            zip(
                self.symbol,
                self.bucket_us.tolist(),
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                _sqlite_mantissas(self.volume),
                self.volume.e.tolist(),
                _sqlite_mantissas(self.turnover),
                self.turnover.e.tolist(),
                self.trades.tolist(),
                self.first_us.tolist(),
                self.first_seq.tolist(),
                self.last_us.tolist(),
                self.last_seq.tolist(),
                strict=True,
            )
        )


def _sqlite_mantissas(sums: ExactSums) -> list[int | str]:
    small, ok = sums.small()
    out: list[int | str] = small.tolist()
    for g in np.flatnonzero(~ok).tolist():
        out[g] = sqlite_mantissa(sums.mantissa(g))
    return out


@dataclass(frozen=True, eq=False)
class SortedBatch:
    """A batch with its ticks ordered by (symbol name, time, seq), plus derived columns the stores need."""

    batch: TickBatch
    time_us: I64
    seq: I64
    #: for each symbol present, the index (into the sorted batch) of its last tick by (time, seq)
    last_of_symbol: npt.NDArray[np.intp]


def sort_batch(batch: TickBatch) -> SortedBatch:
    """Order ``batch`` (which must carry ``seq``) by (symbol name, time, seq).

    Sorting by symbol *name* (not dictionary index) makes every writer lock rollup rows in the same order, so two
    concurrent writers cannot deadlock; sorting by time within a symbol keeps index inserts local.
    """
    if batch.seq is None:
        raise ValueError("sort_batch: the batch has no seq (the store assigns it before sorting)")
    t_us = ts_us(batch.ts_ns)
    rank = np.argsort(np.argsort(np.asarray(batch.symbols, dtype=object))).astype(np.int64)
    sym_rank = rank[batch.symbol_idx] if len(batch) else np.empty(0, dtype=np.int64)
    order = np.lexsort((batch.seq, t_us, sym_rank))
    sorted_batch = batch.take(order)
    ranks = sym_rank[order]
    last = np.flatnonzero(np.r_[ranks[1:] != ranks[:-1], True]) if len(order) else np.empty(0, dtype=np.intp)
    assert sorted_batch.seq is not None
    return SortedBatch(sorted_batch, t_us[order], sorted_batch.seq, last)


def minute_partials(sorted_: SortedBatch, interval_us: int = US_PER_MINUTE) -> MinutePartials:
    """Return the partial bars (1-minute unless ``interval_us`` says otherwise) of a sorted batch."""
    b = sorted_.batch
    n = len(b)
    t_us = sorted_.time_us
    bucket = np.floor_divide(t_us, interval_us) * interval_us
    if n:
        change = (b.symbol_idx[1:] != b.symbol_idx[:-1]) | (bucket[1:] != bucket[:-1])
        starts = np.flatnonzero(np.r_[True, change])
    else:
        starts = np.empty(0, dtype=np.int64)
    ends = np.append(starts[1:], n) - 1
    return MinutePartials(
        symbols=b.symbols,
        symbol_idx=b.symbol_idx[starts],
        bucket_us=bucket[starts],
        open=b.price[starts],
        high=np.maximum.reduceat(b.price, starts) if n else np.empty(0),
        low=np.minimum.reduceat(b.price, starts) if n else np.empty(0),
        close=b.price[ends],
        volume=exact_sums(b.size, starts),
        turnover=exact_sums(b.price * b.size, starts),
        trades=(ends - starts + 1).astype(np.int64),
        first_us=t_us[starts],
        first_seq=sorted_.seq[starts],
        last_us=t_us[ends],
        last_seq=sorted_.seq[ends],
    )


def vwap(volume: float, turnover: float) -> float | None:
    """Return the VWAP of a bar from its (rounded) volume and turnover; None when nothing traded."""
    return turnover / volume if volume > 0 else None


def vwaps(volume: F64, turnover: F64) -> F64:
    """Vectorised :func:`vwap`: NaN where nothing traded."""
    out = np.full(len(volume), np.nan)
    traded = volume > 0
    np.divide(turnover, volume, out=out, where=traded)
    return out


def aggregate_ticks(batch: TickBatch, interval: str | int) -> list[Bar]:
    """Return the bars of ``batch`` at ``interval``, ordered by (symbol, start); ties in time go by ``seq``.

    A batch without ``seq`` is taken to be in arrival order. Volume and turnover are exact sums rounded once.
    """
    seconds = interval_seconds(interval)
    if batch.seq is None:
        batch = batch.with_seq(np.arange(len(batch), dtype=np.int64))
    p = minute_partials(sort_batch(batch), seconds * 1_000_000)
    return [
        Bar(
            symbol=symbol,
            start_ns=bucket * 1000,
            interval_s=seconds,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=vol,
            vwap=vwap(vol, turn),
            trades=trades,
        )
        for symbol, bucket, o, h, lo, c, vol, turn, trades in zip(
            p.symbol,
            p.bucket_us.tolist(),
            p.open.tolist(),
            p.high.tolist(),
            p.low.tolist(),
            p.close.tolist(),
            p.volume.floats(),
            p.turnover.floats(),
            p.trades.tolist(),
            strict=True,
        )
    ]
