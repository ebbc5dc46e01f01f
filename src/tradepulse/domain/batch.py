"""Columnar batches of market data: many ticks (or bars) as numpy arrays, and the bar intervals.

Market data moves in bulk (a file of a million ticks, a store query over a day, a benchmark load), and one
Python object per tick would cost more than the work done with it. A :class:`TickBatch` keeps each field as one
numpy array and the symbols dictionary-encoded (a tuple of names plus an ``int32`` index per tick), which is what
the stores' bulk paths (binary COPY, executemany) and the bar aggregation want. Converting to and from
:class:`~tradepulse.domain.market.Tick` messages is exact both ways.

Times are integer nanoseconds since the Unix epoch, UTC, like ``Tick.ts_ns``. The stores keep microseconds
(PostgreSQL's ``timestamptz`` resolution) and floor to them on write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from tradepulse.domain.market import Bar, Tick

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

#: bar intervals every store serves, in seconds; buckets are aligned to the Unix epoch (so "1d" is a UTC day)
BAR_INTERVALS: Final[dict[str, int]] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}

#: the float fields of a tick, in store column order
TICK_FLOAT_FIELDS: Final[tuple[str, ...]] = ("price", "size", "bid", "ask", "bid_size", "ask_size")


def interval_seconds(interval: str | int) -> int:
    """Return the length of a bar interval ("1m", "5m", "15m", "1h", "1d", or seconds) in seconds."""
    if isinstance(interval, int):
        if interval not in BAR_INTERVALS.values():
            raise ValueError(f"interval: {interval} s is not one of {sorted(BAR_INTERVALS.values())}")
        return interval
    try:
        return BAR_INTERVALS[interval]
    except KeyError:
        raise ValueError(f"interval: {interval!r} is not one of {', '.join(BAR_INTERVALS)}") from None


def interval_name(seconds: int) -> str:
    """Return the name of an interval given in seconds (60 -> "1m")."""
    for name, value in BAR_INTERVALS.items():
        if value == seconds:
            return name
    return f"{seconds}s"


def _f64(values: object, n: int, name: str) -> F64:
    out = np.ascontiguousarray(values, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"{name}: expected {n} values, got shape {out.shape}")
    return out


@dataclass(frozen=True, eq=False)
class TickBatch:
    """Ticks as columns. ``symbol_idx[i]`` indexes ``symbols``; ``seq`` is set by a store (arrival order)."""

    symbols: tuple[str, ...]
    symbol_idx: I32
    ts_ns: I64
    price: F64
    size: F64
    bid: F64
    ask: F64
    bid_size: F64
    ask_size: F64
    #: per-tick arrival sequence assigned by a store (ties at one timestamp are ordered by it); None before
    seq: I64 | None = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        object.__setattr__(self, "symbol_idx", np.ascontiguousarray(self.symbol_idx, dtype=np.int32))
        object.__setattr__(self, "ts_ns", np.ascontiguousarray(self.ts_ns, dtype=np.int64))
        for name in TICK_FLOAT_FIELDS:
            object.__setattr__(self, name, _f64(getattr(self, name), n, name))
        if self.symbol_idx.shape != (n,):
            raise ValueError(f"symbol_idx: expected {n} values, got shape {self.symbol_idx.shape}")
        if self.seq is not None:
            object.__setattr__(self, "seq", np.ascontiguousarray(self.seq, dtype=np.int64))
        if n and (int(self.symbol_idx.min()) < 0 or int(self.symbol_idx.max()) >= len(self.symbols)):
            raise ValueError("symbol_idx: an index is outside the symbols dictionary")

    def __len__(self) -> int:
        return len(self.ts_ns)

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_fields(
        cls,
        symbols: tuple[str, ...],
        symbol_idx: npt.NDArray[np.integer],
        ts_ns: npt.NDArray[np.integer],
        fields: Mapping[str, npt.NDArray[Any]],
        seq: npt.NDArray[np.integer] | None = None,
    ) -> TickBatch:
        """Build a batch from the float fields given by name (:data:`TICK_FLOAT_FIELDS`)."""
        f = {name: np.asarray(fields[name], dtype=np.float64) for name in TICK_FLOAT_FIELDS}
        return cls(
            symbols,
            np.asarray(symbol_idx, dtype=np.int32),
            np.asarray(ts_ns, dtype=np.int64),
            f["price"],
            f["size"],
            f["bid"],
            f["ask"],
            f["bid_size"],
            f["ask_size"],
            seq=None if seq is None else np.asarray(seq, dtype=np.int64),
        )

    @classmethod
    def empty(cls) -> TickBatch:
        z = np.empty(0, dtype=np.float64)
        return cls((), np.empty(0, np.int32), np.empty(0, np.int64), z, z, z, z, z, z)

    @classmethod
    def from_columns(
        cls,
        symbol: Sequence[str] | npt.NDArray[np.object_] | str,
        ts_ns: object,
        price: object,
        size: object,
        bid: object | None = None,
        ask: object | None = None,
        bid_size: object | None = None,
        ask_size: object | None = None,
    ) -> TickBatch:
        """Build a batch from per-tick columns; ``symbol`` is one name for all ticks or one per tick.

        A missing quote (``bid``/``ask``) defaults to the trade price, missing quote sizes to 0.
        """
        ts = np.ascontiguousarray(ts_ns, dtype=np.int64)
        n = len(ts)
        if isinstance(symbol, str):
            symbols: tuple[str, ...] = (symbol,) if n else ()
            idx = np.zeros(n, dtype=np.int32)
        else:
            names, inverse = np.unique(np.asarray(symbol, dtype=object).astype(str), return_inverse=True)
            symbols = tuple(str(s) for s in names)
            idx = inverse.astype(np.int32).reshape(-1)
        px = _f64(price, n, "price")
        zeros = np.zeros(n, dtype=np.float64)
        return cls(
            symbols,
            idx,
            ts,
            px,
            _f64(size, n, "size"),
            px if bid is None else _f64(bid, n, "bid"),
            px if ask is None else _f64(ask, n, "ask"),
            zeros if bid_size is None else _f64(bid_size, n, "bid_size"),
            zeros if ask_size is None else _f64(ask_size, n, "ask_size"),
        )

    @classmethod
    def from_ticks(cls, ticks: Iterable[Tick]) -> TickBatch:
        """Return the ticks as a batch (in the same order)."""
        items = list(ticks)
        if not items:
            return cls.empty()
        codes: dict[str, int] = {}
        idx = np.fromiter((codes.setdefault(t.symbol, len(codes)) for t in items), np.int32, len(items))
        rows = np.array(
            [(t.price, t.size, t.bid, t.ask, t.bid_size, t.ask_size) for t in items], dtype=np.float64
        ).reshape(len(items), 6)
        return cls.from_fields(
            tuple(codes),
            idx,
            np.fromiter((t.ts_ns for t in items), np.int64, len(items)),
            {name: rows[:, j].copy() for j, name in enumerate(TICK_FLOAT_FIELDS)},
        )

    @classmethod
    def concat(cls, batches: Sequence[TickBatch]) -> TickBatch:
        """Return one batch holding every tick of ``batches``, in order (symbol dictionaries are merged)."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        codes: dict[str, int] = {}
        idx_parts = []
        for b in batches:
            remap = np.array([codes.setdefault(s, len(codes)) for s in b.symbols], dtype=np.int32)
            idx_parts.append(remap[b.symbol_idx])
        with_seq = all(b.seq is not None for b in batches)
        return cls.from_fields(
            tuple(codes),
            np.concatenate(idx_parts),
            np.concatenate([b.ts_ns for b in batches]),
            {f: np.concatenate([getattr(b, f) for b in batches]) for f in TICK_FLOAT_FIELDS},
            seq=np.concatenate([b.seq for b in batches if b.seq is not None]) if with_seq else None,
        )

    # -- derived batches ----------------------------------------------------------------------------------

    def take(self, indices: npt.NDArray[np.integer] | slice) -> TickBatch:
        """Return the ticks at ``indices`` (an index array, boolean mask or slice), keeping the dictionary."""
        return TickBatch.from_fields(
            self.symbols,
            self.symbol_idx[indices],
            self.ts_ns[indices],
            {f: getattr(self, f)[indices] for f in TICK_FLOAT_FIELDS},
            seq=None if self.seq is None else self.seq[indices],
        )

    def with_seq(self, seq: I64) -> TickBatch:
        """Return the batch with arrival sequence numbers attached."""
        return TickBatch.from_fields(
            self.symbols, self.symbol_idx, self.ts_ns, {f: getattr(self, f) for f in TICK_FLOAT_FIELDS}, seq=seq
        )

    def symbol_array(self) -> npt.NDArray[np.object_]:
        """Return one symbol name per tick."""
        return np.asarray(self.symbols, dtype=object)[self.symbol_idx] if len(self) else np.empty(0, dtype=object)

    def to_ticks(self) -> list[Tick]:
        """Return the batch as Tick messages."""
        names = self.symbols
        cols = [getattr(self, f).tolist() for f in TICK_FLOAT_FIELDS]
        return [
            Tick(symbol=names[i], ts_ns=t, price=p, size=s, bid=b, ask=a, bid_size=bs, ask_size=az)
            for i, t, p, s, b, a, bs, az in zip(self.symbol_idx.tolist(), self.ts_ns.tolist(), *cols, strict=True)
        ]

    def check(self) -> None:
        """Raise ValueError naming the first tick that breaks a Tick invariant (the stores call this)."""
        problems = [
            ("price", ~(np.isfinite(self.price) & (self.price > 0)), "must be a positive finite number"),
            ("bid", ~(np.isfinite(self.bid) & (self.bid > 0)), "must be a positive finite number"),
            ("ask", ~(np.isfinite(self.ask) & (self.ask > 0)), "must be a positive finite number"),
            ("size", ~(np.isfinite(self.size) & (self.size >= 0)), "must be a finite number >= 0"),
            ("bid_size", ~(np.isfinite(self.bid_size) & (self.bid_size >= 0)), "must be a finite number >= 0"),
            ("ask_size", ~(np.isfinite(self.ask_size) & (self.ask_size >= 0)), "must be a finite number >= 0"),
            ("bid", self.bid > self.ask, "is above ask"),
        ]
        for name, bad, why in problems:
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"tick {i} ({self.symbols[self.symbol_idx[i]]} at {self.ts_ns[i]} ns): "
                    f"{name} {float(getattr(self, name)[i])!r} {why}"
                )


@dataclass(frozen=True, eq=False)
class BarBatch:
    """OHLCV bars of one interval as columns (store queries, imported bar files). ``vwap`` is NaN where unknown.

    Use :meth:`to_bars` for :class:`~tradepulse.domain.market.Bar` messages.
    """

    symbols: tuple[str, ...]
    symbol_idx: I32
    start_ns: I64
    interval_s: int
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    vwap: F64
    trades: I64

    def __len__(self) -> int:
        return len(self.start_ns)

    @classmethod
    def of_symbol(
        cls,
        symbol: str,
        interval_s: int,
        start_ns: object,
        open_: object,
        high: object,
        low: object,
        close: object,
        volume: object,
        vwap: object,
        trades: object,
    ) -> BarBatch:
        """Build one symbol's bars from columns (``vwap`` NaN where unknown)."""
        start = np.ascontiguousarray(start_ns, dtype=np.int64)
        n = len(start)
        return cls(
            (symbol,) if n else (),
            np.zeros(n, dtype=np.int32),
            start,
            interval_s,
            _f64(open_, n, "open"),
            _f64(high, n, "high"),
            _f64(low, n, "low"),
            _f64(close, n, "close"),
            _f64(volume, n, "volume"),
            _f64(vwap, n, "vwap"),
            np.ascontiguousarray(trades, dtype=np.int64),
        )

    def take(self, indices: npt.NDArray[np.integer] | slice) -> BarBatch:
        return BarBatch(
            self.symbols,
            self.symbol_idx[indices],
            self.start_ns[indices],
            self.interval_s,
            self.open[indices],
            self.high[indices],
            self.low[indices],
            self.close[indices],
            self.volume[indices],
            self.vwap[indices],
            self.trades[indices],
        )

    def to_bars(self) -> list[Bar]:
        names = self.symbols
        return [
            Bar(
                symbol=names[i],
                start_ns=t,
                interval_s=self.interval_s,
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
                vwap=None if w != w else w,  # NaN -> unknown
                trades=n,
            )
            for i, t, o, h, lo, c, v, w, n in zip(
                self.symbol_idx.tolist(),
                self.start_ns.tolist(),
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume.tolist(),
                self.vwap.tolist(),
                self.trades.tolist(),
                strict=True,
            )
        ]


__all__ = [
    "BAR_INTERVALS",
    "TICK_FLOAT_FIELDS",
    "BarBatch",
    "TickBatch",
    "interval_name",
    "interval_seconds",
]
