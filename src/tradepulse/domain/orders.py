"""Order commands, order events, and the order state machine.

The order lifecycle is a table of (status, event kind) -> status (:data:`TRANSITIONS`), applied by one function
(:meth:`Order.apply`) that raises :class:`InvalidTransition` on anything not in the table. Terminal statuses
(FILLED, CANCELED, REJECTED, EXPIRED) have no outgoing edges, so they are final.

    NEW --accept--> ACCEPTED --partial fill--> PARTIALLY_FILLED --fill--> FILLED
     |                 |  \\--fill--> FILLED         |  \\--partial fill (loop)
     |                 +--cancel/expire--> CANCELED/EXPIRED <--cancel/expire--+
     +--reject--> REJECTED,  --cancel--> CANCELED
     +--unknown--> UNKNOWN --accept--> ACCEPTED,  --reject--> REJECTED

UNKNOWN is where an order waits when the broker call that sent it timed out: the broker may or may not have it.
Only an answer from the broker (a report, or a query by client order id) moves it on; it is never resent blindly.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

import msgspec

from tradepulse.domain.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradepulse.domain.fills import Fill
from tradepulse.domain.messages import Message
from tradepulse.domain.money import ZERO, exact_add, exact_mul

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class InvalidTransition(ValueError):
    """An event does not apply to an order in its current status (or contradicts its quantities)."""


class OrderEventKind(StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"
    CANCEL = "CANCEL"
    EXPIRE = "EXPIRE"
    UNKNOWN = "UNKNOWN"


S, K = OrderStatus, OrderEventKind

#: The order state machine as data. Anything absent is illegal.
TRANSITIONS: dict[tuple[OrderStatus, OrderEventKind], OrderStatus] = {
    (S.NEW, K.ACCEPT): S.ACCEPTED,
    (S.NEW, K.REJECT): S.REJECTED,
    (S.NEW, K.CANCEL): S.CANCELED,
    (S.NEW, K.UNKNOWN): S.UNKNOWN,
    (S.UNKNOWN, K.ACCEPT): S.ACCEPTED,
    (S.UNKNOWN, K.REJECT): S.REJECTED,
    (S.ACCEPTED, K.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, K.FILL): S.FILLED,
    (S.ACCEPTED, K.CANCEL): S.CANCELED,
    (S.ACCEPTED, K.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, K.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, K.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, K.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, K.EXPIRE): S.EXPIRED,
}
del S, K


def validate_client_order_id(value: str, field: str = "client_order_id") -> str:
    """Return ``value`` if it is a valid client order id (1-64 of ``A-Z a-z 0-9 . _ : -``), else raise."""
    if not _CLIENT_ID.match(value):
        raise ValueError(f"{field}: {value!r} must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    return value


def _positive(value: Decimal | None, field: str) -> None:
    if value is not None and (not value.is_finite() or value <= 0):
        raise ValueError(f"{field}: must be a positive finite number, got {value}")


class SubmitOrder(Message, frozen=True, kw_only=True):
    """Command: place a new order. ``client_order_id`` makes it idempotent: submitting it twice is one order."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    strategy_id: str = "manual"
    account_id: str = "default"
    ts_ns: int = 0
    #: admit no later than this (epoch ns, the engine's clock): an engine that reads the order later rejects it
    #: with STALE_ORDER instead of executing it; 0 = no deadline of its own (``risk.max_order_age_ms`` applies)
    deadline_ns: int = 0

    def __post_init__(self) -> None:
        validate_client_order_id(self.client_order_id)
        if self.deadline_ns < 0:
            raise ValueError(f"deadline_ns: must be 0 (none) or a time in epoch ns, got {self.deadline_ns}")
        if not self.symbol:
            raise ValueError("symbol: must not be empty")
        _positive(self.quantity, "quantity")
        _positive(self.limit_price, "limit_price")
        _positive(self.stop_price, "stop_price")
        needs_limit = self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise ValueError(
                f"limit_price: {'required' if needs_limit else 'not allowed'} for a {self.order_type} order"
            )
        if needs_stop != (self.stop_price is not None):
            raise ValueError(f"stop_price: {'required' if needs_stop else 'not allowed'} for a {self.order_type} order")
        if self.order_type is OrderType.MARKET and self.time_in_force is TimeInForce.GTC:
            raise ValueError("time_in_force: a MARKET order cannot rest, so GTC is not allowed")


class CancelOrder(Message, frozen=True, kw_only=True):
    """Command: cancel an open order. ``symbol`` routes the command to the order's partition."""

    client_order_id: str
    symbol: str = ""
    account_id: str = "default"
    ts_ns: int = 0


class OrderEvent(Message, frozen=True, kw_only=True):
    """Base of events that move an order along its state machine.

    ``account_id`` and ``symbol`` repeat the order's, so that a reader of the ``reports`` stream (the API's live
    feed) can route an event to the account that owns it without a ledger lookup; "" means not stated (events
    from an engine that predates them), and such events are never shown to any account.
    """

    kind: ClassVar[OrderEventKind]
    client_order_id: str
    account_id: str = ""
    symbol: str = ""
    ts_ns: int = 0


class OrderAccepted(OrderEvent, frozen=True, kw_only=True):
    kind: ClassVar[OrderEventKind] = OrderEventKind.ACCEPT
    venue_order_id: str | None = None


class OrderRejected(OrderEvent, frozen=True, kw_only=True):
    kind: ClassVar[OrderEventKind] = OrderEventKind.REJECT
    reason: RejectReason = RejectReason.INTERNAL_ERROR
    message: str = ""


class OrderPartiallyFilled(OrderEvent, frozen=True, kw_only=True):
    kind: ClassVar[OrderEventKind] = OrderEventKind.PARTIAL_FILL
    fill: Fill


class OrderFilled(OrderEvent, frozen=True, kw_only=True):
    kind: ClassVar[OrderEventKind] = OrderEventKind.FILL
    fill: Fill


class OrderCanceled(OrderEvent, frozen=True, kw_only=True):
    kind: ClassVar[OrderEventKind] = OrderEventKind.CANCEL
    message: str = ""


class OrderExpired(OrderEvent, frozen=True, kw_only=True):
    kind: ClassVar[OrderEventKind] = OrderEventKind.EXPIRE
    message: str = ""


class OrderUnknown(OrderEvent, frozen=True, kw_only=True):
    """The broker call that sent the order timed out; a query by client order id will resolve it."""

    kind: ClassVar[OrderEventKind] = OrderEventKind.UNKNOWN
    message: str = ""


class Order(Message, frozen=True, kw_only=True):
    """The state of one order. Change it only with :meth:`apply`, which returns a new Order."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    strategy_id: str = "manual"
    account_id: str = "default"
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    fees: Decimal = ZERO
    venue_order_id: str | None = None
    reject_reason: RejectReason | None = None
    status_message: str = ""
    created_ns: int = 0
    updated_ns: int = 0

    @classmethod
    def from_submit(cls, cmd: SubmitOrder, now_ns: int | None = None) -> Order:
        """Return a NEW order for a submit command."""
        ts = cmd.ts_ns if now_ns is None else now_ns
        return cls(
            client_order_id=cmd.client_order_id,
            symbol=cmd.symbol,
            side=cmd.side,
            quantity=cmd.quantity,
            order_type=cmd.order_type,
            limit_price=cmd.limit_price,
            stop_price=cmd.stop_price,
            time_in_force=cmd.time_in_force,
            strategy_id=cmd.strategy_id,
            account_id=cmd.account_id,
            created_ns=ts,
            updated_ns=ts,
            stamps=dict(cmd.stamps),
        )

    @property
    def leaves_quantity(self) -> Decimal:
        """Return the quantity still open (0 once the order is terminal)."""
        return ZERO if self.status.is_terminal else self.quantity - self.filled_quantity

    @property
    def avg_fill_price(self) -> Decimal | None:
        """Return the volume-weighted average fill price, or None before the first fill."""
        if self.filled_quantity == 0:
            return None
        return self.filled_notional / self.filled_quantity

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def can_apply(self, event: OrderEvent) -> bool:
        """Return whether ``event`` is a legal next step for this order's status."""
        return (self.status, event.kind) in TRANSITIONS

    def apply(self, event: OrderEvent) -> Order:
        """Return the order after ``event``, or raise :class:`InvalidTransition`."""
        if event.client_order_id != self.client_order_id:
            raise InvalidTransition(f"event for {event.client_order_id!r} applied to order {self.client_order_id!r}")
        target = TRANSITIONS.get((self.status, event.kind))
        if target is None:
            raise InvalidTransition(
                f"order {self.client_order_id!r}: {type(event).__name__} is not allowed in status {self.status}"
            )
        changes: dict[str, object] = {"status": target, "updated_ns": max(self.updated_ns, event.ts_ns)}
        if isinstance(event, OrderAccepted):
            changes["venue_order_id"] = event.venue_order_id
        elif isinstance(event, OrderRejected):
            changes["reject_reason"] = event.reason
            changes["status_message"] = event.message
        elif isinstance(event, OrderCanceled | OrderExpired | OrderUnknown):
            changes["status_message"] = event.message
        elif isinstance(event, OrderPartiallyFilled | OrderFilled):
            changes.update(self._fill_changes(event))
        return msgspec.structs.replace(self, **changes)

    def _fill_changes(self, event: OrderPartiallyFilled | OrderFilled) -> dict[str, object]:
        fill = event.fill
        if fill.client_order_id != self.client_order_id or fill.symbol != self.symbol or fill.side != self.side:
            raise InvalidTransition(f"order {self.client_order_id!r}: fill {fill.fill_id!r} is for another order")
        filled = exact_add(self.filled_quantity, fill.quantity)
        if filled > self.quantity:
            raise InvalidTransition(
                f"order {self.client_order_id!r}: fill {fill.fill_id!r} overfills ({filled} > {self.quantity})"
            )
        complete = filled == self.quantity
        if complete != isinstance(event, OrderFilled):
            raise InvalidTransition(
                f"order {self.client_order_id!r}: {type(event).__name__} leaves {self.quantity - filled} open"
            )
        return {
            "filled_quantity": filled,
            "filled_notional": exact_add(self.filled_notional, exact_mul(fill.price, fill.quantity)),
            "fees": exact_add(self.fees, fill.fee),
        }


__all__ = [
    "TRANSITIONS",
    "CancelOrder",
    "InvalidTransition",
    "Order",
    "OrderAccepted",
    "OrderCanceled",
    "OrderEvent",
    "OrderEventKind",
    "OrderExpired",
    "OrderFilled",
    "OrderPartiallyFilled",
    "OrderRejected",
    "OrderUnknown",
    "SubmitOrder",
    "validate_client_order_id",
]
