"""Market data from the tick store: latest quotes, ticks in a time range, bars at an interval.

Prices and sizes are JSON numbers: they are market observations (float8 in the store), not money.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from litestar import Router, get
from litestar.params import Parameter

from tradepulse.api.auth import Scope, requires
from tradepulse.api.errors import NOT_FOUND, ApiError
from tradepulse.api.routes.common import Symbol, time_ns_param
from tradepulse.api.schemas import BarList, BarOut, Quote, QuoteList, TickList, TickOut
from tradepulse.api.services import ServicesDep

MAX_TICKS = 10_000
MAX_BARS = 10_000
HOUR_NS = 3_600 * 1_000_000_000


def _range(start_ns: int | None, end_ns: int | None, default_span_ns: int) -> tuple[int, int]:
    """Return the [start, end) range a query names; a range with start >= end is empty (not an error)."""
    end = time.time_ns() if end_ns is None else end_ns
    start = max(0, end - default_span_ns) if start_ns is None else start_ns
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
    start_ns: Annotated[int | None, time_ns_param("From (inclusive); default end_ns - 1 h.")] = None,
    end_ns: Annotated[int | None, time_ns_param("To (exclusive); default now.")] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_TICKS, description="At most this many, oldest first.")] = 1_000,
) -> TickList:
    """Ticks of ``symbol`` with ``start_ns <= ts_ns < end_ns``, in time order."""
    start, end = _range(start_ns, end_ns, HOUR_NS)
    if start >= end:
        return TickList(symbol=symbol, start_ns=start, end_ns=end, ticks=[])
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
    start_ns: Annotated[int | None, time_ns_param("Buckets from (inclusive); default 1 day back.")] = None,
    end_ns: Annotated[int | None, time_ns_param("Buckets to (exclusive); default now.")] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_BARS, description="At most this many, the most recent.")] = 1_000,
) -> BarList:
    """Bars built from the stored ticks, for buckets starting in ``[start_ns, end_ns)`` (only buckets with ticks),
    the most recent ``limit`` of them, in time order."""
    start, end = _range(start_ns, end_ns, 24 * HOUR_NS)
    if start >= end:
        return BarList(symbol=symbol, interval=interval, bars=[])
    batch = await services.ticks.bars(symbol, interval, start, end)
    if len(batch) > limit:
        batch = batch.take(slice(len(batch) - limit, None))
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
