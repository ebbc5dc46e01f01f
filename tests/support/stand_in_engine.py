"""A stand-in for the execution engine on the in-process bus: it answers each order on the order streams at once,
as the engine reports a market order that fills (an ``OrderAccepted`` and an ``OrderFilled`` in one report), or,
for the symbol ``HOLD``, accepts it and never fills it. For tests of the order client and the load generator."""

from __future__ import annotations

from decimal import Decimal

from tradepulse.bus import Transport
from tradepulse.bus.streams import REPORTS, order_streams
from tradepulse.domain import ExecutionReport, Fill, OrderAccepted, OrderFilled, ReportItem, SubmitOrder

HOLD = "HOLD"


def answer(cmd: SubmitOrder) -> list[ReportItem]:
    """The report items for ``cmd``, carrying its stamps."""
    coid = cmd.client_order_id
    accepted = OrderAccepted(client_order_id=coid, symbol=cmd.symbol, stamps=dict(cmd.stamps))
    if cmd.symbol == HOLD:
        return [accepted]
    fill = Fill(
        fill_id=f"f-{coid}",
        client_order_id=coid,
        symbol=cmd.symbol,
        side=cmd.side,
        price=Decimal(10),
        quantity=cmd.quantity,
    )
    return [accepted, OrderFilled(client_order_id=coid, symbol=cmd.symbol, fill=fill, stamps=dict(cmd.stamps))]


async def stand_in_engine(bus: Transport, partitions: int) -> None:
    """Answer every order on ``orders:{p}``, one report per read, until cancelled."""
    streams = order_streams(partitions)
    for stream in streams:
        await bus.ensure_group(stream, "stand-in", "0")
    while True:
        deliveries = await bus.read("stand-in", "one", streams, count=1_000, block_ms=20)
        items = [item for d in deliveries if isinstance(d.message, SubmitOrder) for item in answer(d.message)]
        acks: dict[str, list[str]] = {}
        for d in deliveries:
            acks.setdefault(d.stream, []).append(d.entry_id)
        await bus.ack_many("stand-in", acks)
        if items:
            await bus.publish(REPORTS, ExecutionReport(engine="stand-in", items=items))
