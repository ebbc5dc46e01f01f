"""Fault tests against the real Redis and PostgreSQL, each bounded in time. After each: every order has exactly
one terminal state (or is still live), no order was sent to a venue twice and no fill booked twice, the venue's
fills equal the ledger's, positions and cash equal the sum of fills and fees, and nothing is left pending."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from tests.integration.bus_fixtures import make_redis
from tests.support.engine import EngineHarness, order, settings_for, tick, until
from tests.support.processes import check_invariants
from tests.support.proxy import FaultProxy
from tests.support.servers import redis_server
from tradepulse.bus import BusUnavailable, Transport
from tradepulse.bus.streams import order_streams
from tradepulse.client import OrderClient, OrderResult, OrderTimeout
from tradepulse.config import DatabaseConfig
from tradepulse.domain import OrderStatus, RejectReason, Side, SubmitOrder, TimeInForce
from tradepulse.execution.brokers import Broker, FaultyBroker

D = Decimal


@pytest.fixture
async def redis_bus(redis_url: str) -> AsyncIterator[Transport]:
    """The shared Redis, but this test's own streams: a private redis-server on a free port."""
    with redis_server(appendonly=False) as server:
        bus = make_redis(server.url)
        yield bus
        await bus.close()


def pg_settings(tmp_path: Path, pg_database: str, pg_schema: str, url: str | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return settings_for(
        tmp_path,
        transport="redis",
        database=DatabaseConfig(backend="postgres", url=url or pg_database, schema=pg_schema, pool_min=1, pool_max=4),
        **kw,  # type: ignore[arg-type]
    )


async def pending(bus: Transport) -> int:
    total = 0
    for stream in [*order_streams(4)]:
        try:
            total += await bus.pending_count(stream, "engine")
        except Exception:  # the stream may never have been used
            continue
    return total


async def settle(h: EngineHarness) -> None:
    await h.quiet(20)
    await asyncio.sleep(0.3)


async def test_duplicated_reordered_and_late_fills_are_booked_exactly_once(
    tmp_path: Path, redis_bus: Transport, pg_database: str, pg_schema: str
) -> None:
    def faulty(inner: Broker) -> Broker:
        return FaultyBroker(inner, duplicate_rate=0.2, reorder_rate=0.5, late_rate=0.15, seed=7)

    settings = pg_settings(tmp_path, pg_database, pg_schema, venue={"min_level_lots": 30, "depth_levels": 3})
    h = EngineHarness(settings, redis_bus, wrap=faulty)
    await h.start()
    await h.ticks(tick("AAA", 100.0, size=30), tick("BBB", 50.0, size=30))
    client = OrderClient(redis_bus, partitions=4, block_ms=100)
    await client.start()
    rng = random.Random(11)
    cmds: list[SubmitOrder] = []
    for _ in range(300):  # market orders walking 3 levels: several fills each, some partly canceled
        cmds.append(order(rng.choice(("AAA", "BBB")), rng.choice((Side.BUY, Side.SELL)), rng.randint(10, 120)))
    resting = [order("AAA", Side.BUY, 90, limit="99.90", tif=TimeInForce.GTC) for _ in range(20)]
    results = await client.submit_many([*cmds, *resting], timeout=30, until="accepted")
    assert not [r for r in results if isinstance(r, BaseException)]
    for _ in range(6):  # the market falls through the resting bids: each fills in parts, with faults in the reports
        await h.ticks(tick("AAA", 99.80, size=30))
        await h.ticks(tick("AAA", 100.0, size=30))
    await settle(h)
    assert h.store is not None
    faults = h.engine.broker if h.engine else None
    assert isinstance(faults, FaultyBroker)
    assert faults.duplicated > 10
    assert faults.reordered > 5
    assert faults.delayed > 10
    statuses = await check_invariants(h.store, tmp_path / "venue", {c.client_order_id for c in [*cmds, *resting]})
    assert statuses.get("FILLED", 0) + statuses.get("CANCELED", 0) + statuses.get("PARTIALLY_FILLED", 0) > 0
    partial = [f for f in await h.store.fills() if f.client_order_id in {c.client_order_id for c in resting}]
    assert len(partial) > len(resting), "resting orders filled in several parts"
    assert await pending(redis_bus) == 0
    await client.close()
    await h.stop()


async def test_a_broker_timing_out_on_5_percent_of_calls_never_executes_twice(
    tmp_path: Path, redis_bus: Transport, pg_database: str, pg_schema: str
) -> None:
    def flaky(inner: Broker) -> Broker:
        return FaultyBroker(inner, timeout_rate=0.05, seed=5)

    settings = pg_settings(tmp_path, pg_database, pg_schema, execution={"max_batch": 8})
    h = EngineHarness(settings, redis_bus, wrap=flaky)
    await h.start()
    await h.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
    client = OrderClient(redis_bus, partitions=4, block_ms=100)
    await client.start()
    rng = random.Random(3)
    cmds = [
        order(rng.choice(("AAA", "BBB")), rng.choice((Side.BUY, Side.SELL)), rng.randint(1, 20)) for _ in range(1500)
    ]
    results: list[OrderResult | BaseException] = []
    for start in range(0, len(cmds), 50):
        results += await client.submit_many(cmds[start : start + 50], timeout=30)
    assert not [r for r in results if isinstance(r, BaseException)]
    await settle(h)
    assert h.engine is not None
    broker = h.engine.broker
    assert isinstance(broker, FaultyBroker)
    assert broker.timeouts > 0
    assert broker.dropped_calls > 0
    assert h.engine.state.counters.broker_timeouts > 0
    assert h.store is not None
    statuses = await check_invariants(h.store, tmp_path / "venue", {c.client_order_id for c in cmds})
    lost = [
        r
        for r in results
        if isinstance(r, OrderResult) and getattr(r.last, "reason", None) is RejectReason.LOST_AT_BROKER
    ]
    assert lost, "orders whose submit never reached the venue are rejected, not resent"
    assert statuses["FILLED"] + statuses["REJECTED"] == len(cmds)
    unknown_seen = [
        r for r in results if isinstance(r, OrderResult) and r.events and type(r.events[0]).__name__ == "OrderUnknown"
    ]
    assert unknown_seen, "a timeout leaves the order UNKNOWN first"
    assert await pending(redis_bus) == 0
    await client.close()
    await h.stop()


async def _submit_until_answered(client: OrderClient, cmd: SubmitOrder, deadline: float) -> OrderResult:
    """Submit, and submit the same id again after a timeout or an outage: a duplicate never executes twice."""
    while True:
        try:
            return await client.submit(cmd, timeout=2.0)
        except (OrderTimeout, BusUnavailable):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_redis_restarted_mid_run_loses_and_duplicates_nothing(
    tmp_path: Path, pg_database: str, pg_schema: str
) -> None:
    with redis_server(appendonly=True) as server:
        bus = make_redis(server.url)
        settings = pg_settings(tmp_path, pg_database, pg_schema)
        h = EngineHarness(settings, bus)
        await h.start()
        await h.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
        client = OrderClient(bus, partitions=4, block_ms=100)
        await client.start()
        rng = random.Random(9)
        cmds = [
            order(rng.choice(("AAA", "BBB")), rng.choice((Side.BUY, Side.SELL)), rng.randint(1, 20)) for _ in range(600)
        ]
        deadline = time.monotonic() + 60

        async def stream_orders() -> list[OrderResult]:
            out = []
            for start in range(0, len(cmds), 20):
                out += await asyncio.gather(
                    *(_submit_until_answered(client, c, deadline) for c in cmds[start : start + 20])
                )
            return out

        task = asyncio.ensure_future(stream_orders())
        await until(lambda: h.engine is not None and h.engine.state.counters.admitted > 150, 20, "orders flowing")
        server.kill()  # kill -9 Redis mid-run; appendfsync always keeps what it acknowledged
        await asyncio.sleep(0.5)
        server.start()
        await h.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
        results = await asyncio.wait_for(task, 90)
        assert all(r.terminal for r in results)
        await settle(h)
        assert h.store is not None
        statuses = await check_invariants(h.store, tmp_path / "venue", {c.client_order_id for c in cmds})
        assert statuses["FILLED"] == len(cmds)
        assert await pending(bus) == 0
        await client.close()
        await h.stop()
        await bus.close()


async def test_postgresql_unavailable_refuses_new_orders_and_executes_nothing_without_a_ledger_row(
    tmp_path: Path, redis_bus: Transport, pg_database: str, pg_schema: str
) -> None:
    parsed = urlparse(pg_database)
    proxy = FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    via_proxy = urlunparse(
        parsed._replace(netloc=f"{parsed.username + '@' if parsed.username else ''}127.0.0.1:{proxy.port}")
    )
    settings = pg_settings(tmp_path, pg_database, pg_schema, url=via_proxy)
    h = EngineHarness(settings, redis_bus)
    await h.start()
    await h.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
    client = OrderClient(redis_bus, partitions=4, block_ms=100)
    await client.start()
    before = [await client.submit(order("AAA", Side.BUY, 5)) for _ in range(20)]
    assert all(r.status is OrderStatus.FILLED for r in before)
    resting = order("BBB", Side.BUY, 40, limit="49.90", tif=TimeInForce.GTC)
    assert (await client.submit(resting, until="accepted")).status is OrderStatus.ACCEPTED

    proxy.cut()  # PostgreSQL is gone for a while
    during = [await client.submit(order("AAA", Side.BUY, 5), timeout=10) for _ in range(30)]
    refused = [r for r in during if getattr(r.last, "reason", None) is RejectReason.LEDGER_UNAVAILABLE]
    assert len(refused) == len(during), [r.status for r in during]
    await h.ticks(tick("BBB", 49.80))  # the resting order fills at the venue while the ledger is down
    await asyncio.sleep(0.5)
    assert h.engine is not None
    assert h.engine.booker.backlog > 0, "the fill waits for the ledger"

    proxy.heal()
    await until(
        lambda: h.engine is not None and h.engine.state.ledger_ok and h.engine.booker.backlog == 0, 20, "recovery"
    )
    after = [await client.submit(order("AAA", Side.BUY, 5)) for _ in range(20)]
    assert all(r.status is OrderStatus.FILLED for r in after)
    await settle(h)
    assert h.store is not None
    admitted = {r.client_order_id for r in [*before, *after]} | {resting.client_order_id}
    statuses = await check_invariants(h.store, tmp_path / "venue", admitted)
    refused_ids = {r.client_order_id for r in refused}
    in_ledger = {r.order.client_order_id: r.order for r in await h.store.orders()}
    for coid in refused_ids:  # refused orders never executed; a row exists only if the write landed unseen
        assert coid not in in_ledger or in_ledger[coid].status is OrderStatus.REJECTED
    assert statuses["FILLED"] == 41
    await client.close()
    await h.stop()
    await proxy.close()
