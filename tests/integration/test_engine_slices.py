"""A backlog is booked and applied in slices (so no single step holds the event loop), in order, completely."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.integration.ledger_fixtures import store, store_factory
from tests.integration.test_ledger_contract import SEQ, TOKENS, record
from tradepulse.bus import MemoryTransport
from tradepulse.config import Settings, VenueConfig
from tradepulse.domain import OrderCanceled, OrderStatus
from tradepulse.execution.booker import Booker
from tradepulse.execution.brokers import SimulatedExchange
from tradepulse.execution.brokers.protocol import ExecType, VenueReport
from tradepulse.execution.processor import ReportProcessor
from tradepulse.execution.publisher import ReportPublisher
from tradepulse.execution.tracking import RecentOrders, Tracked
from tradepulse.portfolio.ledger import BookItem, Ledger
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.storage.ledger_store import LedgerStore

__all__ = ["store", "store_factory"]
D = Decimal


async def test_a_backlog_larger_than_a_booking_is_booked_in_several_transactions(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(10_000_000), "USD")
    records = [record(f"o{i}", qty="1") for i in range(1_300)]
    assert (await store.admit(records, {"default": SEQ[0]}, {"default": TOKENS[0]})).ok
    ledger = Ledger(store)
    booker = Booker(ledger, max_items=512)
    booker.start()
    closed = [r.order.apply(OrderCanceled(client_order_id=r.order.client_order_id, ts_ns=5)) for r in records]
    booker.put([BookItem(order=o, reserve_price=D("100.05"), release_quantity=o.quantity) for o in closed])
    assert await booker.drain(30)
    await booker.close()
    assert ledger.bookings == 3  # 512 + 512 + 276
    assert booker.booked_items == 1_300
    stored = await store.get_orders([o.client_order_id for o in closed])
    assert {r.order.status for r in stored.values()} == {OrderStatus.CANCELED}
    (position,) = await store.positions("default")
    assert position.released.buy_qty == D(1_300)  # every reservation released exactly once


async def test_the_report_processor_applies_a_backlog_in_slices_in_order(store: LedgerStore) -> None:
    tracked = {f"o{i}": Tracked(order=record(f"o{i}", qty="1").order, reserve_price=D("100.05")) for i in range(1_200)}
    bus = MemoryTransport()
    publisher = ReportPublisher(bus, "engine-1")  # not started: what it is handed stays queued, in order
    booker = Booker(Ledger(store))  # not started either
    processor = ReportProcessor(
        broker=SimulatedExchange("sim:t", InstrumentRegistry.from_settings(Settings()), VenueConfig()),
        orders=dict(tracked),
        recent=RecentOrders(10_000),
        accounts=dict,
        publisher=publisher,
        booker=booker,
        attention=set(),
    )
    processor.put(
        [
            VenueReport(client_order_id=coid, exec_type=ExecType.NEW, status=OrderStatus.ACCEPTED, venue_order_id=coid)
            for coid in tracked
        ]
    )
    task = asyncio.get_running_loop().create_task(processor._run())
    assert await processor.drain(10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert processor.counters.batches == 3  # 512 + 512 + 176
    assert [item.client_order_id for item in publisher._queue] == list(tracked)
    assert all(t.order.status is OrderStatus.ACCEPTED for t in tracked.values())
    assert booker.backlog == 1_200
    await bus.close()
