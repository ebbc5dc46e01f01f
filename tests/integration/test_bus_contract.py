"""ONE contract for every bus transport: the in-process one and Redis Streams on the real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

import pytest
import redis.asyncio

from tests.integration.bus_fixtures import FAST
from tradepulse.bus import Consumer, Delivery, GroupMissing, Transport, dead_letter_stream, each
from tradepulse.domain import Message, Tick

G = "group"


def tick(i: int, symbol: str = "AAPL") -> Tick:
    return Tick(symbol=symbol, ts_ns=i, price=100.0 + i / 100, size=1.0, bid=99.0 + i / 100, ask=101.0 + i / 100)


async def drain(transport: Transport, stream: str, consumer: str = "c", ack: bool = True) -> list[Delivery]:
    out: list[Delivery] = []
    while True:
        batch = await transport.read(G, consumer, [stream], count=100, block_ms=50)
        if not batch:
            return out
        out.extend(batch)
        if ack:
            await transport.ack(stream, G, [d.entry_id for d in batch])


async def test_per_stream_order_with_concurrent_publishers(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G)

    async def producer(symbol: str) -> None:
        for start in range(0, 200, 20):
            if start % 40:
                await transport.publish_many(stream, [tick(i, symbol) for i in range(start, start + 20)])
            else:
                for i in range(start, start + 20):
                    await transport.publish(stream, tick(i, symbol))

    await asyncio.gather(*(producer(s) for s in ("A", "B", "C")))
    got = await drain(transport, stream)
    assert len(got) == 600
    for symbol in ("A", "B", "C"):
        seq = [d.message.ts_ns for d in got if isinstance(d.message, Tick) and d.message.symbol == symbol]
        assert seq == list(range(200)), f"order broken for {symbol}"
    ids = [d.entry_id for d in got]
    assert len(set(ids)) == len(ids)
    assert all(d.deliveries == 1 for d in got)


async def test_ack_removes_from_pending_and_unacked_stay(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G)
    await transport.publish_many(stream, [tick(i) for i in range(10)])
    got = await transport.read(G, "c", [stream], count=10, block_ms=100)
    assert len(got) == 10
    assert await transport.pending_count(stream, G) == 10
    await transport.ack(stream, G, [d.entry_id for d in got[:4]])
    assert await transport.pending_count(stream, G) == 6
    assert await transport.read(G, "c", [stream], count=10, block_ms=10) == []


async def test_ack_many_acks_several_streams_at_once(transport: Transport, stream: str, redis_url: str) -> None:
    other, third = f"{stream}:b", f"{stream}:c"
    try:
        await _ack_many(transport, stream, other, third)
    finally:
        client = redis.asyncio.Redis.from_url(redis_url)
        await client.delete(other, third)
        await client.aclose()


async def _ack_many(transport: Transport, stream: str, other: str, third: str) -> None:
    for s in (stream, other, third):
        await transport.ensure_group(s, G)
        await transport.publish_many(s, [tick(i) for i in range(5)])
    got = await transport.read(G, "c", [stream, other, third], count=100, block_ms=100)
    assert len(got) == 15
    by_stream: dict[str, list[str]] = {}
    for d in got:
        by_stream.setdefault(d.stream, []).append(d.entry_id)
    # all of the first two streams, two of the third, and an empty list that must be harmless
    await transport.ack_many(G, {stream: by_stream[stream], other: by_stream[other], third: by_stream[third][:2]})
    await transport.ack_many(G, {stream: []})
    assert await transport.pending_count(stream, G) == 0
    assert await transport.pending_count(other, G) == 0
    assert await transport.pending_count(third, G) == 3
    await transport.ack_many(G, {third: by_stream[third][2:]})
    assert await transport.pending_count(third, G) == 0


async def test_redelivery_to_the_same_member_after_it_died(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G)
    await transport.publish_many(stream, [tick(i) for i in range(5)])
    first = await transport.read(G, "worker-1", [stream], count=10, block_ms=100)
    assert len(first) == 5
    # worker-1 dies without acking; when it comes back it gets its own pending entries first
    again = await transport.read_pending(G, "worker-1", [stream], count=10)
    assert [d.entry_id for d in again] == [d.entry_id for d in first]
    assert [d.message for d in again] == [d.message for d in first]
    assert all(d.deliveries == 2 for d in again)
    await transport.ack(stream, G, [d.entry_id for d in again])
    assert await transport.read_pending(G, "worker-1", [stream], count=10) == []


async def test_another_member_reclaims_after_idle_time(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G)
    await transport.publish_many(stream, [tick(i) for i in range(6)])
    dead = await transport.read(G, "dead", [stream], count=10, block_ms=100)
    assert len(dead) == 6
    assert await transport.claim_stale(G, "alive", stream, min_idle_ms=10_000, count=10) == []
    await asyncio.sleep(0.12)
    claimed = await transport.claim_stale(G, "alive", stream, min_idle_ms=100, count=10)
    assert sorted(d.entry_id for d in claimed) == sorted(d.entry_id for d in dead)
    assert all(d.deliveries == 2 and isinstance(d.message, Tick) for d in claimed)
    assert await transport.read_pending(G, "dead", [stream], count=10) == []
    await transport.ack(stream, G, [d.entry_id for d in claimed])
    assert await transport.pending_count(stream, G) == 0


async def test_failing_message_is_retried_then_dead_lettered(transport: Transport, stream: str) -> None:
    handled: list[int] = []
    attempts: dict[int, int] = {}

    async def handler(message: Message) -> None:
        assert isinstance(message, Tick)
        attempts[message.ts_ns] = attempts.get(message.ts_ns, 0) + 1
        if message.ts_ns == 3:
            raise RuntimeError("poison message")
        handled.append(message.ts_ns)

    consumer = Consumer(transport, group=G, name="c", streams=[stream], handler=each(handler), config=FAST)
    consumer.start()
    await consumer.wait_started()
    await transport.publish_many(stream, [tick(i) for i in range(6)])
    await _until(lambda: consumer.counters.dead_lettered == 1, 10)
    await consumer.close()
    assert sorted(handled) == [0, 1, 2, 4, 5]
    assert attempts[3] == FAST.max_deliveries
    dead = await transport.dead_letters(stream)
    assert len(dead) == 1
    assert "RuntimeError: poison message" in dead[0].error
    assert dead[0].deliveries == FAST.max_deliveries
    assert dead[0].payload  # the message itself is kept for inspection and replay
    assert await transport.pending_count(stream, G) == 0
    assert await transport.length(dead_letter_stream(stream)) == 1


async def test_undecodable_message_is_dead_lettered_and_consumer_survives(transport: Transport, stream: str) -> None:
    seen: list[int] = []

    async def handler(message: Message) -> None:
        assert isinstance(message, Tick)
        seen.append(message.ts_ns)

    consumer = Consumer(transport, group=G, name="c", streams=[stream], handler=each(handler), config=FAST)
    consumer.start()
    await consumer.wait_started()
    await transport.publish(stream, tick(1))
    await transport.publish_raw(stream, b"\xc1 not msgpack at all")
    await transport.publish_raw(stream, b"\x81\xa4type\xa7Unknown")
    await transport.publish(stream, tick(2))
    await _until(lambda: seen == [1, 2] and consumer.counters.dead_lettered == 2, 10)
    await consumer.close()
    dead = await transport.dead_letters(stream)
    assert [d.payload for d in dead] == [b"\xc1 not msgpack at all", b"\x81\xa4type\xa7Unknown"]
    assert all(d.error.startswith("undecodable message") for d in dead)
    assert transport.stats.get(stream, "decode_errors") >= 2
    assert await transport.pending_count(stream, G) == 0


async def test_consumer_restart_handles_its_own_pending_first(
    transport_factory: Callable[[], Transport], stream: str
) -> None:
    transport = transport_factory()
    await transport.ensure_group(stream, G)
    await transport.publish_many(stream, [tick(i) for i in range(4)])
    crashed = await transport.read(G, "engine-1", [stream], count=2, block_ms=100)  # read, then "crash"
    assert [d.message.ts_ns for d in crashed if isinstance(d.message, Tick)] == [0, 1]

    order: list[tuple[int, int]] = []

    async def handler(batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        order.extend((d.message.ts_ns, d.deliveries) for d in batch if isinstance(d.message, Tick))
        return None

    restarted = transport_factory()  # a new process: a new connection, the same member name
    consumer = Consumer(restarted, group=G, name="engine-1", streams=[stream], handler=handler, config=FAST)
    consumer.start()
    await _until(lambda: len(order) == 4, 10)
    await consumer.close()
    assert order == [(0, 2), (1, 2), (2, 1), (3, 1)]
    assert await restarted.pending_count(stream, G) == 0


async def test_group_members_share_work_without_duplicates(transport: Transport, stream: str) -> None:
    handled: dict[str, list[int]] = {}

    def handler_for(name: str) -> Callable[[Sequence[Delivery]], object]:
        async def handle(batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
            handled.setdefault(name, []).extend(d.message.ts_ns for d in batch if isinstance(d.message, Tick))
            await asyncio.sleep(0.001)
            return None

        return handle

    members = [
        Consumer(transport, group=G, name=f"m{i}", streams=[stream], handler=handler_for(f"m{i}"), config=FAST)  # type: ignore[arg-type]
        for i in range(3)
    ]
    for m in members:
        m.start()
    for m in members:
        await m.wait_started()
    for start in range(0, 900, 100):
        await transport.publish_many(stream, [tick(i) for i in range(start, start + 100)])
    await _until(lambda: sum(len(v) for v in handled.values()) >= 900, 10)
    await asyncio.sleep(0.2)
    for m in members:
        await m.close()
    everything = [x for v in handled.values() for x in v]
    assert sorted(everything) == list(range(900))
    assert await transport.pending_count(stream, G) == 0


async def test_trim_keeps_unacknowledged_entries(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G)
    await transport.ensure_group(stream, "slow")
    await transport.publish_many(stream, [tick(i) for i in range(300)])
    await drain(transport, stream)  # group G has everything acked
    slow = await transport.read("slow", "s", [stream], count=50, block_ms=100)  # "slow" read 50, acked none
    result = await transport.trim(stream, maxlen=10)
    assert result.removed == 0  # the slow group's first pending entry is the very first entry
    assert result.kept_unacknowledged == 290
    await transport.ack(stream, "slow", [d.entry_id for d in slow])
    result = await transport.trim(stream, maxlen=10)
    assert result.removed <= 50  # entries the slow group has not read yet are still needed
    rest = await transport.read("slow", "s", [stream], count=500, block_ms=100)
    assert [d.message.ts_ns for d in rest if isinstance(d.message, Tick)] == list(range(50, 300))
    assert all(d.error is None for d in rest)


async def test_trim_respects_maxlen_when_everything_is_acked(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G)
    for start in range(0, 2000, 500):
        await transport.publish_many(stream, [tick(i) for i in range(start, start + 500)])
    await drain(transport, stream)
    result = await transport.trim(stream, maxlen=100)
    assert result.kept_unacknowledged == 0
    length = await transport.length(stream)
    assert 100 <= length < 2000  # approximate: never below maxlen, and most of the excess is gone
    assert result.removed == 2000 - length


async def test_reading_a_missing_group_raises(transport: Transport, stream: str) -> None:
    with pytest.raises(GroupMissing):
        await transport.read("nope", "c", [stream], count=1, block_ms=10)


async def test_ensure_group_is_idempotent_and_start_dollar_skips_history(transport: Transport, stream: str) -> None:
    await transport.publish(stream, tick(1))
    await transport.ensure_group(stream, "late", start="$")
    await transport.ensure_group(stream, "late", start="$")
    await transport.publish(stream, tick(2))
    got = await transport.read("late", "c", [stream], count=10, block_ms=100)
    assert [d.message.ts_ns for d in got if isinstance(d.message, Tick)] == [2]


async def test_blocking_read_wakes_on_publish(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G)
    reader = asyncio.ensure_future(transport.read(G, "c", [stream], count=10, block_ms=2000))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await transport.publish(stream, tick(7))
    got = await asyncio.wait_for(reader, 3)
    assert [d.message for d in got] == [tick(7)]
    assert time.monotonic() - started < 1.0  # woken by the publish, not by the 2 s block timeout


async def test_stop_interrupts_a_blocking_read(transport: Transport, stream: str) -> None:
    async def handler(batch: Sequence[Delivery]) -> None:
        return None

    slow = FAST.__class__(block_ms=1500)
    consumer = Consumer(transport, group=G, name="c", streams=[stream], handler=handler, config=slow)  # type: ignore[arg-type]
    consumer.start()
    await consumer.wait_started()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await consumer.close()
    assert time.monotonic() - started < 1.0


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_tail_follows_a_stream_from_now_without_a_group(transport: Transport, stream: str) -> None:
    await transport.publish(stream, tick(0))  # history: not seen by a tail from "$"
    got, after = await transport.tail(stream, "$", count=10, block_ms=50)
    assert got == []
    await transport.publish_many(stream, [tick(1), tick(2), tick(3)])
    got, after = await transport.tail(stream, after, count=2, block_ms=50)
    assert [d.message.ts_ns for d in got if isinstance(d.message, Tick)] == [1, 2]
    got, after = await transport.tail(stream, after, count=10, block_ms=50)
    assert [d.message.ts_ns for d in got if isinstance(d.message, Tick)] == [3]

    async def later() -> None:
        await asyncio.sleep(0.05)
        await transport.publish(stream, tick(4))

    task = asyncio.ensure_future(later())
    got, after = await transport.tail(stream, after, count=10, block_ms=2_000)
    await task
    assert [d.message.ts_ns for d in got if isinstance(d.message, Tick)] == [4]
    everything, _ = await transport.tail(stream, "0-0", count=100, block_ms=0)
    assert len(everything) == 5


async def test_tail_of_a_stream_that_does_not_exist_yet(transport: Transport, stream: str) -> None:
    got, after = await transport.tail(stream, "$", count=10, block_ms=10)
    assert got == []
    await transport.publish(stream, tick(9))
    got, _ = await transport.tail(stream, after, count=10, block_ms=50)
    assert [d.message for d in got] == [tick(9)]


async def test_batch_window_gathers_what_arrives_after_a_short_read(transport: Transport, stream: str) -> None:
    batches: list[int] = []

    async def handle(batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        batches.append(len(batch))
        return None

    consumer = Consumer(
        transport, group=G, name="c", streams=[stream], handler=handle, config=FAST, batch_window_ms=300
    )
    consumer.start()
    await consumer.wait_started()
    await transport.publish(stream, tick(1))
    await asyncio.sleep(0.05)  # the read has returned with one entry; the window is open
    await transport.publish_many(stream, [tick(2), tick(3)])
    await _until(lambda: sum(batches) == 3, 10)
    await consumer.close()
    assert batches == [3]


async def test_read_acks_what_it_is_given_before_reading(transport: Transport, stream: str) -> None:
    await transport.ensure_group(stream, G, "0")
    await transport.publish_many(stream, [tick(1), tick(2)])
    first = await transport.read(G, "c", [stream], count=10, block_ms=0)
    assert await transport.pending_count(stream, G) == 2
    # a consumer handling one batch at a time acks it with its next read: one round trip for both
    second = await transport.read(G, "c", [stream], count=10, block_ms=50, ack={stream: [first[0].entry_id]})
    assert second == []
    assert await transport.pending_count(stream, G) == 1
    await transport.publish(stream, tick(3))
    third = await transport.read(G, "c", [stream], count=10, block_ms=50, ack={stream: [first[1].entry_id]})
    assert [d.message for d in third] == [tick(3)]
    assert await transport.pending_count(stream, G) == 1


async def test_a_consumer_acks_its_last_batch_without_waiting_for_more(transport: Transport, stream: str) -> None:
    seen: list[int] = []

    async def handle(batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        seen.extend(d.message.ts_ns for d in batch if isinstance(d.message, Tick))
        return None

    consumer = Consumer(transport, group=G, name="c", streams=[stream], handler=handle, config=FAST)
    consumer.start()
    await consumer.wait_started()
    await transport.publish_many(stream, [tick(1), tick(2)])
    await _until(lambda: len(seen) == 2, 10)
    # nothing else arrives: the ack rode on the read that is now blocked waiting, so nothing stays pending
    pending = -1
    deadline = time.monotonic() + 5
    while pending != 0 and time.monotonic() < deadline:
        pending = await transport.pending_count(stream, G)
        await asyncio.sleep(0.01)
    assert pending == 0
    await transport.publish(stream, tick(3))
    await _until(lambda: len(seen) == 3, 10)
    await consumer.close()  # the last batch is acked on the way out
    assert await transport.pending_count(stream, G) == 0
    assert seen == [1, 2, 3]


async def test_the_concurrency_limit_can_change_between_batches(transport: Transport, stream: str) -> None:
    """``max_in_flight`` may be a callable asked at every batch (the engine admits more batches at once while an
    account is contended): above 1, batches are handled side by side; at 1, one after the other again."""
    limit = [3]
    running = 0
    peak = 0
    release = asyncio.Event()
    handled: list[int] = []

    async def handle(batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        handled.extend(d.message.ts_ns for d in batch if isinstance(d.message, Tick))
        running -= 1
        return None

    one_at_a_time = FAST.__class__(**{**{f: getattr(FAST, f) for f in FAST.__struct_fields__}, "read_count": 1})
    consumer = Consumer(
        transport,
        group=G,
        name="c",
        streams=[stream],
        handler=handle,
        config=one_at_a_time,
        max_in_flight=lambda: limit[0],
    )
    consumer.start()
    await consumer.wait_started()
    await transport.publish_many(stream, [tick(1), tick(2), tick(3)])
    await _until(lambda: running == 3, 10)  # three batches of one, side by side
    limit[0] = 1
    release.set()
    await _until(lambda: len(handled) == 3, 10)
    release.clear()
    peak = 0
    await transport.publish_many(stream, [tick(4), tick(5)])
    await _until(lambda: running == 1, 10)
    await asyncio.sleep(0.2)
    assert running == 1  # the next batch waits for this one
    release.set()
    await _until(lambda: len(handled) == 5, 10)
    await consumer.close()
    assert peak == 1
    assert await transport.pending_count(stream, G) == 0
