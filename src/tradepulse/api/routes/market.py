"""Market data from the tick store: latest quotes, ticks in a time range, bars at an interval.

Prices and sizes are JSON numbers: they are market observations (float8 in the store), not money.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec
from litestar import Router, get
from litestar.params import Parameter

from tradepulse.api.auth import Scope, requires
from tradepulse.api.errors import NOT_FOUND, ApiError
from tradepulse.api.routes.common import Symbol, TimeNs
from tradepulse.api.services import ServicesDep
from tradepulse.domain import Tick
from tradepulse.domain.batch import BAR_INTERVALS

MAX_TICKS = 10_000
MAX_BARS = 10_000
HOUR_NS = 3_600 * 1_000_000_000


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """The latest tick of a symbol: last trade and the prevailing quote."""

    symbol: str
    ts_ns: int
    price: float
    size: float
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @classmethod
    def of(cls, t: Tick) -> Quote:
        return cls(
            symbol=t.symbol,
            ts_ns=t.ts_ns,
            price=t.price,
            size=t.size,
            bid=t.bid,
            ask=t.ask,
            bid_size=t.bid_size,
            ask_size=t.ask_size,
        )


class QuoteList(msgspec.Struct, frozen=True, kw_only=True):
    quotes: list[Quote]


class TickOut(msgspec.Struct, frozen=True, kw_only=True, array_like=False):
    ts_ns: int
    price: float
    size: float
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class TickList(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    start_ns: int
    end_ns: int
    ticks: list[TickOut]


class BarOut(msgspec.Struct, frozen=True, kw_only=True):
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    #: null where nothing traded
    vwap: float | None
    trades: int


class BarList(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    interval: str
    bars: list[BarOut]


def _range(start_ns: int | None, end_ns: int | None, default_span_ns: int) -> tuple[int, int]:
    end = time.time_ns() if end_ns is None else end_ns
    start = max(0, end - default_span_ns) if start_ns is None else start_ns
    if start >= end:
        raise ApiError(422, "validation_error", "start_ns must be before end_ns", field="query.start_ns")
    return start, end


@get("/market/quotes", summary="Latest quote of every symbol")
async def quotes(services: ServicesDep) -> QuoteList:
    """The latest tick of every symbol the tick store has seen, sorted by symbol."""
    latest = await services.ticks.latest()
    return QuoteList(quotes=[Quote.of(latest[s]) for s in sorted(latest)])


@get("/market/{symbol:str}/quote", summary="Latest quote of a symbol", responses=NOT_FOUND)
async def quote(services: ServicesDep, symbol: Symbol) -> Quote:
    """The latest tick of ``symbol`` (404 if the store has none)."""
    latest = await services.ticks.latest([symbol])
    tick = latest.get(symbol)
    if tick is None:
        raise ApiError(404, "not_found", f"no ticks for {symbol}")
    return Quote.of(tick)


@get("/market/{symbol:str}/ticks", summary="Ticks of a symbol in a time range")
async def ticks(
    services: ServicesDep,
    symbol: Symbol,
    start_ns: Annotated[TimeNs | None, Parameter(description="From (inclusive); default end_ns - 1 h.")] = None,
    end_ns: Annotated[TimeNs | None, Parameter(description="To (exclusive); default now.")] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_TICKS, description="At most this many, oldest first.")] = 1_000,
) -> TickList:
    """Ticks of ``symbol`` with ``start_ns <= ts_ns < end_ns``, in time order."""
    start, end = _range(start_ns, end_ns, HOUR_NS)
    batch = await services.ticks.ticks(symbol, start, end, limit=limit)
    out = [
        TickOut(ts_ns=t, price=p, size=s, bid=b, ask=a, bid_size=bs, ask_size=as_)
        for t, p, s, b, a, bs, as_ in zip(
            batch.ts_ns.tolist(),
            batch.price.tolist(),
            batch.size.tolist(),
            batch.bid.tolist(),
            batch.ask.tolist(),
            batch.bid_size.tolist(),
            batch.ask_size.tolist(),
            strict=True,
        )
    ]
    return TickList(symbol=symbol, start_ns=start, end_ns=end, ticks=out)


@get("/market/{symbol:str}/bars", summary="OHLCV bars of a symbol")
async def bars(
    services: ServicesDep,
    symbol: Symbol,
    interval: Annotated[Literal["1m", "5m", "15m", "1h", "1d"], Parameter(description="Bar length.")] = "1m",
    start_ns: Annotated[TimeNs | None, Parameter(description="Buckets from (inclusive); default 1 day back.")] = None,
    end_ns: Annotated[TimeNs | None, Parameter(description="Buckets to (exclusive); default now.")] = None,
) -> BarList:
    """Bars built from the stored ticks, for buckets starting in ``[start_ns, end_ns)``, in time order."""
    seconds = BAR_INTERVALS[interval]
    start, end = _range(start_ns, end_ns, 24 * HOUR_NS)
    if (end - start) // (seconds * 1_000_000_000) > MAX_BARS:
        raise ApiError(
            422, "validation_error", f"at most {MAX_BARS} bars per request; narrow the range", field="query.start_ns"
        )
    batch = await services.ticks.bars(symbol, interval, start, end)
    return BarList(
        symbol=symbol,
        interval=interval,
        bars=[
            BarOut(
                start_ns=b.start_ns,
                open=b.open,
                high=b.high,
                low=b.low,
                close=b.close,
                volume=b.volume,
                vwap=b.vwap,
                trades=b.trades,
            )
            for b in batch.to_bars()
        ],
    )


router = Router(
    path="/api/v1", route_handlers=[quotes, quote, ticks, bars], guards=[requires(Scope.READ)], tags=["market"]
)
