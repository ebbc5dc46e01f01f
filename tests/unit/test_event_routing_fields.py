"""Every order event the engine builds names its order's account and symbol (the API's live feed routes by
them), whichever path built it: venue reports, a query's answer, an unknown outcome, a lost order."""

from __future__ import annotations

from decimal import Decimal

from tradepulse.domain import Fill, Order, OrderEvent, OrderStatus, RejectReason, Side
from tradepulse.execution.brokers.protocol import BrokerOrderState, ExecType, VenueReport
from tradepulse.execution.tracking import Tracked, apply_report, apply_state, mark_lost, mark_unknown, mark_venue_lost


def tracked(coid: str) -> Tracked:
    order = Order(client_order_id=coid, symbol="XYZ", side=Side.BUY, quantity=Decimal(10), account_id="acct-9")
    return Tracked(order=order, reserve_price=Decimal(100))


def fill(coid: str, n: int, qty: int) -> Fill:
    return Fill(
        fill_id=f"{coid}-f{n}",
        client_order_id=coid,
        symbol="XYZ",
        side=Side.BUY,
        price=Decimal(100),
        quantity=Decimal(qty),
    )


def report(coid: str, kind: ExecType, status: OrderStatus, **kw: object) -> VenueReport:
    return VenueReport(client_order_id=coid, exec_type=kind, status=status, **kw)  # type: ignore[arg-type]


def test_events_from_every_path_carry_the_orders_account_and_symbol() -> None:
    events: list[OrderEvent] = []
    t = tracked("a")
    events += apply_report(t, report("a", ExecType.NEW, OrderStatus.ACCEPTED, venue_order_id="v")).events
    events += apply_report(t, report("a", ExecType.TRADE, OrderStatus.PARTIALLY_FILLED, fill=fill("a", 1, 4))).events
    events += apply_report(t, report("a", ExecType.CANCELED, OrderStatus.CANCELED, cum_quantity=Decimal(4))).events
    t = tracked("b")
    events += apply_report(t, report("b", ExecType.TRADE, OrderStatus.FILLED, fill=fill("b", 1, 10))).events
    t = tracked("c")
    events += apply_report(t, report("c", ExecType.NEW, OrderStatus.ACCEPTED)).events
    events += apply_report(t, report("c", ExecType.EXPIRED, OrderStatus.EXPIRED)).events
    t = tracked("d")
    events += apply_report(
        t, report("d", ExecType.REJECTED, OrderStatus.REJECTED, reason=RejectReason.BROKER_ERROR)
    ).events
    t = tracked("e")
    events += mark_unknown(t, "timed out", 1).events
    events += apply_state(
        t,
        BrokerOrderState(
            client_order_id="e", status=OrderStatus.ACCEPTED, quantity=Decimal(10), cum_quantity=Decimal(0)
        ),
        2,
    ).events
    events += mark_venue_lost(t, "venue lost it", 3).events
    t = tracked("f")
    events += mark_lost(t, "never reached the venue", 1).events

    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "OrderAccepted",
        "OrderPartiallyFilled",
        "OrderCanceled",
        "OrderAccepted",
        "OrderFilled",
        "OrderAccepted",
        "OrderExpired",
        "OrderRejected",
        "OrderUnknown",
        "OrderAccepted",
        "OrderCanceled",
        "OrderRejected",
    ]
    assert {(e.account_id, e.symbol) for e in events} == {("acct-9", "XYZ")}
