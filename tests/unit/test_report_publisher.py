"""The reports publisher: an idle publisher writes within the call, a busy one queues in order, a failed publish
is put back ahead of what came after it and retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tradepulse.bus import BusUnavailable, MemoryTransport
from tradepulse.bus.streams import REPORTS
from tradepulse.domain import ExecutionReport, Message, OrderAccepted, ReportItem
from tradepulse.execution.publisher import ReportPublisher


class Controlled(MemoryTransport):
    """Records each publish (the client order ids of its events) and leaves its outcome to the test."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.outcomes: list[asyncio.Future[list[str]]] = []

    def publish_many_nowait(self, stream: str, messages: Sequence[Message]) -> asyncio.Future[list[str]]:
        assert stream == REPORTS
        self.calls.append(
            [item.client_order_id for m in messages if isinstance(m, ExecutionReport) for item in m.items]
        )
        outcome: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self.outcomes.append(outcome)
        return outcome


def item(coid: str) -> ReportItem:
    return OrderAccepted(client_order_id=coid, account_id="default", symbol="AAA", venue_order_id=coid, ts_ns=1)


async def parked(publisher: ReportPublisher) -> None:
    for _ in range(10):
        await asyncio.sleep(0)
    assert publisher._parked


async def test_an_idle_publisher_writes_what_it_is_handed_within_the_call() -> None:
    bus = MemoryTransport()
    publisher = ReportPublisher(bus, "engine-1")
    publisher.start()
    await parked(publisher)
    publisher.put([item("a"), item("b")])
    assert publisher._sending is not None  # on the wire, and no await since the put
    assert await publisher.drain(1)
    assert publisher.published == 2
    deliveries, _ = await bus.tail(REPORTS, "0", count=10, block_ms=0)
    reports = [d.message for d in deliveries]
    assert all(isinstance(r, ExecutionReport) for r in reports)
    assert [[i.client_order_id for i in r.items] for r in reports if isinstance(r, ExecutionReport)] == [["a", "b"]]
    assert all("report" in i.stamps for r in reports if isinstance(r, ExecutionReport) for i in r.items)
    await publisher.close()
    await bus.close()


async def test_what_is_put_while_a_publish_is_in_flight_goes_next_in_order() -> None:
    bus = Controlled()
    publisher = ReportPublisher(bus, "engine-1")
    publisher.start()
    await parked(publisher)
    publisher.put([item("a")])
    assert bus.calls == [["a"]]  # written by the put itself
    publisher.put([item("b")])
    publisher.put([item("c")])
    assert bus.calls == [["a"]]  # "a" is still in flight: "b" and "c" wait
    assert publisher.backlog == 3
    bus.outcomes[0].set_result(["1-0"])
    for _ in range(10):
        await asyncio.sleep(0)
    assert bus.calls == [["a"], ["b", "c"]]
    bus.outcomes[1].set_result(["2-0"])
    assert await publisher.drain(1)
    assert publisher.published == 3
    await publisher.close()


async def test_a_failed_publish_is_sent_again_ahead_of_what_came_after_it() -> None:
    bus = Controlled()
    publisher = ReportPublisher(bus, "engine-1")
    publisher.start()
    await parked(publisher)
    publisher.put([item("a")])
    publisher.put([item("b")])
    bus.outcomes[0].set_exception(BusUnavailable("redis unreachable: test"))
    await asyncio.sleep(0.01)
    publisher.put([item("c")])  # during the back-off: queued, not written
    assert bus.calls == [["a"]]
    for _ in range(100):
        if len(bus.calls) == 2:
            break
        await asyncio.sleep(0.01)
    assert bus.calls == [["a"], ["a", "b", "c"]]
    assert publisher.outages == 1
    bus.outcomes[1].set_result(["1-0"])
    assert await publisher.drain(1)
    assert publisher.published == 3
    await publisher.close()
