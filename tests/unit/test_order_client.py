"""OrderClient against the in-process bus and a stand-in engine: submit, the batch submit the load generator uses,
timeouts, failed publishes and cancelled waits, and that no wait is left behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest
from benchmarks.stand_in import HOLD, stand_in_engine

from tradepulse.bus import BusUnavailable, MemoryTransport
from tradepulse.client import OrderClient, OrderResult, OrderTimeout
from tradepulse.domain import Message, OrderStatus, OrderType, Side, SubmitOrder, TimeInForce

PARTITIONS = 4


def order(coid: str, symbol: str = "AAPL", qty: int = 5) -> SubmitOrder:
    return SubmitOrder(
        client_order_id=coid,
        symbol=symbol,
        side=Side.BUY,
        quantity=Decimal(qty),
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
    )


@pytest.fixture
async def bus() -> AsyncIterator[MemoryTransport]:
    bus = MemoryTransport()
    engine = asyncio.get_running_loop().create_task(stand_in_engine(bus, PARTITIONS))
    yield bus
    engine.cancel()
    await asyncio.gather(engine, return_exceptions=True)
    await bus.close()


@pytest.fixture
async def client(bus: MemoryTransport) -> AsyncIterator[OrderClient]:
    client = OrderClient(bus, partitions=PARTITIONS, block_ms=20)
    await client.start()
    yield client
    await client.close()


async def settled(client: OrderClient) -> int:
    """The waits still registered once the done callbacks have run."""
    for _ in range(3):
        await asyncio.sleep(0)
    return client.in_flight


async def test_submit_returns_the_terminal_report(client: OrderClient) -> None:
    result = await client.submit(order("s-1"), timeout=2)
    assert result.status is OrderStatus.FILLED
    assert [type(e).__name__ for e in result.events] == ["OrderAccepted", "OrderFilled"]
    assert result.events[-1].stamps.keys() >= {"submit", "receive"}
    assert await settled(client) == 0


async def test_a_batch_resolves_each_order_on_its_own_future(client: OrderClient) -> None:
    symbols = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META")  # several order streams in one batch
    cmds = [order(f"b-{i}", symbols[i % len(symbols)], qty=i + 1) for i in range(30)]
    futures = await client.submit_batch(cmds, timeout=2)
    assert len(futures) == len(cmds)
    results = await asyncio.gather(*futures)
    assert [r.client_order_id for r in results] == [c.client_order_id for c in cmds]
    assert all(r.status is OrderStatus.FILLED for r in results)
    assert [r.fills[0].quantity for r in results] == [c.quantity for c in cmds]
    assert await settled(client) == 0


async def test_a_batch_of_nothing_is_nothing(client: OrderClient) -> None:
    assert await client.submit_batch([], timeout=1) == []
    assert await client.submit_many([]) == []


async def test_no_terminal_report_in_time_is_a_timeout_and_the_wait_is_dropped(client: OrderClient) -> None:
    (future,) = await client.submit_batch([order("t-1", HOLD)], timeout=0.1)
    with pytest.raises(OrderTimeout, match=r"t-1: no terminal report within 0.1 s \(last seen: ACCEPTED\)"):
        await future
    with pytest.raises(OrderTimeout):
        await client.submit(order("t-2", HOLD), timeout=0.1)
    assert await settled(client) == 0


async def test_waiting_until_accepted(client: OrderClient) -> None:
    held, filled = await client.submit_many([order("a-1", HOLD), order("a-2")], timeout=2, until="accepted")
    assert isinstance(held, OrderResult)
    assert held.status is OrderStatus.ACCEPTED  # never filled, but the wait ended
    assert isinstance(filled, OrderResult)
    assert type(filled.events[0]).__name__ == "OrderAccepted"


class FailingBus(MemoryTransport):
    async def publish_many(self, stream: str, messages: Sequence[Message]) -> list[str]:
        raise BusUnavailable("redis unreachable: test")


async def test_a_failed_publish_ends_its_orders_waits_with_its_error() -> None:
    client = OrderClient(FailingBus(), partitions=PARTITIONS, block_ms=20)
    await client.start()
    futures = await client.submit_batch([order("f-1"), order("f-2", "MSFT")], timeout=5)
    for future in futures:
        with pytest.raises(BusUnavailable):
            await future
    with pytest.raises(BusUnavailable):
        await client.submit(order("f-3"), timeout=5)
    results = await client.submit_many([order("f-4")], timeout=5)
    assert isinstance(results[0], BusUnavailable)
    assert await settled(client) == 0
    await client.close()


async def test_a_cancelled_wait_is_dropped(client: OrderClient) -> None:
    task = asyncio.get_running_loop().create_task(client.submit(order("c-1", HOLD), timeout=30))
    (future,) = await client.submit_batch([order("c-2", HOLD)], timeout=30)
    await asyncio.sleep(0.1)
    assert client.in_flight == 2
    task.cancel()
    future.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await settled(client) == 0


async def test_close_ends_every_wait(bus: MemoryTransport) -> None:
    client = OrderClient(bus, partitions=PARTITIONS, block_ms=20)
    await client.start()
    futures = await client.submit_batch([order("x-1", HOLD), order("x-2", HOLD)], timeout=30)
    await client.close()
    assert all(f.cancelled() for f in futures)


async def test_submitting_before_start_is_an_error(bus: MemoryTransport) -> None:
    client = OrderClient(bus, partitions=PARTITIONS)
    with pytest.raises(RuntimeError, match="start"):
        await client.submit_batch([order("n-1")])
