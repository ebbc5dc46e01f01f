"""Publish execution reports on the ``reports`` stream, in order, retrying through bus outages.

Reports are queued and a single task publishes them, many events per stream entry (an
:class:`~tradepulse.domain.ExecutionReport`), so a burst costs few entries and the order of events is kept.
When the bus is unavailable the task keeps the queue and retries with back-off: nothing queued is dropped while
the process lives (what is lost with a crash is rebuilt: every event is in the ledger and at the venue).
"""

from __future__ import annotations

import asyncio
import logging
import time

from tradepulse.bus import BusUnavailable, Transport
from tradepulse.bus.streams import REPORTS
from tradepulse.domain import ExecutionReport, ReportItem

log = logging.getLogger(__name__)


class ReportPublisher:
    """Ordered, batched, retrying publisher of report items."""

    def __init__(self, bus: Transport, engine: str, *, max_items: int = 256, stream: str = REPORTS) -> None:
        self.bus = bus
        self.engine = engine
        self.stream = stream
        self.max_items = max_items
        self._queue: list[ReportItem] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.published = 0
        self.outages = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"reports-publisher:{self.engine}")

    def put(self, items: list[ReportItem]) -> None:
        """Queue ``items`` (already stamped) for publishing; returns at once."""
        if items:
            self._queue.extend(items)
            self._idle.clear()
            self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        delay = 0.02
        while True:
            if not self._queue:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            items, self._queue = self._queue, []
            now = time.time_ns()
            entries = []
            for start in range(0, len(items), self.max_items):
                chunk = items[start : start + self.max_items]
                for item in chunk:
                    item.stamps["report"] = now
                entries.append(ExecutionReport(engine=self.engine, items=chunk))
            try:
                await self.bus.publish_many(self.stream, entries)
            except BusUnavailable as exc:
                self.outages += 1
                log.warning("reports: bus unavailable (%s); %d events kept, retrying", exc, len(items))
                self._queue[:0] = items
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.02
            self.published += len(items)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is published (or ``timeout``); return whether it was."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.error("reports: %d events still unpublished at shutdown", len(self._queue))
                while not self._task.done():
                    self._task.cancel()
                    await asyncio.wait({self._task}, timeout=0.2)
