"""What the API's handlers work with, opened once per worker process in the app's lifespan.

``open_services(settings)`` connects the bus (Redis or in-process, per ``bus.transport``), the ledger, tick and
key stores (PostgreSQL or SQLite, per ``database.backend``), opens the model registry, starts the order client
(one reader of ``reports`` for all waiting requests) and the signal board, and closes everything in reverse
order on exit. The embedded runtime passes its own bus (``bus=``), which is then left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from litestar.di import NamedDependency

from tradepulse.api.auth import KeyCache
from tradepulse.api.feed import LiveFeed
from tradepulse.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tradepulse.api.signal_board import SignalBoard
from tradepulse.bus import BusUnavailable, Transport, make_transport
from tradepulse.client import OrderClient
from tradepulse.config import Settings
from tradepulse.ml.registry import ModelRegistry
from tradepulse.storage import make_ledger_store
from tradepulse.storage.keys import KeyStore, make_key_store
from tradepulse.storage.ledger_store import LedgerStore
from tradepulse.storage.ticks import TickStore, open_tick_store

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a handler needs (``services`` dependency; see :mod:`tradepulse.api.app`)."""

    settings: Settings
    bus: Transport
    ledger: LedgerStore
    ticks: TickStore
    keys: KeyStore
    registry: ModelRegistry
    orders: OrderClient
    limiter: RateLimiter
    signals: SignalBoard
    key_cache: KeyCache = field(default_factory=lambda: KeyCache(5.0))
    #: the WebSocket fan-out (one reader per stream per process; readers start with the first subscriber)
    feed: LiveFeed | None = None
    #: the orders/positions/rebalance service (api/trading_service.py); built on first use
    trading: Any = None


#: how a handler asks for the services: ``async def handler(services: ServicesDep) -> ...``
ServicesDep = NamedDependency[Services]


def make_limiter(settings: Settings, bus: Transport) -> RateLimiter:
    """Return a Redis limiter (shared by every process) with the Redis bus, else an in-process one."""
    client = getattr(bus, "client", None)
    if settings.bus.transport == "redis" and client is not None:
        return RedisRateLimiter(client, settings.api.rate_per_s, settings.api.rate_burst)
    return MemoryRateLimiter(settings.api.rate_per_s, settings.api.rate_burst)


async def _start_order_client(orders: OrderClient) -> asyncio.Task[None] | None:
    """Start ``orders``; with the bus down, keep trying in the background (and return that task), so the API comes
    up and reports itself not ready instead of failing to start. Until then ``orders.submit`` raises RuntimeError.
    """
    try:
        await orders.start()
        return None
    except BusUnavailable as exc:
        log.warning("API: the bus is unavailable at start (%s); the order client starts when it is back", exc)

    async def retry() -> None:
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            try:
                await orders.start()
                log.info("API: the order client started")
                return
            except BusUnavailable:
                delay = min(delay * 2, 2.0)

    return asyncio.get_running_loop().create_task(retry(), name="api-order-client-start")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def open_services(settings: Settings, *, bus: Transport | None = None) -> AsyncIterator[Services]:
    """Open every service the API uses; close them on exit (a passed-in ``bus`` is left open)."""
    async with contextlib.AsyncExitStack() as stack:
        if bus is None:
            bus = make_transport(settings)
            stack.push_async_callback(bus.close)
        ledger = make_ledger_store(settings)
        await ledger.open()
        stack.push_async_callback(ledger.close)
        ticks = await open_tick_store(settings.database)
        stack.push_async_callback(ticks.close)
        keys = make_key_store(settings.database)
        await keys.open()
        stack.push_async_callback(keys.close)
        orders = OrderClient(bus, partitions=settings.bus.order_partitions)
        starter = await _start_order_client(orders)
        stack.push_async_callback(orders.close)
        if starter is not None:
            stack.push_async_callback(_cancel, starter)
        board = SignalBoard(bus, history=settings.api.signals_history, cache_s=settings.api.signals_cache_s)
        await board.start()
        stack.push_async_callback(board.close)
        feed = LiveFeed(bus, queue_max=settings.api.ws_queue_max, block_ms=settings.bus.block_ms)
        stack.push_async_callback(feed.close)
        yield Services(
            settings=settings,
            bus=bus,
            ledger=ledger,
            ticks=ticks,
            keys=keys,
            registry=ModelRegistry(settings.ml.registry_dir),
            orders=orders,
            limiter=make_limiter(settings, bus),
            signals=board,
            key_cache=KeyCache(settings.api.key_cache_s),
            feed=feed,
        )


__all__ = ["Services", "ServicesDep", "make_limiter", "open_services"]
