"""A stand-in for the execution engine: it answers each order on the order streams at once with what the real
engine publishes for a market order that fills (one ``ExecutionReport`` entry per read, carrying an
``OrderAccepted`` and an ``OrderFilled`` item with the stage stamps), or, for the symbol :data:`HOLD`, accepts it
and never fills it. For measuring the load generator alone (``benchmarks.tools.generator_cpu``) and for tests of
the order client and the generator."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradepulse.bus import Transport
from tradepulse.bus.streams import REPORTS, order_streams
from tradepulse.domain import ExecutionReport, Fill, OrderAccepted, OrderFilled, ReportItem, SubmitOrder

GROUP = "stand-in-engine"
PRICE = Decimal("100.01")
#: orders for this symbol are accepted and never filled
HOLD = "HOLD"


def answer(cmd: SubmitOrder, now: int) -> list[ReportItem]:
    """The items the engine reports for ``cmd``, stamped as the engine stamps them."""
    stamps = {**cmd.stamps, "consume": now, "risk": now, "ledger": now, "broker": now}
    coid, venue_id = cmd.client_order_id, f"v-{cmd.client_order_id}"
    common: dict[str, Any] = {"client_order_id": coid, "account_id": cmd.account_id, "symbol": cmd.symbol}
    accepted = OrderAccepted(**common, venue_order_id=venue_id, ts_ns=now, stamps=dict(stamps))
    if cmd.symbol == HOLD:
        return [accepted]
    fill = Fill(
        fill_id=f"f-{coid}",
        client_order_id=coid,
        symbol=cmd.symbol,
        side=cmd.side,
        price=PRICE,
        quantity=cmd.quantity,
        fee=Decimal("0.01"),
        venue_order_id=venue_id,
        ts_exchange_ns=now,
        ts_received_ns=now,
    )
    return [accepted, OrderFilled(**common, fill=fill, ts_ns=now, stamps=stamps)]


async def stand_in_engine(bus: Transport, partitions: int, ready: Callable[[], None] | None = None) -> None:
    """Answer every order on ``orders:{p}`` until cancelled; call ``ready`` once the groups exist."""
    streams = order_streams(partitions)
    for stream in streams:
        await bus.ensure_group(stream, GROUP, "0")
    if ready is not None:
        ready()
    ack: dict[str, list[str]] = {}
    while True:
        deliveries = await bus.read(GROUP, "one", streams, count=1_000, block_ms=20, ack=ack)
        ack = defaultdict(list)
        items: list[ReportItem] = []
        now = time.time_ns()
        for delivery in deliveries:
            ack[delivery.stream].append(delivery.entry_id)
            if isinstance(delivery.message, SubmitOrder):
                items += answer(delivery.message, now)
        if items:
            now = time.time_ns()
            for item in items:
                item.stamps["report"] = now
            reports = [ExecutionReport(engine="stand-in", items=items[i : i + 256]) for i in range(0, len(items), 256)]
            await bus.publish_many(REPORTS, reports)
