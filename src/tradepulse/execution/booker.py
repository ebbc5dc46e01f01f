"""Book order updates and fills in the ledger, one transaction per batch, retrying while the database is down.

The report processor hands over one :class:`~tradepulse.portfolio.ledger.BookItem` per order it changed; items
for the same order that are still waiting are merged (their fills appended, their releases added, the newest
state kept), so a backlog shrinks into few, large transactions. A fill already booked (a duplicate the engine's
memory did not catch) is dropped from the booking and the rest is booked: the ledger's unique fill id is the
last line of defence, never a reason to lose the other fills.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from tradepulse.portfolio.ledger import BookItem, Ledger
from tradepulse.storage.ledger_store import DuplicateFill, LedgerUnavailable

log = logging.getLogger(__name__)


class Booker:
    """Batches BookItems into ledger bookings (see the module docstring)."""

    def __init__(self, ledger: Ledger, *, max_items: int = 512, retry_s: float = 0.25, interval_s: float = 0.0) -> None:
        self.ledger = ledger
        #: most orders per booking: a booking's Python part holds the event loop (about 10 us an order)
        self.max_items = max_items
        #: wait this long after a booking before the next one, so that a trickle of fills books in few
        #: transactions (bookings are off the reporting path: clients already have the fills)
        self.interval_s = interval_s
        self.retry_s = retry_s
        self._pending: dict[str, BookItem] = {}
        self._in_flight: list[BookItem] = []
        self.lock = asyncio.Lock()  # held while a booking commits; a risk reload holds it to see a stable picture
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.available = True
        self.duplicates_dropped = 0
        self.failures = 0
        self.booked_items = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-booker")

    def put(self, items: list[BookItem]) -> None:
        for item in items:
            coid = item.order.client_order_id
            waiting = self._pending.get(coid)
            if waiting is None:
                self._pending[coid] = item
            else:
                waiting.order = item.order
                waiting.fills.extend(item.fills)
                waiting.release_quantity += item.release_quantity
        if items:
            self._idle.clear()
            self._wake.set()

    def unbooked(self) -> Iterator[BookItem]:
        """Yield every item not committed yet (in flight first, then waiting)."""
        yield from self._in_flight
        yield from self._pending.values()

    @property
    def backlog(self) -> int:
        return len(self._pending) + len(self._in_flight)

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            keys = list(self._pending)[: self.max_items]
            batch = [self._pending.pop(k) for k in keys]
            self._in_flight = batch
            try:
                async with self.lock:
                    await self._book(batch)
                self.available = True
                self.booked_items += len(batch)
                self._in_flight = []
                if self.interval_s and not self._closing:
                    await asyncio.sleep(self.interval_s)
            except LedgerUnavailable as exc:
                self.failures += 1
                if self.available:
                    log.warning("ledger unavailable while booking (%s); %d orders wait", exc, self.backlog)
                self.available = False
                self._requeue(batch)
                await asyncio.sleep(self.retry_s)
            except Exception:
                log.exception("booking of %d orders failed; retrying", len(batch))
                self.failures += 1
                self._requeue(batch)
                await asyncio.sleep(self.retry_s)

    def _requeue(self, batch: list[BookItem]) -> None:
        self._in_flight = []
        newer, self._pending = self._pending, {}
        for item in batch:
            self._pending[item.order.client_order_id] = item
        self.put(list(newer.values()))

    async def _book(self, batch: list[BookItem]) -> None:
        try:
            await self.ledger.book(batch, time.time_ns())
        except DuplicateFill as dup:
            booked = await self.ledger.store.existing_fill_ids(dup.fill_ids)
            if not booked:
                raise
            self.duplicates_dropped += len(booked)
            log.warning("dropping %d fills already in the ledger and booking the rest", len(booked))
            for item in batch:
                item.fills = [f for f in item.fills if f.fill_id not in booked]
            await self.ledger.book(batch, time.time_ns())

    async def drain(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 10.0) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.error("ledger: %d orders still unbooked at shutdown (the venue journal has them)", self.backlog)
                while not self._task.done():
                    self._task.cancel()
                    await asyncio.wait({self._task}, timeout=0.2)
