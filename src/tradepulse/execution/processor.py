"""The report processor: the one place where the engine's orders change state after admission.

Everything that can move an order lands here, in one ordered queue: the venue's execution reports, the
outcome of broker calls that timed out, and the answers of queries by client order id (reconciliation at start,
resolution of UNKNOWN orders). One task takes what is waiting, applies it (:mod:`.tracking`), updates the risk
view, queues the events for publishing and the changes for booking. Because it is the only writer, the order
states in memory, on the bus and in the ledger never disagree about the order of events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from tradepulse.domain import Fill, OrderEvent, OrderFilled, OrderPartiallyFilled, RejectReason, ReportItem
from tradepulse.execution.booker import Booker
from tradepulse.execution.brokers.protocol import Broker, BrokerOrderState, VenueReport
from tradepulse.execution.publisher import ReportPublisher
from tradepulse.execution.tracking import (
    Applied,
    RecentOrders,
    Tracked,
    apply_report,
    apply_state,
    mark_lost,
    mark_unknown,
    mark_venue_lost,
)
from tradepulse.portfolio.ledger import BookItem
from tradepulse.risk.book import AccountRisk

log = logging.getLogger(__name__)

#: most inputs applied in one turn of the event loop (a slice takes a few milliseconds)
_CHUNK = 512


@dataclass(frozen=True, slots=True)
class Internal:
    """An input that is not a venue report: what the engine itself learned about an order."""

    kind: str  # "unknown" | "lost" | "venue_lost" | "state"
    client_order_id: str
    message: str = ""
    state: BrokerOrderState | None = None
    reason: RejectReason = RejectReason.LOST_AT_BROKER


@dataclass(slots=True)
class ProcessorCounters:
    reports: int = 0
    events: int = 0
    fills: int = 0
    orphan_reports: int = 0
    batches: int = 0


class ReportProcessor:
    """Apply venue reports and internal inputs to the tracked orders; publish and book the results."""

    def __init__(
        self,
        *,
        broker: Broker,
        orders: dict[str, Tracked],
        recent: RecentOrders,
        accounts: Callable[[], dict[str, AccountRisk]],
        publisher: ReportPublisher,
        booker: Booker,
        attention: set[str],
        on_terminal: Callable[[ReportItem], None] | None = None,
    ) -> None:
        self.broker = broker
        self.orders = orders
        self.recent = recent
        self.accounts = accounts
        self.publisher = publisher
        self.booker = booker
        self.attention = attention
        self.on_terminal = on_terminal
        self.counters = ProcessorCounters()
        self._inputs: list[VenueReport | Internal] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        #: the broker's synchronous drain of reports it has ready, where it has one (the in-process venues)
        self._take: Callable[[], list[VenueReport]] | None = getattr(broker, "take_reports", None)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._pump(), name="broker-reports"),
            loop.create_task(self._run(), name="report-processor"),
        ]

    def put(self, inputs: Sequence[VenueReport | Internal]) -> None:
        if inputs:
            self._inputs.extend(inputs)
            self._idle.clear()
            self._wake.set()

    async def _pump(self) -> None:
        async for batch in self.broker.reports():
            if self._inputs or len(batch) > _CHUNK:
                self.put(list(batch))  # behind what waits already, or a backlog: in order, in slices, by _run
                continue
            try:  # nothing waiting: applied here at once (no hand-over to _run, a loop turn less per report)
                self.process(list(batch))
            except Exception:
                log.exception("report processor failed on a batch of %d inputs", len(batch))

    def apply_ready(self) -> None:
        """Apply now what the broker reported during the call just made (an in-process venue answers within the
        call), when nothing waits ahead of it: the reports go out before the engine turns to its next read,
        instead of after it and a hand-over to the pump."""
        if self._take is None or self._inputs:
            return
        batch = self._take()
        if not batch:
            return
        try:
            self.process(batch)
        except Exception:
            log.exception("report processor failed on a batch of %d inputs", len(batch))

    async def _run(self) -> None:
        while True:
            if not self._inputs:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            inputs, self._inputs = self._inputs[:_CHUNK], self._inputs[_CHUNK:]
            try:
                self.process(inputs)
            except Exception:
                log.exception("report processor failed on a batch of %d inputs", len(inputs))
            if self._inputs:
                await asyncio.sleep(0)  # a long backlog in slices: other tasks run in between

    def process(self, inputs: Sequence[VenueReport | Internal]) -> None:
        """Apply ``inputs`` in order; queue the events for publishing and the changes for booking."""
        items: list[ReportItem] = []
        book: dict[str, BookItem] = {}
        now = time.time_ns()
        accounts = self.accounts()
        for entry in inputs:
            coid = entry.client_order_id
            t = self.orders.get(coid)
            if t is None:
                self.counters.orphan_reports += 1
                continue
            if isinstance(entry, VenueReport):
                self.counters.reports += 1
                applied = apply_report(t, entry)
            elif entry.kind == "state":
                assert entry.state is not None
                applied = apply_state(t, entry.state, now)
            elif entry.kind == "unknown":
                applied = mark_unknown(t, entry.message, now)
            elif entry.kind == "lost":
                applied = mark_lost(t, entry.message, now, entry.reason)
            else:
                applied = mark_venue_lost(t, entry.message, now)
            if t.needs_query:
                self.attention.add(coid)
            if not applied.events:
                continue
            self._account(t, applied, accounts.get(t.order.account_id))
            for event in applied.events:
                stamps = event.stamps
                stamps.update(t.stamps)
                stamps["broker"] = now
                items.append(cast(ReportItem, event))
            item = book.get(coid)
            if item is None:
                book[coid] = BookItem(
                    order=t.order,
                    reserve_price=t.reserve_price,
                    fills=list(applied.fills),
                    release_quantity=applied.released,
                )
            else:
                item.order = t.order
                item.fills.extend(applied.fills)
                item.release_quantity += applied.released
            self.counters.events += len(applied.events)
            self.counters.fills += len(applied.fills)
            if t.order.is_terminal:
                del self.orders[coid]
                self.attention.discard(coid)
                self.recent.add(t.order)
                if self.on_terminal is not None:
                    self.on_terminal(cast(ReportItem, applied.events[-1]))
        self.counters.batches += 1
        self.publisher.put(items)
        self.booker.put(list(book.values()))

    @staticmethod
    def _account(t: Tracked, applied: Applied, account: AccountRisk | None) -> None:
        if account is None:
            return
        order = t.order
        for fill in applied.fills:
            account.fill(order.symbol, order.side, fill.quantity, fill.price, fill.fee, t.reserve_price)
        if applied.released:
            account.release(order.symbol, order.side, applied.released, t.reserve_price)

    async def drain(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.2)


def event_fill(event: OrderEvent) -> Fill | None:
    """Return the fill an event carries, if any."""
    return event.fill if isinstance(event, OrderFilled | OrderPartiallyFilled) else None


__all__ = ["Internal", "ProcessorCounters", "ReportProcessor", "event_fill"]
