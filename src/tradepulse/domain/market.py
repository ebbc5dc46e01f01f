"""Market data messages.

Market observations (ticks, bars) carry binary floats: they are measurements for analytics and features, not
money. Anything that becomes money (a fill price, a limit price) goes through
:meth:`~tradepulse.domain.instruments.Instrument.price_from_float`, which puts it on the tick grid exactly.
"""

from __future__ import annotations

import math

from tradepulse.domain.messages import Message


class Tick(Message, frozen=True, kw_only=True):
    """A trade print with the prevailing quote."""

    symbol: str
    ts_ns: int
    price: float
    size: float
    bid: float
    ask: float
    bid_size: float = 0.0
    ask_size: float = 0.0

    def __post_init__(self) -> None:
        for name in ("price", "bid", "ask"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a positive finite number, got {value}")
        for name in ("size", "bid_size", "ask_size"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be a finite number >= 0, got {value}")
        if self.bid > self.ask:
            raise ValueError(f"bid {self.bid} is above ask {self.ask}")

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


class Bar(Message, frozen=True, kw_only=True):
    """An OHLCV bar over ``[start_ns, start_ns + interval)``."""

    symbol: str
    start_ns: int
    interval_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None = None
    trades: int = 0
