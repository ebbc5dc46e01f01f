"""The order state machine: only table edges, terminal states are final, every legal path is reachable."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepulse.domain import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    Fill,
    InvalidTransition,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderEventKind,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderUnknown,
    Side,
    SubmitOrder,
)

QTY = Decimal(10)


def new_order() -> Order:
    return Order.from_submit(SubmitOrder(client_order_id="c1", symbol="AAPL", side=Side.BUY, quantity=QTY))


def event_for(order: Order, kind: OrderEventKind, n: int, part: Decimal = Decimal(1)) -> OrderEvent:
    """Return an event of ``kind`` that is quantity-consistent with ``order`` when the kind is legal."""
    if kind is OrderEventKind.ACCEPT:
        return OrderAccepted(client_order_id="c1", venue_order_id=f"v{n}")
    if kind is OrderEventKind.REJECT:
        return OrderRejected(client_order_id="c1")
    if kind is OrderEventKind.CANCEL:
        return OrderCanceled(client_order_id="c1")
    if kind is OrderEventKind.EXPIRE:
        return OrderExpired(client_order_id="c1")
    if kind is OrderEventKind.UNKNOWN:
        return OrderUnknown(client_order_id="c1")
    open_qty = order.quantity - order.filled_quantity
    if kind is OrderEventKind.FILL:
        qty = open_qty if open_qty > 0 else Decimal(1)
        cls: type[OrderFilled] | type[OrderPartiallyFilled] = OrderFilled
    else:
        qty = min(part, open_qty - Decimal(1)) if open_qty > 1 else Decimal(1)
        cls = OrderPartiallyFilled
    fill = Fill(
        fill_id=f"f{n}",
        client_order_id="c1",
        symbol="AAPL",
        side=Side.BUY,
        price=Decimal("10.01"),
        quantity=qty,
    )
    return cls(client_order_id="c1", fill=fill)


@given(st.lists(st.tuples(st.sampled_from(list(OrderEventKind)), st.integers(1, 4)), max_size=30))
def test_only_table_edges_and_terminal_is_final(steps: list[tuple[OrderEventKind, int]]) -> None:
    order = new_order()
    for n, (kind, part) in enumerate(steps):
        event = event_for(order, kind, n, Decimal(part))
        target = TRANSITIONS.get((order.status, kind))
        open_qty = order.quantity - order.filled_quantity
        if kind is OrderEventKind.PARTIAL_FILL and open_qty <= 1:
            target = None  # a "partial" fill of the last unit would complete the order: refused
        if target is None:
            with pytest.raises(InvalidTransition):
                order.apply(event)
            continue
        was_terminal = order.status in TERMINAL_STATUSES
        order = order.apply(event)
        assert not was_terminal, "a terminal order accepted an event"
        assert order.status is target
        assert Decimal(0) <= order.filled_quantity <= order.quantity
        assert (order.status is OrderStatus.FILLED) == (order.filled_quantity == order.quantity)


def test_terminal_statuses_have_no_outgoing_edges() -> None:
    for (status, _), _target in TRANSITIONS.items():
        assert status not in TERMINAL_STATUSES


def _reachable_by_walk(path: list[OrderEventKind]) -> Order:
    order = new_order()
    for n, kind in enumerate(path):
        order = order.apply(event_for(order, kind, n))
    return order


def test_every_legal_edge_is_reachable() -> None:
    """Breadth-first over the table from NEW: each edge can be taken with a real event."""
    paths: dict[OrderStatus, list[OrderEventKind]] = {OrderStatus.NEW: []}
    frontier = [OrderStatus.NEW]
    taken: set[tuple[OrderStatus, OrderEventKind]] = set()
    while frontier:
        status = frontier.pop(0)
        for (source, kind), target in TRANSITIONS.items():
            if source is not status:
                continue
            order = _reachable_by_walk(paths[status])
            assert order.status is status
            assert order.apply(event_for(order, kind, 99)).status is target
            taken.add((source, kind))
            if target not in paths:
                paths[target] = [*paths[status], kind]
                frontier.append(target)
    assert taken == set(TRANSITIONS)
    assert set(paths) == set(OrderStatus)


@given(st.lists(st.integers(1, 5), min_size=1, max_size=10))
def test_fills_accumulate_exactly(parts: list[int]) -> None:
    total = sum(parts)
    order = Order.from_submit(
        SubmitOrder(client_order_id="c1", symbol="AAPL", side=Side.SELL, quantity=Decimal(total))
    ).apply(OrderAccepted(client_order_id="c1"))
    notional = Decimal(0)
    for n, part in enumerate(parts):
        price = Decimal("100.01") + Decimal(n) / 100
        fill = Fill(
            fill_id=f"f{n}",
            client_order_id="c1",
            symbol="AAPL",
            side=Side.SELL,
            price=price,
            quantity=Decimal(part),
            fee=Decimal("0.01"),
        )
        last = n == len(parts) - 1
        order = order.apply((OrderFilled if last else OrderPartiallyFilled)(client_order_id="c1", fill=fill))
        notional += price * part
    assert order.status is OrderStatus.FILLED
    assert order.filled_notional == notional
    assert order.fees == Decimal("0.01") * len(parts)


def test_overfill_and_wrong_order_are_refused() -> None:
    order = new_order().apply(OrderAccepted(client_order_id="c1"))
    big = Fill(fill_id="f", client_order_id="c1", symbol="AAPL", side=Side.BUY, price=Decimal(1), quantity=QTY + 1)
    with pytest.raises(InvalidTransition, match="overfills"):
        order.apply(OrderFilled(client_order_id="c1", fill=big))
    with pytest.raises(InvalidTransition, match="applied to order"):
        order.apply(OrderCanceled(client_order_id="other"))
    partial_all = Fill(fill_id="f", client_order_id="c1", symbol="AAPL", side=Side.BUY, price=Decimal(1), quantity=QTY)
    with pytest.raises(InvalidTransition, match="leaves"):
        order.apply(OrderPartiallyFilled(client_order_id="c1", fill=partial_all))
