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
never executes it twice: the engine answers with the order as it stands). To send many orders and handle each
result as it comes, ``await client.submit_batch(cmds)`` publishes them together and returns a future per order.
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
    """One wait for one order: the events seen, what ends it, and its timeout once the order is published. Its
    future's done callback (however it ends: a report, the timeout, a failed publish, a cancelled caller) takes
    it off the client's waiting list, so no task per order is needed."""

    __slots__ = ("client", "future", "result", "started", "timer", "until", "until_for")

    def __init__(
        self,
        client: OrderClient,
        coid: str,
        until: Wait,
        future: asyncio.Future[OrderResult],
        until_for: Callable[[Order], Wait] | None,
        started: int,
    ) -> None:
        self.client = client
        self.result = OrderResult(coid)
        self.until = until
        self.future = future
        self.until_for = until_for
        self.started = started
        self.timer: asyncio.TimerHandle | None = None
        future.add_done_callback(self._done)

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

    def expire(self, timeout: float) -> None:
        if not self.future.done():
            self.future.set_exception(
                OrderTimeout(
                    f"order {self.result.client_order_id}: no {'terminal ' if self.until == 'terminal' else ''}"
                    f"report within {timeout} s (last seen: {self.result.status})"
                )
            )

    def _done(self, future: asyncio.Future[OrderResult]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        client = self.client
        coid = self.result.client_order_id
        waiters = client._waiting.get(coid)
        if waiters is not None:
            waiters.remove(self)
            if not waiters:
                del client._waiting[coid]
        if client.record and not future.cancelled() and future.exception() is None:
            EXECUTION_LATENCY.observe((time.time_ns() - self.started) / 1e6)


#: by order stream, the waits and the commands to publish on it
_Groups = dict[str, tuple[list[_Waiter], list[SubmitOrder | CancelOrder]]]


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
        waiters, groups = self._register([(order_stream(cmd.symbol, self.partitions), cmd)], until, until_for)
        await self._publish_all(waiters, groups, timeout)
        return await waiters[0].future

    async def cancel(self, client_order_id: str, symbol: str, *, timeout: float = 5.0) -> OrderResult:
        """Ask to cancel an order and return once it is terminal (canceled, or already filled or closed)."""
        cmd = CancelOrder(client_order_id=client_order_id, symbol=symbol, ts_ns=time.time_ns())
        waiters, groups = self._register([(order_stream(symbol, self.partitions), cmd)], "terminal")
        await self._publish_all(waiters, groups, timeout)
        return await waiters[0].future

    async def submit_many(
        self, cmds: Sequence[SubmitOrder], *, timeout: float = 10.0, until: Wait = "terminal"
    ) -> list[OrderResult | BaseException]:
        """Submit many orders together (see :meth:`submit_batch`); return each one's result or exception, in
        order."""
        futures = await self.submit_batch(cmds, timeout=timeout, until=until)
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def submit_batch(
        self, cmds: Sequence[SubmitOrder], *, timeout: float = 5.0, until: Wait = "terminal"
    ) -> list[asyncio.Future[OrderResult]]:
        """Publish ``cmds`` and return once they are published: a future per command, in order, that ends as
        :meth:`submit` would (the result, :class:`OrderTimeout`, or the publish's error).

        For callers that send many orders and handle each result as it comes (the load generator): the commands
        of each order stream go out in one publish (one XADD pipeline on Redis), and each wait is a future with a
        done callback, not a task."""
        partitions = self.partitions
        waiters, groups = self._register([(order_stream(c.symbol, partitions), c) for c in cmds], until)
        await self._publish_all(waiters, groups, timeout)
        return [waiter.future for waiter in waiters]

    def _register(
        self,
        orders: Sequence[tuple[str, SubmitOrder | CancelOrder]],
        until: Wait,
        until_for: Callable[[Order], Wait] | None = None,
    ) -> tuple[list[_Waiter], _Groups]:
        """Start a wait for each (stream, command) of ``orders`` (before publishing: a report can come back before
        the publish is acknowledged); return the waits in order and, by stream, the waits and commands."""
        if self._task is None:
            raise RuntimeError("OrderClient.start() must be awaited before submitting")
        loop = asyncio.get_running_loop()
        started = time.time_ns()
        waiting = self._waiting
        waiters: list[_Waiter] = []
        groups: _Groups = {}
        for stream, cmd in orders:
            coid = cmd.client_order_id
            waiter = _Waiter(self, coid, until, loop.create_future(), until_for, started)
            waiting.setdefault(coid, []).append(waiter)
            waiters.append(waiter)
            cmd.stamps["submit"] = started
            group = groups.get(stream)
            if group is None:
                group = groups[stream] = ([], [])
            group[0].append(waiter)
            group[1].append(cmd)
        return waiters, groups

    async def _publish_all(
        self,
        waiters: list[_Waiter],
        groups: _Groups,
        timeout: float,
    ) -> None:
        """Publish each stream's commands (the streams concurrently: the transport pipelines them); a wait's
        timeout starts once its command is published, and a failed publish ends its commands' waits with its
        error."""
        loop = asyncio.get_running_loop()
        try:
            if len(groups) == 1:  # the common case: no task here
                ((stream, (group_waiters, cmds)),) = groups.items()
                await self._publish(loop, stream, group_waiters, cmds, timeout)
            else:
                await asyncio.gather(*(self._publish(loop, s, w, c, timeout) for s, (w, c) in groups.items()))
        except BaseException:  # cancelled while publishing: end the waits (their done callbacks clean up)
            for waiter in waiters:
                waiter.future.cancel()
            raise

    async def _publish(
        self,
        loop: asyncio.AbstractEventLoop,
        stream: str,
        waiters: list[_Waiter],
        cmds: list[SubmitOrder | CancelOrder],
        timeout: float,
    ) -> None:
        try:
            await self.bus.publish_many(stream, cmds)
        except Exception as exc:
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.future.done():  # its report may already be in
                waiter.timer = loop.call_later(timeout, waiter.expire, timeout)

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
