"""API fixtures: real Redis bus and PostgreSQL stores (a private schema per test) behind the app.

- ``api_settings``: Settings for the API (Redis bus on a private stream namespace is not needed: each test uses
  its own Redis database keys by clearing nothing; streams are shared, so tests read only what they publish
  after they start);
- ``api_services``: :class:`Services` opened over them (OrderClient started);
- ``app_client``: an ``httpx.AsyncClient`` over ``create_app(api_services)`` (ASGI transport, same loop);
- ``make_key(scope, account="default") -> str``: create a key in the store and return its token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tradepulse.api.app import create_app
from tradepulse.api.auth import Scope
from tradepulse.api.services import Services, open_services
from tradepulse.config import ApiConfig, BusConfig, DatabaseConfig, MLConfig, RedisConfig, Settings

FAST_BUS = BusConfig(transport="redis", block_ms=100, claim_idle_ms=400, claim_interval_ms=100)

MakeKey = Callable[..., Awaitable[str]]


def api_settings_for(tmp_path: Path, redis_url: str, pg_database: str, pg_schema: str, **api: Any) -> Settings:
    """Return settings for an API over Redis and this test's PostgreSQL schema (``api`` overrides ApiConfig)."""
    return Settings(
        bus=FAST_BUS,
        redis=RedisConfig(url=redis_url, publish_retry_s=0.5),
        database=DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=4),
        ml=MLConfig(registry_dir=str(tmp_path / "models")),
        api=ApiConfig(**{"rate_per_s": 10_000.0, "rate_burst": 10_000, "key_cache_s": 0.0, **api}),
    )


@pytest.fixture
def api_settings(tmp_path: Path, redis_url: str, pg_database: str, pg_schema: str) -> Settings:
    return api_settings_for(tmp_path, redis_url, pg_database, pg_schema)


@pytest.fixture
async def api_services(api_settings: Settings) -> AsyncIterator[Services]:
    async with open_services(api_settings) as services:
        yield services


@pytest.fixture
def api_app(api_services: Services) -> Litestar:
    return create_app(api_services)


@pytest.fixture
async def app_client(api_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the app in the test's own event loop (Litestar's AsyncTestClient runs the app in a
    portal thread with another loop, where the services opened here cannot be used)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app), base_url="http://testserver") as client:
        yield client


@pytest.fixture
def make_key(api_services: Services) -> MakeKey:
    """Return ``make_key(scope, account="default", name=...) -> token`` creating a key in the store."""

    async def make(scope: Scope | str = Scope.READ, account: str = "default", name: str = "test") -> str:
        label = scope.label if isinstance(scope, Scope) else scope
        _, token = await api_services.keys.create(name=name, account_id=account, scope=label)  # type: ignore[arg-type]
        return token

    return make
