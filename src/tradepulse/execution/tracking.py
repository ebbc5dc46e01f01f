"""The engine's view of the orders it holds, and how venue reports move them along the state machine.

The venue is the truth about executions; the engine turns its reports into domain events, defensively:

* a duplicated report changes nothing (fills are keyed by fill id, acknowledgements and closes by status);
* reports may arrive out of order: a fill before its acknowledgement implies the acknowledgement; whether a fill
  completes the order is decided by quantities, not by the venue's label;
* a cancel or expiry whose cumulative quantity is ahead of the fills booked so far (a fill is late) is *held*
  until the missing fills arrive or a query by client order id supplies them, so an order is never closed with
  fills still to come.

:func:`apply_report` and :func:`apply_state` return the domain events they applied, in order; the caller books
and publishes them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradepulse.domain import (
    Fill,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderUnknown,
    RejectReason,
)
from tradepulse.domain.money import ZERO
from tradepulse.execution.brokers.protocol import BrokerOrderState, ExecType, VenueReport

_AWAITING_ACK = (OrderStatus.NEW, OrderStatus.UNKNOWN)


@dataclass(slots=True, eq=False)
class Tracked:
    """An order this engine holds at its venue, with what it needs to apply reports exactly once."""

    order: Order
    reserve_price: Decimal
    fill_ids: set[str] = field(default_factory=set)
    #: a cancel/expiry report waiting for fills that have not arrived yet
    deferred: VenueReport | None = None
    #: ask the venue about this order (unknown outcome, held close, duplicate submit)
    needs_query: bool = False
    sent_ns: int = 0
    cancel_requested_ns: int = 0
    stamps: dict[str, int] = field(default_factory=dict)

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id


@dataclass(slots=True)
class Applied:
    """What applying one report or state did: the events, the new fills, and the reservation released."""

    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    #: quantity released other than by the fills above (the unfilled rest of an order that just closed)
    released: Decimal = ZERO


def _emit(t: Tracked, cls: type[OrderEvent], out: Applied, **fields: Any) -> None:
    """Build ``cls`` for ``t`` (naming its account and symbol, so the feed can route it), apply it, record it."""
    event = cls(client_order_id=t.client_order_id, account_id=t.order.account_id, symbol=t.order.symbol, **fields)
    t.order = t.order.apply(event)
    out.events.append(event)


def _accept_if_needed(t: Tracked, venue_order_id: str | None, ts: int, out: Applied) -> None:
    if t.order.status in _AWAITING_ACK:
        _emit(t, OrderAccepted, out, venue_order_id=venue_order_id, ts_ns=ts)


def _fill(t: Tracked, fill: Fill, ts: int, out: Applied) -> None:
    if fill.fill_id in t.fill_ids or t.order.is_terminal:
        return
    _accept_if_needed(t, fill.venue_order_id, ts, out)
    complete = t.order.filled_quantity + fill.quantity == t.order.quantity
    cls = OrderFilled if complete else OrderPartiallyFilled
    _emit(t, cls, out, fill=fill, ts_ns=ts)
    t.fill_ids.add(fill.fill_id)
    out.fills.append(fill)


def _close(t: Tracked, status: OrderStatus, message: str, ts: int, out: Applied) -> None:
    if t.order.is_terminal:
        return
    leaves = t.order.quantity - t.order.filled_quantity
    if status is OrderStatus.CANCELED:
        _emit(t, OrderCanceled, out, message=message, ts_ns=ts)
    else:
        _emit(t, OrderExpired, out, message=message, ts_ns=ts)
    out.released += leaves
    t.deferred = None


def _reject(t: Tracked, reason: RejectReason, message: str, ts: int, out: Applied) -> None:
    if t.order.status not in _AWAITING_ACK:
        return
    _emit(t, OrderRejected, out, reason=reason, message=message, ts_ns=ts)
    out.released += t.order.quantity


def _try_deferred(t: Tracked, out: Applied) -> None:
    r = t.deferred
    if r is not None and t.order.filled_quantity == r.cum_quantity:
        _accept_if_needed(t, r.venue_order_id, r.ts_ns, out)
        _close(t, r.status, r.message, r.ts_ns, out)


def apply_report(t: Tracked, r: VenueReport) -> Applied:
    """Apply one venue report to ``t``; see the module docstring for how disorder is handled."""
    out = Applied()
    kind = r.exec_type
    if kind is ExecType.NEW:
        if not t.order.is_terminal:
            _accept_if_needed(t, r.venue_order_id, r.ts_ns, out)
    elif kind is ExecType.TRADE:
        assert r.fill is not None
        _fill(t, r.fill, r.ts_ns, out)
        _try_deferred(t, out)
    elif kind is ExecType.CANCELED or kind is ExecType.EXPIRED:
        if not t.order.is_terminal:
            if t.order.filled_quantity == r.cum_quantity:
                _accept_if_needed(t, r.venue_order_id, r.ts_ns, out)
                _close(t, r.status, r.message, r.ts_ns, out)
            else:  # fills are still on their way: close once they are in
                t.deferred = r
                t.needs_query = True
    elif kind is ExecType.REJECTED:
        _reject(t, r.reason or RejectReason.BROKER_ERROR, r.message, r.ts_ns, out)
    elif kind is ExecType.DUPLICATE:
        t.needs_query = True
    return out


def apply_state(t: Tracked, state: BrokerOrderState, ts: int) -> Applied:
    """Bring ``t`` up to the venue's full view of the order (an answer to a query by client order id)."""
    out = Applied()
    if state.status is OrderStatus.REJECTED:
        _reject(t, state.reason or RejectReason.BROKER_ERROR, state.message, ts, out)
        t.needs_query = False
        return out
    _accept_if_needed(t, state.venue_order_id, ts, out)
    for fill in state.fills:
        _fill(t, fill, ts, out)
    if state.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and t.order.filled_quantity == state.cum_quantity:
        _close(t, state.status, state.message, ts, out)
    t.needs_query = t.order.filled_quantity != state.cum_quantity
    return out


def mark_unknown(t: Tracked, message: str, ts: int) -> Applied:
    """The call that sent ``t`` timed out: it is UNKNOWN until the venue says (if no report beat us to it)."""
    out = Applied()
    if t.order.status is OrderStatus.NEW:
        _emit(t, OrderUnknown, out, message=message, ts_ns=ts)
    t.needs_query = True
    return out


def mark_lost(t: Tracked, message: str, ts: int, reason: RejectReason = RejectReason.LOST_AT_BROKER) -> Applied:
    """The venue never had ``t`` (it refused the call, or still does not know the order after the grace period):
    reject it; it is never resent."""
    out = Applied()
    _reject(t, reason, message, ts, out)
    t.needs_query = False
    return out


def mark_venue_lost(t: Tracked, message: str, ts: int) -> Applied:
    """The venue no longer knows an order it had acknowledged (its state was lost): close it as canceled."""
    out = Applied()
    if t.order.status in _AWAITING_ACK:
        return mark_lost(t, message, ts)
    _close(t, OrderStatus.CANCELED, message, ts, out)
    t.needs_query = False
    return out


class RecentOrders:
    """The last ``capacity`` closed orders, to answer duplicate submits without a ledger read."""

    __slots__ = ("_orders", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._orders: OrderedDict[str, Order] = OrderedDict()

    def add(self, order: Order) -> None:
        self._orders[order.client_order_id] = order
        self._orders.move_to_end(order.client_order_id)
        if len(self._orders) > self.capacity:
            self._orders.popitem(last=False)

    def get(self, client_order_id: str) -> Order | None:
        return self._orders.get(client_order_id)

    def __len__(self) -> int:
        return len(self._orders)


__all__ = [
    "Applied",
    "RecentOrders",
    "Tracked",
    "apply_report",
    "apply_state",
    "mark_lost",
    "mark_unknown",
    "mark_venue_lost",
]
