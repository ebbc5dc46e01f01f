"""Redis-only behaviour: surviving a server restart, and blocking reads under a socket timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from tests.integration.bus_fixtures import FAST, make_redis
from tests.support.servers import redis_server
from tradepulse.bus import BusUnavailable, Consumer, Delivery
from tradepulse.config import BusConfig
from tradepulse.domain import Tick


def tick(i: int) -> Tick:
    return Tick(symbol="AAPL", ts_ns=i, price=100.0, size=1.0, bid=99.0, ask=101.0)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        self.seen.extend(d.message.ts_ns for d in batch if isinstance(d.message, Tick))
        return None


async def _until(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _publish_with_retry(transport, stream: str, i: int, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            await transport.publish(stream, tick(i))
            return
        except BusUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_consumer_survives_a_crash_restart_with_aof_and_loses_nothing() -> None:
    with redis_server(appendonly=True) as server:
        producer, reader = make_redis(server.url), make_redis(server.url)
        recorder = Recorder()
        consumer = Consumer(reader, group="g", name="c", streams=["s"], handler=recorder, config=FAST)
        consumer.start()
        await consumer.wait_started()
        for i in range(50):
            await producer.publish("s", tick(i))
        await _until(lambda: len(recorder.seen) >= 50, 10)

        server.kill()  # kill -9: appendfsync always keeps every acknowledged write
        await asyncio.sleep(0.5)
        server.start()
        for i in range(50, 100):
            await _publish_with_retry(producer, "s", i)
        await _until(lambda: set(range(100)) <= set(recorder.seen), 20)
        await consumer.close()
        assert consumer.counters.outages >= 1
        assert consumer.counters.outages < 40, "reconnects must back off, not spin"
        assert await reader.pending_count("s", "g") == 0
        await producer.close()
        await reader.close()


async def test_group_is_recreated_after_a_restart_without_persistence_without_a_hot_loop() -> None:
    with redis_server(appendonly=False) as server:
        producer, reader = make_redis(server.url), make_redis(server.url)
        recorder = Recorder()
        consumer = Consumer(reader, group="g", name="c", streams=["s"], handler=recorder, config=FAST)
        consumer.start()
        await consumer.wait_started()
        await producer.publish("s", tick(1))
        await _until(lambda: recorder.seen == [1], 10)

        server.restart()  # no persistence: the stream and the group are gone (NOGROUP on the next read)
        outage_started = time.monotonic()
        await _publish_with_retry(producer, "s", 2)
        await _until(lambda: 2 in recorder.seen, 20)
        elapsed = time.monotonic() - outage_started
        await consumer.close()
        recoveries = consumer.counters.outages + consumer.counters.group_recreated
        assert recoveries >= 1
        assert recoveries <= 10 + 20 * elapsed, "recovery must back off, not spin"
        await producer.close()
        await reader.close()


async def test_blocking_reads_longer_than_a_tick_do_not_trip_the_socket_timeout(redis_url: str) -> None:
    transport = make_redis(redis_url, BusConfig(block_ms=700), socket_timeout_s=1.0)
    stream = f"test:timeout:{time.monotonic_ns()}"
    await transport.ensure_group(stream, "g")
    for _ in range(3):  # 2.1 s of idle blocking reads through a 1 s socket timeout
        assert await transport.read("g", "c", [stream], count=10, block_ms=700) == []
    await transport.publish(stream, tick(5))
    got = await transport.read("g", "c", [stream], count=10, block_ms=700)
    assert [d.message for d in got] == [tick(5)]
    await transport.client.delete(stream)
    await transport.close()


async def test_publish_fails_closed_when_redis_is_down() -> None:
    with redis_server() as server:
        transport = make_redis(server.url)
        await transport.publish("s", tick(1))
        server.stop()
        started = time.monotonic()
        try:
            await transport.publish("s", tick(2))
        except BusUnavailable:
            pass
        else:
            raise AssertionError("publish to a stopped Redis must raise BusUnavailable")
        assert time.monotonic() - started < 10
        await transport.close()
