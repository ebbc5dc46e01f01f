"""An in-process engine harness for integration tests: a real bus, a real ledger store, a journaled venue."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradepulse.bus import Transport
from tradepulse.bus.streams import TICKS
from tradepulse.client import OrderClient
from tradepulse.config import (
    BusConfig,
    DatabaseConfig,
    ExecutionConfig,
    MarketConfig,
    RiskConfig,
    Settings,
    VenueConfig,
)
from tradepulse.domain import OrderType, Side, SubmitOrder, Tick, TimeInForce
from tradepulse.execution.brokers import Broker, SimulatedExchange, make_broker
from tradepulse.execution.engine import ExecutionEngine
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.storage.ledger_postgres import PostgresLedgerStore
from tradepulse.storage.ledger_sqlite import SqliteLedgerStore
from tradepulse.storage.ledger_store import LedgerStore

SYMBOLS = ("AAA", "BBB")
FAST_BUS = BusConfig(block_ms=100, claim_idle_ms=400, claim_interval_ms=100, max_deliveries=10, read_count=512)


def settings_for(
    tmp: Path,
    *,
    name: str = "engine-1",
    database: DatabaseConfig | None = None,
    transport: str = "memory",
    redis_url: str = "redis://127.0.0.1:6379/0",
    risk: dict[str, Any] | None = None,
    execution: dict[str, Any] | None = None,
    venue: dict[str, Any] | None = None,
    bus: BusConfig = FAST_BUS,
) -> Settings:
    from tradepulse.config import RedisConfig

    return Settings(
        bus=BusConfig(**{**{f: getattr(bus, f) for f in bus.__struct_fields__}, "transport": transport}),  # type: ignore[arg-type]
        redis=RedisConfig(url=redis_url, publish_retry_s=2.0),
        database=database or DatabaseConfig(backend="sqlite", sqlite_path=str(tmp / "ledger.db")),
        market=MarketConfig(symbols=SYMBOLS),
        risk=RiskConfig(**{"starting_cash": Decimal(10_000_000), "max_orders_per_s": 1_000_000, **(risk or {})}),
        venue=VenueConfig(
            **{"journal_dir": str(tmp / "venue"), "min_level_lots": 100_000, "depth_levels": 3, **(venue or {})}
        ),
        execution=ExecutionConfig(
            **{
                "engine_name": name,
                "resolve_interval_ms": 50,
                "unknown_grace_ms": 300,
                "ledger_retry_ms": 50,
                "broker_timeout_ms": 1_000,
                **(execution or {}),
            }
        ),
    )


def make_store(settings: Settings) -> LedgerStore:
    if settings.database.backend == "postgres":
        return PostgresLedgerStore(settings.database)
    return SqliteLedgerStore(settings.database.sqlite_path)


_ids = itertools.count()


def order(
    symbol: str = "AAA",
    side: Side = Side.BUY,
    qty: int | str = 10,
    *,
    limit: str | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    coid: str | None = None,
    prefix: str = "o",
) -> SubmitOrder:
    return SubmitOrder(
        client_order_id=coid or f"{prefix}{next(_ids)}",
        symbol=symbol,
        side=side,
        quantity=Decimal(qty),
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        limit_price=None if limit is None else Decimal(limit),
        time_in_force=tif,
        ts_ns=time.time_ns(),
    )


def tick(symbol: str, mid: float, size: float = 1000.0, half: float = 0.01, price: float | None = None) -> Tick:
    bid, ask = round(mid - half, 2), round(mid + half, 2)
    return Tick(
        symbol=symbol,
        ts_ns=time.time_ns(),
        price=ask if price is None else price,
        size=size,
        bid=bid,
        ask=ask,
        bid_size=size,
        ask_size=size,
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.01)


async def until_async(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)


class EngineHarness:
    """One engine on ``bus`` with its own store and journaled venue; ``restart`` simulates a crash + restart."""

    def __init__(
        self,
        settings: Settings,
        bus: Transport,
        *,
        wrap: Callable[[Broker], Broker] | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.wrap = wrap
        self.instruments = InstrumentRegistry.from_settings(settings)
        self.engine: ExecutionEngine | None = None
        self.venue: SimulatedExchange | None = None
        self.store: LedgerStore | None = None

    async def start(self) -> ExecutionEngine:
        venue = make_broker(self.settings, self.instruments)
        assert isinstance(venue, SimulatedExchange)
        self.venue = venue
        broker: Broker = venue if self.wrap is None else self.wrap(venue)
        self.store = make_store(self.settings)
        self.engine = ExecutionEngine(self.settings, self.bus, self.store, broker, instruments=self.instruments)
        await self.engine.start()
        return self.engine

    async def ticks(self, *ticks: Tick) -> None:
        """Publish ticks and wait until the engine has seen them."""
        assert self.engine is not None
        engine = self.engine
        for t in ticks:
            await self.bus.publish(TICKS, t)
        last = {t.symbol: t for t in ticks}

        def seen() -> bool:
            return all(engine.state.marks.quotes.get(s) == (t.bid, t.ask) for s, t in last.items())

        await until(seen, 10, "engine saw the ticks")

    async def crash(self) -> None:
        assert self.engine is not None
        await self.engine.abort()

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop(timeout=10)

    async def quiet(self, timeout: float = 10.0) -> None:
        """Wait until the engine has nothing left to process, publish or book."""
        engine = self.engine
        assert engine is not None

        def idle() -> bool:
            return (
                not engine.processor._inputs
                and engine.publisher.backlog == 0
                and engine.booker.backlog == 0
                and not any(t.order.status.value in ("NEW", "UNKNOWN") for t in engine.state.orders.values())
            )

        try:
            await until(idle, timeout, "engine quiet")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: inputs={len(engine.processor._inputs)} unpublished={engine.publisher.backlog} "
                f"unbooked={engine.booker.backlog} orders={[t.order.status for t in engine.state.orders.values()]}"
            ) from None


async def client_for(bus: Transport, settings: Settings) -> OrderClient:
    client = OrderClient(bus, partitions=settings.bus.order_partitions, block_ms=100)
    await client.start()
    return client
