"""Recovery: reconcile with the venue at start, and resolve what stays uncertain while running.

At start (:func:`reconcile`), every order the ledger says is open at this engine's venue is loaded with the fills
already booked for it, and the venue is asked about it by client order id:

* the venue has it: its full state (acknowledgement, every fill, a close) is applied, so fills it made while the
  engine was down are booked now, exactly once;
* the venue never had it (the engine died between the ledger write and the broker call): it is rejected
  (LOST_AT_BROKER) once the grace period since it was written is over. It is never resent;
* the venue had acknowledged it but no longer knows it (its state was lost): it is closed as canceled.

Orders open at the venue that the ledger does not know cannot exist (the ledger row is written first); if one
does, it is canceled at the venue and counted, never adopted.

While running, :class:`Resolver` asks the venue about orders that need it (UNKNOWN after a timeout, a close
waiting for late fills, a duplicate submit) and re-sends cancels that got no answer, every
``execution.resolve_interval_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from tradepulse.config import ExecutionConfig
from tradepulse.domain import OrderStatus
from tradepulse.execution.brokers.protocol import Broker, BrokerError
from tradepulse.execution.processor import Internal, ReportProcessor
from tradepulse.execution.state import EngineState
from tradepulse.execution.tracking import Tracked
from tradepulse.storage.ledger_store import LedgerStore

log = logging.getLogger(__name__)

_CANCEL_RESEND_NS = 1_000_000_000


async def load_open_orders(state: EngineState, store: LedgerStore) -> list[Tracked]:
    """Load the orders the ledger holds open at this engine's venue, with their booked fill ids."""
    records = await store.open_orders(state.venue)
    fills = await store.fills(client_order_ids=[r.order.client_order_id for r in records]) if records else []
    by_order: dict[str, set[str]] = {}
    for f in fills:
        by_order.setdefault(f.client_order_id, set()).add(f.fill_id)
    loaded: list[Tracked] = []
    for r in records:
        coid = r.order.client_order_id
        t = Tracked(
            order=r.order,
            reserve_price=r.reserve_price,
            fill_ids=by_order.get(coid, set()),
            sent_ns=r.order.created_ns,
        )
        state.orders[coid] = t
        loaded.append(t)
    return loaded


async def reconcile(
    state: EngineState, store: LedgerStore, broker: Broker, processor: ReportProcessor, config: ExecutionConfig
) -> None:
    """Reconcile the ledger's open orders with the venue (see the module docstring)."""
    loaded = await load_open_orders(state, store)
    timeout = config.broker_timeout_ms / 1000.0
    inputs: list[Internal] = []
    for t in loaded:
        try:
            venue_state = await asyncio.wait_for(broker.query(t.client_order_id), timeout)
        except (BrokerError, TimeoutError):
            t.needs_query = True
            state.attention.add(t.client_order_id)
            continue
        state.counters.reconciled += 1
        if venue_state is not None:
            inputs.append(Internal("state", t.client_order_id, state=venue_state))
        elif t.order.status in (OrderStatus.NEW, OrderStatus.UNKNOWN):
            t.needs_query = True  # the resolver rejects it once the grace period is over
            state.attention.add(t.client_order_id)
        else:
            inputs.append(Internal("venue_lost", t.client_order_id, "the venue no longer knows this order"))
    processor.put(inputs)
    known = set(state.orders)
    orphans = [o.client_order_id for o in await broker.open_orders() if o.client_order_id not in known]
    if orphans:
        state.counters.orphans_at_venue += len(orphans)
        log.error(
            "%d orders open at %s are not in the ledger; canceling them: %s", len(orphans), state.venue, orphans[:5]
        )
        with contextlib.suppress(BrokerError, TimeoutError):
            await asyncio.wait_for(broker.cancel(orphans), timeout)
    log.info("reconciled %d open orders with %s", len(loaded), state.venue)


class Resolver:
    """Query the venue about orders that need it; reject those it never had after the grace period."""

    def __init__(self, state: EngineState, broker: Broker, processor: ReportProcessor, config: ExecutionConfig) -> None:
        self.state = state
        self.broker = broker
        self.processor = processor
        self.interval = config.resolve_interval_ms / 1000.0
        self.grace_ns = config.unknown_grace_ms * 1_000_000
        self.timeout = config.broker_timeout_ms / 1000.0
        self.queries = 0
        self.cancels_resent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="resolver")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.resolve_once()
            except Exception:
                log.exception("resolver pass failed")

    async def resolve_once(self) -> None:
        state = self.state
        now = time.time_ns()
        inputs: list[Internal] = []
        resend: list[str] = []
        for coid in list(state.attention):
            t = state.orders.get(coid)
            if t is None:
                state.attention.discard(coid)
                continue
            if t.needs_query or t.order.status is OrderStatus.UNKNOWN:
                self.queries += 1
                try:
                    venue_state = await asyncio.wait_for(self.broker.query(coid), self.timeout)
                except (BrokerError, TimeoutError):
                    continue
                if venue_state is not None:
                    inputs.append(Internal("state", coid, state=venue_state))
                elif t.order.status in (OrderStatus.NEW, OrderStatus.UNKNOWN):
                    if now - t.sent_ns >= self.grace_ns:
                        state.counters.lost += 1
                        inputs.append(Internal("lost", coid, "the broker never received the order; it was not resent"))
                else:
                    inputs.append(Internal("venue_lost", coid, "the venue no longer knows this order"))
            if t.cancel_requested_ns and now - t.cancel_requested_ns >= _CANCEL_RESEND_NS and t.order.status.is_open:
                t.cancel_requested_ns = now
                resend.append(coid)
            if not (t.needs_query or t.order.status is OrderStatus.UNKNOWN or t.cancel_requested_ns):
                state.attention.discard(coid)
        self.processor.put(list(inputs))
        if resend:
            self.cancels_resent += len(resend)
            with contextlib.suppress(BrokerError, TimeoutError):
                await asyncio.wait_for(self.broker.cancel(resend), self.timeout)

    async def close(self) -> None:
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.2)
