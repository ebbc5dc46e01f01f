"""Execution reports: what the engine publishes on the ``reports`` stream.

One stream entry carries the events of one engine step for many orders (an :class:`ExecutionReport`), so that
publishing and reading cost one entry per batch rather than one per event. Within a report, and across the
reports of one engine, the events of an order appear in the order they happened. A duplicate submit is answered
with the order as it stands (an :class:`~tradepulse.domain.orders.Order` item), never by executing it again.
"""

from __future__ import annotations

from tradepulse.domain.messages import Message
from tradepulse.domain.orders import (
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderEventKind,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderUnknown,
)

ReportItem = (
    OrderAccepted
    | OrderRejected
    | OrderPartiallyFilled
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | OrderUnknown
    | Order
)

#: event kinds after which an order never changes again
TERMINAL_EVENT_KINDS = frozenset(
    {OrderEventKind.FILL, OrderEventKind.REJECT, OrderEventKind.CANCEL, OrderEventKind.EXPIRE}
)


class ExecutionReport(Message, frozen=True, kw_only=True):
    """The order events (and duplicate-submit answers) of one engine step, in the order they happened."""

    engine: str
    items: list[ReportItem]


def is_terminal_item(item: ReportItem) -> bool:
    """Return whether ``item`` leaves its order in a terminal state."""
    if isinstance(item, Order):
        return item.status.is_terminal
    assert isinstance(item, OrderEvent)
    return item.kind in TERMINAL_EVENT_KINDS


__all__ = ["TERMINAL_EVENT_KINDS", "ExecutionReport", "ReportItem", "is_terminal_item"]
