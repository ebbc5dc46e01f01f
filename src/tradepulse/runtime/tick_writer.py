"""The tick writer: consume the ``ticks`` stream into the tick store, a batch per transaction.

Each batch the consumer reads (up to ``bus.read_count`` entries) is written in one transaction together with
the stream position it reached (a :class:`~tradepulse.storage.ticks.Checkpoint`). Delivery is at-least-once,
so after a crash between the commit and the acknowledgement the same entries come again; the writer skips
every entry at or before the saved position, so each tick is stored exactly once. That holds for one writer
member per group (the default); several members of one group would each need their own position.

A failed write fails the batch: the consumer retries it, and dead-letters it after ``bus.max_deliveries``.
A new group starts at the beginning of the stream, so what the stream still retains (``bus.maxlen``) is stored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from tradepulse.bus import Consumer, Delivery
from tradepulse.bus.streams import TICKS
from tradepulse.config import TickStoreConfig
from tradepulse.domain import Tick, TickBatch
from tradepulse.observability.latency import LatencyHistogram
from tradepulse.observability.metrics import TICK_STORE_WRITE_LATENCY, TICKS_STORED
from tradepulse.runtime.component import RuntimeContext
from tradepulse.storage.ticks import Checkpoint, TickStore, entry_key, open_tick_store


class TickWriter:
    """Write every tick on the bus to the store; shows ticks/s stored and the write latency on the panel."""

    name = "tick-store"

    def __init__(self, config: TickStoreConfig, store: TickStore | None = None, *, stream: str = TICKS) -> None:
        self.config = config
        self.store = store
        self.stream = stream
        self._own_store = store is None
        self.stored = 0
        self.skipped = 0
        self.write_latency = LatencyHistogram()
        self._consumer: Consumer | None = None
        self._position: tuple[int, int] | None = None
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0
        self._where = ""

    async def start(self, ctx: RuntimeContext) -> None:
        db = ctx.settings.database
        if self.store is None:
            self.store = await open_tick_store(db, synchronous_commit=self.config.synchronous_commit)
        self._where = db.sqlite_path if self.store.backend == "sqlite" else "postgres"
        saved = await self.store.checkpoint(self.stream, self.config.group)
        self._position = None if saved is None else entry_key(saved)
        self._consumer = Consumer(
            ctx.bus,
            group=self.config.group,
            name="writer",
            streams=[self.stream],
            handler=self._handle,
            config=ctx.settings.bus,
            group_start="0",
        )
        ctx.tasks.append(self._consumer.start())
        await self._consumer.wait_started()

    async def _handle(self, batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        assert self.store is not None
        fresh = [d for d in batch if self._position is None or entry_key(d.entry_id) > self._position]
        self.skipped += len(batch) - len(fresh)
        ticks = [d.message for d in fresh if isinstance(d.message, Tick)]
        if not fresh:
            return None
        last = max(fresh, key=lambda d: entry_key(d.entry_id))
        started = time.perf_counter_ns()
        written = await self.store.write(
            TickBatch.from_ticks(ticks), checkpoint=Checkpoint(self.stream, self.config.group, last.entry_id)
        )
        elapsed = time.perf_counter_ns() - started
        self.write_latency.record_ns(elapsed)
        TICK_STORE_WRITE_LATENCY.observe(elapsed / 1e6)
        TICKS_STORED.inc(written)
        self.stored += written
        self._position = entry_key(last.entry_id)
        return None

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.close()
        if self.store is not None and self._own_store:
            await self.store.close()

    def panel_rows(self) -> list[tuple[str, str]]:
        now = time.monotonic()
        then, count = self._rate_mark
        if now - then >= 0.5:
            self._rate = (self.stored - count) / (now - then)
            self._rate_mark = (now, self.stored)
        p = self.write_latency.percentiles_ms((50, 99))
        return [
            ("ticks stored", f"{self.stored:,}"),
            ("ticks/s stored", f"{self._rate:,.0f}"),
            ("write batch ms p50/p99", f"{p['p50']:.2f} / {p['p99']:.2f}"),
            ("store", self._where),
        ]
