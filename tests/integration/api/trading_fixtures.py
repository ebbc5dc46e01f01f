"""Fixtures for the trading service and routes: a real engine (simulated exchange) on a private Redis, the
ledger in this test's own PostgreSQL schema, and a TradingService over a second store and an OrderClient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.integration.api.conftest import api_settings_for
from tests.integration.bus_fixtures import make_redis
from tests.support.engine import EngineHarness, settings_for, tick, until_async
from tests.support.servers import redis_server
from tradepulse.api.app import create_app
from tradepulse.api.auth import Scope
from tradepulse.api.services import Services, open_services
from tradepulse.api.trading_service import TradingService
from tradepulse.bus import Transport
from tradepulse.client import OrderClient
from tradepulse.config import DatabaseConfig, Settings
from tradepulse.storage.ledger_postgres import PostgresLedgerStore

D = Decimal
ACCOUNTS = ("default", "acct-b")


@dataclass
class Trading:
    settings: Settings
    bus: Transport
    harness: EngineHarness
    store: PostgresLedgerStore
    client: OrderClient
    service: TradingService


def trading_settings(tmp_path: Path, redis_url: str, pg_database: str, pg_schema: str) -> Settings:
    return settings_for(
        tmp_path,
        transport="redis",
        redis_url=redis_url,
        database=DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=4),
        risk={"accounts": ACCOUNTS, "starting_cash": D(1_000_000), "max_position": D(5_000)},
    )


async def wait_marks(store: PostgresLedgerStore, symbols: tuple[str, ...] = ("AAA", "BBB")) -> None:
    """Wait until the engine has written marks for ``symbols`` (it does every second)."""

    async def marked() -> bool:
        return set(symbols) <= set(await store.marks())

    await until_async(marked, 10, "marks written")


@asynccontextmanager
async def open_trading(
    tmp_path: Path, pg_database: str, pg_schema: str, execution: dict[str, Any] | None = None
) -> AsyncIterator[Trading]:
    """A private Redis, a real engine (``execution`` overrides its settings) and a TradingService over it."""
    with redis_server(appendonly=False) as server:
        settings = trading_settings(tmp_path, server.url, pg_database, pg_schema)
        if execution:
            settings = msgspec.structs.replace(
                settings, execution=msgspec.structs.replace(settings.execution, **execution)
            )
        bus = make_redis(server.url)
        harness = EngineHarness(settings, bus)
        await harness.start()
        await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
        store = PostgresLedgerStore(settings.database)
        await store.open()
        client = OrderClient(bus, partitions=settings.bus.order_partitions, block_ms=100)
        await client.start()
        service = TradingService.create(settings, store, client, timeout_s=5.0)
        try:
            yield Trading(settings, bus, harness, store, client, service)
        finally:
            await client.close()
            await harness.stop()
            await store.close()
            await bus.close()


@pytest.fixture
async def trading(tmp_path: Path, pg_database: str, pg_schema: str) -> AsyncIterator[Trading]:
    async with open_trading(tmp_path, pg_database, pg_schema) as t:
        yield t


@dataclass
class TradingApi:
    """The app over real services, with an engine (simulated exchange) behind it on a private Redis."""

    http: httpx.AsyncClient
    services: Services
    harness: EngineHarness

    async def key(self, scope: Scope, account: str = "default") -> dict[str, str]:
        """Return headers carrying a new key of ``scope`` for ``account``."""
        _, token = await self.services.keys.create(name="test", account_id=account, scope=scope.label)  # type: ignore[arg-type]
        return {"X-API-Key": token}


@pytest.fixture
async def trading_api(tmp_path: Path, pg_database: str, pg_schema: str) -> AsyncIterator[TradingApi]:
    with redis_server(appendonly=False) as server:
        engine_settings = trading_settings(tmp_path, server.url, pg_database, pg_schema)
        api = api_settings_for(tmp_path, server.url, pg_database, pg_schema)
        settings = msgspec.structs.replace(engine_settings, api=api.api, ml=api.ml)
        bus = make_redis(server.url)
        harness = EngineHarness(settings, bus)
        await harness.start()
        await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
        try:
            async with open_services(settings) as services:
                app = create_app(services)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                    yield TradingApi(http, services, harness)
        finally:
            await harness.stop()
            await bus.close()
