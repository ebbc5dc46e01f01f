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
    """Ordered, batched, retrying publisher of report items.

    When the publisher is idle, :meth:`put` writes the items itself (they are on the wire before its caller's next
    await: an order's report goes out before the engine turns to its next read, with no hand-over to the
    publishing task); what is put while a publish is in flight queues behind it, and the task sends it next.
    """

    def __init__(self, bus: Transport, engine: str, *, max_items: int = 256, stream: str = REPORTS) -> None:
        self.bus = bus
        self.engine = engine
        self.stream = stream
        self.max_items = max_items
        self._queue: list[ReportItem] = []
        #: the publish on the wire: its items (to put back at the head if it fails) and its outcome
        self._sending: tuple[list[ReportItem], asyncio.Future[list[str]]] | None = None
        #: the task waits for work (not in a retry's back-off): a put may send at once
        self._parked = False
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
        """Queue ``items`` (already stamped) for publishing, and write them now if nothing is ahead of them."""
        if items:
            self._queue.extend(items)
            self._idle.clear()
            if self._parked and self._sending is None:
                self._send()
            self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._queue) + (len(self._sending[0]) if self._sending is not None else 0)

    def _send(self) -> None:
        """Put everything queued on the wire (in entries of up to ``max_items`` events)."""
        items, self._queue = self._queue, []
        now = time.time_ns()
        for item in items:
            item.stamps["report"] = now
        entries = [
            ExecutionReport(engine=self.engine, items=items[start : start + self.max_items])
            for start in range(0, len(items), self.max_items)
        ]
        self._sending = (items, self.bus.publish_many_nowait(self.stream, entries))

    async def _run(self) -> None:
        delay = 0.02
        while True:
            if self._sending is None:
                if not self._queue:
                    self._idle.set()
                    if self._closing:
                        return
                    self._wake.clear()
                    self._parked = True
                    try:
                        await self._wake.wait()
                    finally:
                        self._parked = False
                    continue
                self._send()
            assert self._sending is not None
            items, outcome = self._sending
            try:
                await outcome
            except BusUnavailable as exc:
                self._sending = None
                self.outages += 1
                log.warning("reports: bus unavailable (%s); %d events kept, retrying", exc, len(items))
                self._queue[:0] = items
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self._sending = None
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
                log.error("reports: %d events still unpublished at shutdown", self.backlog)
                while not self._task.done():
                    self._task.cancel()
                    await asyncio.wait({self._task}, timeout=0.2)
