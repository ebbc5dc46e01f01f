"""The live feed over the real Redis bus, fed by a real engine (simulated exchange, PostgreSQL ledger): quotes,
signals, order events and fills reach the subscribers of their symbol and account, and nobody else."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.bus_fixtures import make_redis
from tests.support.engine import EngineHarness, client_for, settings_for, tick, until
from tests.support.servers import redis_server
from tradepulse.api.feed import LiveFeed, SlowConsumer, Subscriber
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.bus.streams import SIGNALS, TICKS
from tradepulse.config import DatabaseConfig
from tradepulse.domain import OrderType, Side, Signal, SignalAction, SubmitOrder, TimeInForce

pytestmark = pytest.mark.integration


@pytest.fixture
async def private_redis() -> AsyncIterator[str]:
    with redis_server() as server:
        yield server.url


async def frames(sub: Subscriber, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.extend(json.loads(f) for f in await sub.next())
    return out


async def test_a_real_engine_run_reaches_the_owner_of_the_order_and_only_them(
    tmp_path: Path, private_redis: str, pg_database: str, pg_schema: str
) -> None:
    settings = settings_for(
        tmp_path,
        transport="redis",
        redis_url=private_redis,
        database=DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=4),
        risk={"accounts": ("default", "other")},
    )
    bus: RedisTransport = make_redis(private_redis, settings.bus)
    harness = EngineHarness(settings, bus)
    feed = LiveFeed(make_redis(private_redis, settings.bus), block_ms=100)
    try:
        await harness.start()
        await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
        client = await client_for(bus, settings)
        mine = feed.attach("default")
        theirs = feed.attach("other")
        await feed.subscribe(mine, ["orders", "fills", "quotes", "signals"], ["AAA"])
        await feed.subscribe(theirs, ["orders", "fills"], ["*"])

        await harness.ticks(tick("AAA", 100.5), tick("BBB", 50.5))
        await bus.publish(
            SIGNALS,
            Signal(symbol="AAA", action=SignalAction.SELL, confidence=0.7, model_version="m", ts_ns=time.time_ns()),
        )
        result = await client.submit(
            SubmitOrder(
                client_order_id="feed-1",
                symbol="AAA",
                side=Side.BUY,
                quantity=Decimal(7),
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                account_id="default",
                ts_ns=time.time_ns(),
            ),
            timeout=10,
        )
        assert result.status.value == "FILLED"

        got = await frames(mine, 5)
        kinds = [(f["channel"], f["data"].get("type")) for f in got]
        assert kinds == [
            ("quotes", "Tick"),
            ("signals", "Signal"),
            ("orders", "OrderAccepted"),
            ("orders", "OrderFilled"),
            ("fills", None),
        ]
        assert got[0]["data"]["bid"] == 100.49
        assert all(f["symbol"] == "AAA" for f in got)
        assert all(f["account_id"] == "default" for f in got[2:])
        assert got[3]["data"]["client_order_id"] == "feed-1"
        assert got[4]["data"] == {**got[3]["data"]["fill"]}
        assert Decimal(got[4]["data"]["quantity"]) == 7
        assert Decimal(got[4]["data"]["price"]) == result.fills[0].price

        # the other account sees its own order and never the first one
        other = await client.submit(
            SubmitOrder(
                client_order_id="feed-2",
                symbol="BBB",
                side=Side.SELL,
                quantity=Decimal(2),
                time_in_force=TimeInForce.IOC,
                account_id="other",
                ts_ns=time.time_ns(),
            ),
            timeout=10,
        )
        assert other.status.value == "FILLED"
        got = await frames(theirs, 3)
        assert [f["data"].get("client_order_id") for f in got] == ["feed-2", "feed-2", "feed-2"]
        assert {f["account_id"] for f in got} == {"other"}
        await asyncio.sleep(0.3)
        assert mine.queued == 0, "an order of another account (and symbol) never reaches this subscriber"
        assert theirs.queued == 0
        await client.close()
    finally:
        await feed.close()
        await feed.bus.close()
        await harness.stop()
        await bus.close()


async def test_a_subscriber_that_stops_reading_is_cut_off_at_its_bound_over_redis(private_redis: str) -> None:
    bus = make_redis(private_redis)
    feed = LiveFeed(bus, block_ms=100, queue_max=50)
    try:
        slow = feed.attach("a")
        await feed.subscribe(slow, ["quotes"], ["*"])
        await bus.publish_many(TICKS, [tick("AAA", 100.0 + i / 100) for i in range(500)])
        await until(lambda: slow.closed is not None, 10, "the slow subscriber was cut off")
        assert slow.peak == 50
        with pytest.raises(SlowConsumer):
            await slow.next()
        assert feed.subscribers == 0
        assert feed.stats.slow_consumers == 1
    finally:
        await feed.close()
        await bus.close()
