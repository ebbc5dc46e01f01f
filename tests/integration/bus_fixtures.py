"""Shared fixtures for the bus contract suite: one transport per parameter, fast consumer settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio

from tradepulse.bus import MemoryTransport, Transport, dead_letter_stream
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.config import BusConfig, RedisConfig

FAST = BusConfig(
    block_ms=100,
    claim_idle_ms=150,
    claim_interval_ms=50,
    max_deliveries=3,
    read_count=64,
    trim_interval_ms=100,
)


def make_redis(url: str, bus: BusConfig = FAST, socket_timeout_s: float = 2.0) -> RedisTransport:
    return RedisTransport.from_config(RedisConfig(url=url, socket_timeout_s=socket_timeout_s, publish_retry_s=1.0), bus)


@pytest.fixture(params=["memory", "redis"])
async def transport_factory(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Callable[[], Transport]]:
    """Return a factory of transports that share one broker (so two of them are two processes' views)."""
    made: list[Transport] = []
    shared = MemoryTransport()

    def factory() -> Transport:
        transport: Transport = shared if request.param == "memory" else make_redis(redis_url)
        made.append(transport)
        return transport

    yield factory
    for transport in made:
        await transport.close()


@pytest.fixture
async def transport(transport_factory: Callable[[], Transport]) -> Transport:
    return transport_factory()


@pytest.fixture
async def stream(redis_url: str) -> AsyncIterator[str]:
    """Return a fresh stream name; delete it (and its dead letters) from Redis afterwards."""
    name = f"test:{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.delete(name, dead_letter_stream(name))
    await client.aclose()
