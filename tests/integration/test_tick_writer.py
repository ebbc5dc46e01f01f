"""The tick writer stores every tick on the bus exactly once, on both stores and both transports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.integration.bus_fixtures import FAST
from tradepulse.bus import BusStats, Transport
from tradepulse.clock import ManualClock
from tradepulse.config import Settings, TickStoreConfig
from tradepulse.domain import Tick, TickBatch
from tradepulse.runtime.component import RuntimeContext
from tradepulse.runtime.tick_writer import TickWriter
from tradepulse.storage.ticks import Checkpoint, TickStore

T0 = 1_704_187_800_000_000_000


def ticks(n: int, start: int = 0) -> list[Tick]:
    return [
        Tick(symbol=("A", "B")[i % 2], ts_ns=T0 + i * 1_000_000, price=10.0 + i % 7, size=1.0, bid=9.0, ask=20.0)
        for i in range(start, start + n)
    ]


def context(bus: Transport) -> RuntimeContext:
    return RuntimeContext(settings=Settings(bus=FAST), bus=bus, clock=ManualClock(), stats=BusStats())


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling state another task changes, no event to wait on
            await asyncio.sleep(0.01)


async def test_every_published_tick_is_stored(tick_store: TickStore, transport: Transport, stream: str) -> None:
    ctx = context(transport)
    writer = TickWriter(TickStoreConfig(), tick_store, stream=stream)
    await writer.start(ctx)
    try:
        await transport.publish_many(stream, ticks(500))
        await until(lambda: writer.stored == 500)
    finally:
        await writer.stop()
        await ctx.cancel_tasks()
    assert await tick_store.count() == 500
    assert await tick_store.checkpoint(stream, "tick-store") is not None
    rows = dict(writer.panel_rows())
    assert rows["ticks stored"] == "500"


class CommitThenFail:
    """A store whose first write commits and then fails, like a process dying before it acknowledges."""

    def __init__(self, store: TickStore) -> None:
        self.store = store
        self.backend = store.backend
        self.failed = False

    async def write(self, batch: TickBatch, *, checkpoint: Checkpoint | None = None, **kw: object) -> int:
        n = await self.store.write(batch, checkpoint=checkpoint)
        if not self.failed:
            self.failed = True
            raise ConnectionError("lost the connection after the commit")
        return n

    async def checkpoint(self, stream: str, group: str) -> str | None:
        return await self.store.checkpoint(stream, group)

    async def close(self) -> None:
        pass


async def test_a_redelivered_batch_is_not_stored_twice(
    tick_store: TickStore, transport: Transport, stream: str
) -> None:
    ctx = context(transport)
    flaky = CommitThenFail(tick_store)
    writer = TickWriter(TickStoreConfig(), flaky, stream=stream)  # type: ignore[arg-type]
    await writer.start(ctx)
    try:
        await transport.publish_many(stream, ticks(100))
        await until(lambda: flaky.failed and writer.skipped > 0)  # the failed batch came back after claim_idle_ms
        await transport.publish_many(stream, ticks(50, start=100))
        await until(lambda: writer.stored >= 50 and writer.skipped + writer.stored >= 150)
    finally:
        await writer.stop()
        await ctx.cancel_tasks()
    assert await tick_store.count() == 150
    assert await transport.pending_count(stream, "tick-store") == 0


@pytest.mark.parametrize("restarts", [2])
async def test_a_restarted_writer_resumes_where_it_stopped(
    tick_store: TickStore, transport: Transport, stream: str, restarts: int
) -> None:
    for round_ in range(restarts):
        ctx = context(transport)
        writer = TickWriter(TickStoreConfig(), tick_store, stream=stream)
        await writer.start(ctx)
        try:
            await transport.publish_many(stream, ticks(100, start=round_ * 100))
            await until(lambda w=writer: w.stored == 100)
        finally:
            await writer.stop()
            await ctx.cancel_tasks()
    assert await tick_store.count() == 100 * restarts
