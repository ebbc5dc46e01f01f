"""POST /api/v1/orders while the ledger's PostgreSQL is unreachable, for the engine and for the API alike.

PostgreSQL is reached through a TCP fault proxy (tests/support/proxy.py). The engine fails closed: a new order is
refused (REJECTED, LEDGER_UNAVAILABLE) and never sent to the venue. The API answers with that order: 201
``created``, status REJECTED, reject_reason LEDGER_UNAVAILABLE, no fills. A key the API had not yet checked
cannot be checked while the key store is down: 503. A refused order leaves no trace (no ledger row, nothing the
engine remembers), so once PostgreSQL is back the same client order id is a new order: re-POSTing it fills
(201 ``created``), as a new id does, and from then on it answers 200 ``existing``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import msgspec
import pytest

from tests.integration.api.conftest import api_settings_for
from tests.integration.api.trading_fixtures import TradingApi, trading_settings
from tests.integration.bus_fixtures import make_redis
from tests.support.engine import EngineHarness, tick, until
from tests.support.proxy import FaultProxy
from tests.support.servers import redis_server
from tradepulse.api.app import create_app
from tradepulse.api.auth import Scope
from tradepulse.api.services import open_services

pytestmark = pytest.mark.integration


def order_body(coid: str) -> dict[str, Any]:
    return {"client_order_id": coid, "symbol": "AAA", "side": "BUY", "quantity": "10"}


@pytest.fixture
async def proxied(tmp_path: Path, pg_database: str, pg_schema: str) -> AsyncIterator[tuple[TradingApi, FaultProxy]]:
    """The trading app and its engine, both reaching PostgreSQL only through a fault proxy."""
    parsed = urlparse(pg_database)
    proxy = FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    user = f"{parsed.username}@" if parsed.username else ""
    if parsed.password:
        user = f"{parsed.username}:{parsed.password}@"
    via_proxy = urlunparse(parsed._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
    try:
        with redis_server(appendonly=False) as server:
            engine_settings = trading_settings(tmp_path, server.url, via_proxy, pg_schema)
            # keys checked once are remembered for the test's length: the order path is what is under test
            api = api_settings_for(tmp_path, server.url, via_proxy, pg_schema, key_cache_s=60.0, order_timeout_s=5.0)
            settings = msgspec.structs.replace(engine_settings, api=api.api, ml=api.ml)
            bus = make_redis(server.url)
            harness = EngineHarness(settings, bus)
            await harness.start()
            await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
            try:
                async with open_services(settings) as services:
                    transport = httpx.ASGITransport(app=create_app(services))
                    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                        yield TradingApi(http, services, harness), proxy
            finally:
                proxy.heal()
                await harness.stop()
                await bus.close()
    finally:
        await proxy.close()


async def test_post_order_while_postgresql_is_down_is_rejected_ledger_unavailable_and_never_executes(
    proxied: tuple[TradingApi, FaultProxy],
) -> None:
    api, proxy = proxied
    trade = await api.key(Scope.TRADE)
    before = await api.http.post("/api/v1/orders", json=order_body("ld-before"), headers=trade)  # key now cached
    assert before.status_code == 201, before.text
    assert before.json()["order"]["status"] == "FILLED"
    venue = api.harness.venue
    assert venue is not None
    assert venue.fills == 1
    uncached = await api.key(Scope.TRADE)  # created, never used: the API has not checked it yet

    proxy.cut()  # PostgreSQL is gone for the engine and the API
    down = await api.http.post("/api/v1/orders", json=order_body("ld-down"), headers=trade)
    assert down.status_code == 201, down.text
    body = down.json()
    assert body["outcome"] == "created"
    assert body["fills"] == []
    order = body["order"]
    assert order["order_id"] == order["client_order_id"] == "ld-down"
    assert order["account_id"] == "default"
    assert order["status"] == "REJECTED"
    assert order["reject_reason"] == "LEDGER_UNAVAILABLE"
    assert order["status_message"].startswith("the ledger is unavailable: "), order["status_message"]
    assert order["filled_quantity"] == "0"
    assert order["leaves_quantity"] == "0"
    assert order["avg_fill_price"] is None
    assert order["venue_order_id"] is None
    # the same id again while still down: refused again, the same way (the engine keeps no refused order)
    again = await api.http.post("/api/v1/orders", json=order_body("ld-down"), headers=trade)
    assert again.status_code == 201, again.text
    assert again.json()["outcome"] == "created"
    assert again.json()["order"]["status"] == "REJECTED"
    assert again.json()["order"]["reject_reason"] == "LEDGER_UNAVAILABLE"
    assert again.json()["fills"] == []
    # a key the API has not checked cannot be checked while the key store is down
    unchecked = await api.http.post("/api/v1/orders", json=order_body("ld-unchecked"), headers=uncached)
    assert unchecked.status_code == 503, unchecked.text
    assert unchecked.json()["error"]["code"] == "unavailable"
    # reading the order needs the ledger: a clear 503, not a 500
    read = await api.http.get("/api/v1/orders/ld-down", headers=trade)
    assert read.status_code == 503, read.text
    assert read.json()["error"]["code"] == "unavailable"
    assert "ld-down" not in venue.orders
    assert "ld-unchecked" not in venue.orders
    assert venue.fills == 1

    proxy.heal()
    engine = api.harness.engine
    assert engine is not None
    await until(lambda: engine.state.ledger_ok, 10, "the engine sees the ledger again")
    new = await api.http.post("/api/v1/orders", json=order_body("ld-after"), headers=trade)
    assert new.status_code == 201, new.text
    assert new.json()["outcome"] == "created"
    assert new.json()["order"]["status"] == "FILLED"
    assert len(new.json()["fills"]) == 1
    # the refused id left no trace: re-POSTed now, it is a new order and fills, once
    retry = await api.http.post("/api/v1/orders", json=order_body("ld-down"), headers=trade)
    assert retry.status_code == 201, retry.text
    assert retry.json()["outcome"] == "created"
    assert retry.json()["order"]["status"] == "FILLED"
    assert retry.json()["order"]["reject_reason"] is None
    assert len(retry.json()["fills"]) == 1
    await api.harness.quiet()  # the fills are booked (a repeated id is answered with the booked fills)
    third = await api.http.post("/api/v1/orders", json=order_body("ld-down"), headers=trade)
    assert third.status_code == 200, third.text
    assert third.json()["outcome"] == "existing"
    assert third.json()["order"]["status"] == "FILLED"
    assert [f["fill_id"] for f in third.json()["fills"]] == [f["fill_id"] for f in retry.json()["fills"]]
    assert venue.fills == 3
    assert sorted(venue.orders) == ["ld-after", "ld-before", "ld-down"]
    booked = {r.order.client_order_id: r.order.status.name for r in await api.services.ledger.orders()}
    assert booked == {"ld-before": "FILLED", "ld-after": "FILLED", "ld-down": "FILLED"}
    assert len(await api.services.ledger.fills(client_order_ids=["ld-down"])) == 1
