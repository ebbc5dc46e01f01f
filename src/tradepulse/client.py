"""The async order client: submit an order and await its report, by client order id.

This is what the API and the load tests use. One client process runs ONE reader of the ``reports`` stream (a
group-less tail, so clients never leave pending entries behind) and hands each event to the caller waiting for
that client order id, so thousands of concurrent waits cost one stream read per batch, not one each.

    client = OrderClient(bus, partitions=settings.bus.order_partitions)
    await client.start()
    result = await client.submit(SubmitOrder(client_order_id="o-1", symbol="AAPL", side=Side.BUY,
                                             quantity=Decimal(10)), timeout=5.0)
    result.status, result.fills

A timeout raises :class:`OrderTimeout`; the order may still complete (submitting the same client order id again
never executes it twice: the engine answers with the order as it stands).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tradepulse.bus import BusUnavailable, Transport
from tradepulse.bus.streams import REPORTS, order_stream
from tradepulse.domain import (
    CancelOrder,
    ExecutionReport,
    Fill,
    InvalidTransition,
    Order,
    OrderAccepted,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    ReportItem,
    SubmitOrder,
    is_terminal_item,
)
from tradepulse.observability.metrics import EXECUTION_LATENCY

log = logging.getLogger(__name__)

Wait = Literal["terminal", "accepted"]

_STATUS = {
    "OrderAccepted": OrderStatus.ACCEPTED,
    "OrderRejected": OrderStatus.REJECTED,
    "OrderPartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "OrderFilled": OrderStatus.FILLED,
    "OrderCanceled": OrderStatus.CANCELED,
    "OrderExpired": OrderStatus.EXPIRED,
    "OrderUnknown": OrderStatus.UNKNOWN,
}


class OrderTimeout(TimeoutError):
    """No report ended the wait in time. The order may still complete; query or resubmit the same id."""


@dataclass
class OrderResult:
    """The events seen for one order while waiting, ending with the one that ended the wait."""

    client_order_id: str
    events: list[ReportItem] = field(default_factory=list)

    @property
    def last(self) -> ReportItem | None:
        return self.events[-1] if self.events else None

    @property
    def status(self) -> OrderStatus:
        last = self.last
        if last is None:
            return OrderStatus.NEW
        if isinstance(last, Order):
            return last.status
        return _STATUS[type(last).__name__]

    @property
    def fills(self) -> list[Fill]:
        return [e.fill for e in self.events if isinstance(e, OrderFilled | OrderPartiallyFilled)]

    @property
    def terminal(self) -> bool:
        last = self.last
        return last is not None and is_terminal_item(last)


def fold_order(start: Order, events: Sequence[ReportItem]) -> Order:
    """Return ``start`` (e.g. ``Order.from_submit(cmd)``) after the report items ``events``: an Order item (the
    engine's answer to a repeated submit) replaces it; an event that does not apply (a report seen twice across a
    reconnect) is skipped."""
    order = start
    for item in events:
        if isinstance(item, Order):
            order = item
            continue
        try:
            order = order.apply(item)
        except InvalidTransition:
            continue
    return order


class _Waiter:
    __slots__ = ("future", "result", "until", "until_for")

    def __init__(
        self,
        coid: str,
        until: Wait,
        future: asyncio.Future[OrderResult],
        until_for: Callable[[Order], Wait] | None = None,
    ) -> None:
        self.result = OrderResult(coid)
        self.until = until
        self.future = future
        self.until_for = until_for

    def offer(self, item: ReportItem) -> None:
        self.result.events.append(item)
        if self.future.done():
            return
        if self.until_for is not None and isinstance(item, Order):  # a repeated id: wait as its order says
            self.until = self.until_for(item)
        if is_terminal_item(item) or (
            self.until == "accepted" and isinstance(item, OrderAccepted | Order | OrderPartiallyFilled)
        ):
            self.future.set_result(self.result)


class OrderClient:
    """Submit orders on ``orders:{p}`` and await their reports from ``reports``. See the module docstring."""

    def __init__(
        self, bus: Transport, *, partitions: int, reports: str = REPORTS, block_ms: int = 1_000, record: bool = True
    ) -> None:
        self.bus = bus
        self.partitions = partitions
        self.reports = reports
        self.block_ms = block_ms
        self.record = record
        #: waiters by client order id (a list: the same id may be submitted again while the first wait is on)
        self._waiting: dict[str, list[_Waiter]] = {}
        #: called with the account id of every order event on ``reports`` (any process's orders), e.g. to drop
        #: what a reader cached for that account; an event that names no account is passed as ""
        self.listeners: list[Callable[[str], None]] = []
        #: called with every report item on ``reports`` (any process's orders), e.g. to follow what the ledger is
        #: about to book
        self.item_listeners: list[Callable[[ReportItem], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._after = "$"
        self.received = 0

    async def start(self) -> None:
        """Start following ``reports`` from now on (call before submitting)."""
        if self._task is not None:
            return
        _, self._after = await self.bus.tail(self.reports, "$", count=1, block_ms=0)
        self._task = asyncio.get_running_loop().create_task(self._read(), name="order-client-reports")

    async def _read(self) -> None:
        delay = 0.05
        while True:
            try:
                deliveries, self._after = await self.bus.tail(
                    self.reports, self._after, count=1_000, block_ms=self.block_ms
                )
            except BusUnavailable as exc:
                log.warning("order client: reports unavailable (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            now = time.time_ns()
            waiting = self._waiting
            listeners = self.listeners
            item_listeners = self.item_listeners
            for delivery in deliveries:
                report = delivery.message
                if not isinstance(report, ExecutionReport):
                    continue
                for item in report.items:
                    if listeners:
                        account = getattr(item, "account_id", "")
                        for listener in listeners:
                            listener(account)
                    for item_listener in item_listeners:
                        item_listener(item)
                    waiters = waiting.get(item.client_order_id)
                    if waiters is None:
                        continue
                    item.stamps["receive"] = now
                    self.received += 1
                    for waiter in waiters:
                        waiter.offer(item)

    async def submit(
        self,
        cmd: SubmitOrder,
        *,
        timeout: float = 5.0,
        until: Wait = "terminal",
        until_for: Callable[[Order], Wait] | None = None,
    ) -> OrderResult:
        """Publish ``cmd`` and return once a report ends the wait (a terminal one by default). When the engine
        answers with an ``Order`` (the id was used before), ``until_for(order)``, if given, replaces ``until``."""
        stream = order_stream(cmd.symbol, self.partitions)
        return await self._send(cmd.client_order_id, stream, cmd, timeout, until, until_for)

    async def cancel(self, client_order_id: str, symbol: str, *, timeout: float = 5.0) -> OrderResult:
        """Ask to cancel an order and return once it is terminal (canceled, or already filled or closed)."""
        cmd = CancelOrder(client_order_id=client_order_id, symbol=symbol, ts_ns=time.time_ns())
        return await self._send(client_order_id, order_stream(symbol, self.partitions), cmd, timeout, "terminal")

    async def submit_many(
        self, cmds: Sequence[SubmitOrder], *, timeout: float = 10.0, until: Wait = "terminal"
    ) -> list[OrderResult | BaseException]:
        """Submit many orders concurrently; return each one's result or exception, in order."""
        return list(
            await asyncio.gather(*(self.submit(c, timeout=timeout, until=until) for c in cmds), return_exceptions=True)
        )

    async def _send(
        self,
        coid: str,
        stream: str,
        cmd: SubmitOrder | CancelOrder,
        timeout: float,
        until: Wait,
        until_for: Callable[[Order], Wait] | None = None,
    ) -> OrderResult:
        if self._task is None:
            raise RuntimeError("OrderClient.start() must be awaited before submitting")
        future: asyncio.Future[OrderResult] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(coid, until, future, until_for)
        self._waiting.setdefault(coid, []).append(waiter)
        started = time.time_ns()
        try:
            cmd.stamps["submit"] = started
            await self.bus.publish(stream, cmd)
            try:
                async with asyncio.timeout(timeout):  # not wait_for: no task per order
                    result = await future
            except TimeoutError:
                raise OrderTimeout(
                    f"order {coid}: no {'terminal ' if until == 'terminal' else ''}report within {timeout} s "
                    f"(last seen: {waiter.result.status})"
                ) from None
        finally:
            waiters = self._waiting.get(coid)
            if waiters is not None:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiting[coid]
        if self.record:
            EXECUTION_LATENCY.observe((time.time_ns() - started) / 1e6)
        return result

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def close(self) -> None:
        if self._task is not None:
            while not self._task.done():  # re-cancel: Python 3.11 can swallow one inside redis-py's wait_for
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.2)
            self._task = None
        for waiters in self._waiting.values():
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.cancel()


__all__ = ["OrderClient", "OrderResult", "OrderTimeout", "fold_order"]
