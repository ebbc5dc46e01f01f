"""Tick data for tests, and an independent reference bar aggregation (exact, with fractions).

The reference is deliberately written another way than the stores and :mod:`tradepulse.marketdata.bars`: plain
Python over sorted rows, sums as :class:`fractions.Fraction`, rounded to float once.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import groupby

import numpy as np

from tradepulse.domain import Bar, TickBatch

#: 2024-01-02 00:00:00 UTC in microseconds
DAY0_US = 1_704_153_600_000_000


def random_ticks(
    rng: np.random.Generator,
    symbols: list[str],
    n: int,
    *,
    start_us: int = DAY0_US,
    span_us: int = 3_600_000_000,
    sort: bool = True,
) -> TickBatch:
    """Return ``n`` random ticks over ``symbols`` with microsecond timestamps in ``[start_us, start_us + span_us)``."""
    t = start_us + rng.integers(0, span_us, n)
    if sort:
        t = np.sort(t)
    price = np.round(100 + rng.normal(0, 2, n), 2)
    price = np.where(price > 0, price, 0.01)
    spread = rng.integers(1, 4, n) * 0.01
    size = np.where(rng.random(n) < 0.5, rng.integers(1, 50, n) * 100.0, np.round(rng.random(n) * 10, 3))
    return TickBatch.from_columns(
        np.asarray(symbols, dtype=object)[rng.integers(0, len(symbols), n)],
        t * 1000,
        price,
        size,
        np.round(price - spread, 2).clip(0.01),
        np.round(price + spread, 2),
        rng.integers(1, 10, n) * 100.0,
        rng.integers(1, 10, n) * 100.0,
    )


def reference_bars(ticks: TickBatch, symbol: str, interval_s: int) -> list[Bar]:
    """Aggregate ``ticks`` (with seq, one symbol or several) of ``symbol`` into bars, the slow obvious way."""
    assert ticks.seq is not None
    iv = interval_s * 1_000_000
    rows = sorted(
        (int(t) // 1000, int(q), float(p), float(s))
        for i, t, q, p, s in zip(
            ticks.symbol_idx.tolist(), ticks.ts_ns.tolist(), ticks.seq.tolist(), ticks.price, ticks.size, strict=True
        )
        if ticks.symbols[i] == symbol
    )
    bars: list[Bar] = []
    for bucket, group in groupby(rows, key=lambda r: r[0] // iv * iv):
        g = list(group)
        volume = float(sum((Fraction(r[3]) for r in g), Fraction(0)))
        turnover = float(sum((Fraction(r[2] * r[3]) for r in g), Fraction(0)))
        bars.append(
            Bar(
                symbol=symbol,
                start_ns=bucket * 1000,
                interval_s=interval_s,
                open=g[0][2],
                high=max(r[2] for r in g),
                low=min(r[2] for r in g),
                close=g[-1][2],
                volume=volume,
                vwap=turnover / volume if volume > 0 else None,
                trades=len(g),
            )
        )
    return bars


def bar_tuples(bars: list[Bar]) -> list[tuple[object, ...]]:
    """Return bars as comparable tuples (every field, exactly)."""
    return [
        (b.symbol, b.start_ns, b.interval_s, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades) for b in bars
    ]
