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
  binary float values, kept as decimal text (``NUMERIC`` in PostgreSQL, ``TEXT`` in SQLite). Float addition is
  not associative, so a float running sum would depend on batch boundaries; an exact sum does not, and is
  rounded to the nearest float only when a bar is read. The VWAP is then ``turnover / volume`` of those floats.

The exact sums are computed vectorised: each float is ``mantissa * 2**exponent`` with a 53-bit integer mantissa;
within a group, mantissas are summed per exponent in int64 (split into 26/27-bit halves so no sum can
overflow), and the few per-exponent totals are combined as Python integers.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradepulse.domain import Bar
from tradepulse.domain.batch import F64, I64, TickBatch, interval_seconds

NS_PER_US = 1_000
US_PER_MINUTE = 60_000_000
US_PER_DAY = 86_400_000_000

_TWO53 = float(2**53)
_LO_BITS = 26
_LO_MASK = (1 << _LO_BITS) - 1
#: exact decimal arithmetic for merging sums (a float's exact value has at most ~770 significant digits)
_EXACT = decimal.Context(prec=4000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.Inexact])


def ts_us(ts_ns: I64) -> I64:
    """Floor nanosecond timestamps to microseconds (the stores' resolution)."""
    return np.floor_divide(ts_ns, NS_PER_US)


def dyadic_to_decimal(mantissa: int, exponent: int) -> str:
    """Return ``mantissa * 2**exponent`` exactly, as plain decimal text."""
    if mantissa == 0:
        return "0"
    sign = "-" if mantissa < 0 else ""
    mantissa = abs(mantissa)
    if exponent < 0:
        twos = min((mantissa & -mantissa).bit_length() - 1, -exponent)
        mantissa >>= twos
        exponent += twos
    if exponent >= 0:
        return sign + str(mantissa << exponent)
    places = -exponent
    digits = str(mantissa * 5**places).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")


def exact_sums(values: F64, starts: I64) -> list[str]:
    """Return the exact sum of each group of ``values`` as decimal text; group g is ``values[starts[g]:starts[g+1]]``.

    Values must be finite and non-negative (sizes and turnovers are).
    """
    n = len(values)
    groups = len(starts)
    if groups == 0:
        return []
    if n and (not np.isfinite(values).all() or (values < 0).any()):
        raise ValueError("exact_sums: values must be finite and >= 0")
    counts = np.diff(np.append(starts, n))
    group = np.repeat(np.arange(groups, dtype=np.int64), counts)
    frac, exp2 = np.frexp(values)
    mant = (frac * _TWO53).astype(np.int64)  # exact: frac has 53 significant bits
    exp = exp2.astype(np.int64) - 53
    nonzero = mant != 0
    big = np.iinfo(np.int64).max
    emin_full = np.minimum.reduceat(np.where(nonzero, exp, big), starts) if n else np.full(groups, big)
    emin = np.where(emin_full == big, 0, emin_full)
    group, mant, exp = group[nonzero], mant[nonzero], exp[nonzero]
    totals = [0] * groups
    if len(mant):
        shift = exp - emin[group]
        key = group * 4096 + shift  # shifts are < 2100 (the float exponent range)
        order = np.argsort(key, kind="stable")
        key_sorted = key[order]
        bounds = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
        mant_sorted = mant[order]
        lo = np.add.reduceat(mant_sorted & _LO_MASK, bounds)
        hi = np.add.reduceat(mant_sorted >> _LO_BITS, bounds)
        for k, h, low in zip(key_sorted[bounds].tolist(), hi.tolist(), lo.tolist(), strict=True):
            g, s = divmod(k, 4096)
            totals[g] += ((h << _LO_BITS) + low) << s
    return [dyadic_to_decimal(t, int(e)) for t, e in zip(totals, emin.tolist(), strict=True)]


def exact_add(a: str | None, b: str | None) -> str:
    """Return the exact sum of two decimal texts (None counts as zero); the SQLite store's merge function."""
    return format(_EXACT.add(decimal.Decimal(a or 0), decimal.Decimal(b or 0)), "f")


def exact_total(values: list[str]) -> str:
    """Return the exact sum of decimal texts."""
    total = decimal.Decimal(0)
    for v in values:
        total = _EXACT.add(total, decimal.Decimal(v))
    return format(total, "f")


@dataclass(frozen=True, eq=False)
class MinutePartials:
    """One partial 1-minute bar per (symbol, minute) a batch touches, ordered by (symbol, bucket)."""

    symbol: list[str]
    bucket_us: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: list[str]
    turnover: list[str]
    trades: I64
    first_us: I64
    first_seq: I64
    last_us: I64
    last_seq: I64

    def __len__(self) -> int:
        return len(self.bucket_us)

    def rows(self) -> list[tuple[object, ...]]:
        """Return the partials as row tuples in store column order."""
        return list(
            zip(
                self.symbol,
                self.bucket_us.tolist(),
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume,
                self.turnover,
                self.trades.tolist(),
                self.first_us.tolist(),
                self.first_seq.tolist(),
                self.last_us.tolist(),
                self.last_seq.tolist(),
                strict=True,
            )
        )


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
    names = np.asarray(b.symbols, dtype=object)
    return MinutePartials(
        symbol=names[b.symbol_idx[starts]].tolist() if n else [],
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
            volume=float(vol),
            vwap=vwap(float(vol), float(turn)),
            trades=trades,
        )
        for symbol, bucket, o, h, lo, c, vol, turn, trades in zip(
            p.symbol,
            p.bucket_us.tolist(),
            p.open.tolist(),
            p.high.tolist(),
            p.low.tolist(),
            p.close.tolist(),
            p.volume,
            p.turnover,
            p.trades.tolist(),
            strict=True,
        )
    ]
