"""The signal service over the real Redis: partitioned order streams, and a redelivered tick stream that
produces no second order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from tests.integration.bus_fixtures import make_redis
from tests.unit.test_signal_engine import WARMUP, ConstantModel, _ticks
from tradepulse.bus.codec import DEFAULT_CODEC
from tradepulse.bus.redis_streams import FIELD
from tradepulse.bus.streams import SIGNALS, TICKS, order_stream, order_streams
from tradepulse.config import load_settings
from tradepulse.domain import SubmitOrder
from tradepulse.features import DEFAULT_FEATURES
from tradepulse.signals import LabelSpec, SignalEngine
from tradepulse.signals.service import SignalService


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    ns = f"test:{uuid.uuid4().hex[:10]}:"
    yield ns
    client = redis.asyncio.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{ns}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def _orders(client: redis.asyncio.Redis, ns: str, partitions: int) -> int:
    return sum([await client.xlen(ns + s) for s in order_streams(partitions)])


async def test_orders_land_on_their_partition_and_duplicates_change_nothing(redis_url: str, namespace: str) -> None:
    settings = load_settings(
        env={},
        overrides={
            "signals.cooldown_s": 0.0,
            "signals.max_position": 1e9,
            "bus.block_ms": 100,
            "bus.order_partitions": 4,
            "redis.url": redis_url,
        },
    )
    bus = make_redis(redis_url, settings.bus)
    engine = SignalEngine(
        ConstantModel((0.8, 0.1, 0.1)), DEFAULT_FEATURES, settings.signals, bar_seconds=1.0, labels=LabelSpec()
    )
    service = SignalService(bus, engine, settings, namespace=namespace, group_start="0")
    await service.start()
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        ticks = [t for pair in zip(_ticks("AAPL", 45), _ticks("NVDA", 45, seed=2), strict=True) for t in pair]
        await bus.publish_many(namespace + TICKS, ticks)
        expected = 2 * (44 - (WARMUP - 1))
        for _ in range(300):
            if await _orders(client, namespace, 4) >= expected:
                break
            await asyncio.sleep(0.02)
        assert await client.xlen(namespace + SIGNALS) == expected
        for symbol in ("AAPL", "NVDA"):
            entries = await client.xrange(namespace + order_stream(symbol, 4))
            assert entries, symbol
        # the whole tick stream delivered again (a producer retry): no new signal, no new order
        await bus.publish_many(namespace + TICKS, ticks)
        for _ in range(100):
            if engine.counters.stale_ticks >= len(ticks):
                break
            await asyncio.sleep(0.02)
        assert engine.counters.stale_ticks >= len(ticks)
        assert await _orders(client, namespace, 4) == expected
        raw = await client.xrange(namespace + order_stream("AAPL", 4))
        decoded = [
            DEFAULT_CODEC.decode(fields[FIELD.encode() if isinstance(FIELD, str) else FIELD]) for _, fields in raw
        ]
        ids = [m.client_order_id for m in decoded if isinstance(m, SubmitOrder)]
        assert len(ids) == len(raw)
        assert len(ids) == len(set(ids))
    finally:
        await service.close()
        await bus.close()
        await client.aclose()
