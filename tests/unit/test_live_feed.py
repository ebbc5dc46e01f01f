"""The API's live feed over the in-process bus: routing by channel, symbol and account; bounded queues that cut a
slow subscriber off; readers that start with the first subscription and stop after the last."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.support.engine import until
from tradepulse.api.feed import FeedClosed, LiveFeed, SlowConsumer, Subscriber
from tradepulse.bus import MemoryTransport
from tradepulse.bus.codec import DEFAULT_CODEC
from tradepulse.bus.streams import REPORTS, SIGNALS, TICKS
from tradepulse.domain import (
    ExecutionReport,
    Fill,
    Order,
    OrderAccepted,
    OrderFilled,
    OrderStatus,
    Side,
    Signal,
    SignalAction,
    Tick,
)


def tick(symbol: str, price: float = 100.0) -> Tick:
    return Tick(symbol=symbol, ts_ns=time.time_ns(), price=price, size=10, bid=price - 0.01, ask=price + 0.01)


def signal(symbol: str) -> Signal:
    return Signal(symbol=symbol, action=SignalAction.BUY, confidence=0.8, model_version="m1", ts_ns=time.time_ns())


def fill_report(coid: str, account: str, symbol: str = "AAPL") -> ExecutionReport:
    fill = Fill(
        fill_id=f"f-{coid}",
        client_order_id=coid,
        symbol=symbol,
        side=Side.BUY,
        price=Decimal("100.01"),
        quantity=Decimal(5),
        fee=Decimal("0.05"),
    )
    return ExecutionReport(
        engine="e1",
        items=[
            OrderAccepted(client_order_id=coid, account_id=account, symbol=symbol, venue_order_id="v1"),
            OrderFilled(client_order_id=coid, account_id=account, symbol=symbol, fill=fill),
        ],
    )


async def frames(sub: Subscriber, n: int, timeout: float = 2.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.extend(json.loads(f) for f in await sub.next())
    return out


async def nothing_more(sub: Subscriber, wait: float = 0.05) -> None:
    await asyncio.sleep(wait)
    assert sub.queued == 0


@pytest.fixture
async def bus() -> MemoryTransport:
    return MemoryTransport()


async def test_quotes_and_signals_reach_the_subscribers_of_their_symbol(bus: MemoryTransport) -> None:
    feed = LiveFeed(bus, block_ms=50)
    aapl = feed.attach("a")
    everything = feed.attach("b")
    await feed.subscribe(aapl, ["quotes", "signals"], ["AAPL"])
    await feed.subscribe(everything, ["quotes"], ["*"])
    await bus.publish_many(TICKS, [tick("AAPL", 101.0), tick("MSFT", 55.0)])
    await bus.publish(SIGNALS, signal("AAPL"))
    await bus.publish(SIGNALS, signal("MSFT"))

    got = await frames(aapl, 2)
    assert [(f["channel"], f["symbol"], f["data"]["type"]) for f in got] == [
        ("quotes", "AAPL", "Tick"),
        ("signals", "AAPL", "Signal"),
    ]
    assert got[0]["data"]["price"] == 101.0
    assert "account_id" not in got[0]
    assert got[1]["data"]["action"] == "BUY"
    await nothing_more(aapl)
    got = await frames(everything, 2)
    assert [(f["channel"], f["symbol"]) for f in got] == [("quotes", "AAPL"), ("quotes", "MSFT")]
    await nothing_more(everything)
    await feed.close()


async def test_orders_and_fills_go_to_their_own_account_only(bus: MemoryTransport) -> None:
    feed = LiveFeed(bus, block_ms=50)
    mine = feed.attach("acct-1")
    other = feed.attach("acct-2")
    await feed.subscribe(mine, ["orders", "fills"], ["*"])
    await feed.subscribe(other, ["orders", "fills"], ["*"])
    await bus.publish(REPORTS, fill_report("o-1", "acct-1"))

    got = await frames(mine, 3)
    assert [(f["channel"], f["data"].get("type")) for f in got] == [
        ("orders", "OrderAccepted"),
        ("orders", "OrderFilled"),
        ("fills", None),
    ]
    assert all(f["account_id"] == "acct-1" and f["symbol"] == "AAPL" for f in got)
    fill = got[2]["data"]
    assert (fill["fill_id"], fill["price"], fill["quantity"], fill["fee"]) == ("f-o-1", "100.01", "5", "0.05")
    await nothing_more(other)
    await feed.close()


async def test_symbol_filter_applies_to_private_channels_and_duplicate_answers_are_routed(
    bus: MemoryTransport,
) -> None:
    feed = LiveFeed(bus, block_ms=50)
    sub = feed.attach("acct-1")
    await feed.subscribe(sub, ["orders"], ["MSFT"])
    snapshot = Order(
        client_order_id="o-9",
        symbol="MSFT",
        side=Side.SELL,
        quantity=Decimal(3),
        account_id="acct-1",
        status=OrderStatus.FILLED,
        filled_quantity=Decimal(3),
    )
    await bus.publish(REPORTS, fill_report("o-1", "acct-1", "AAPL"))
    await bus.publish(REPORTS, ExecutionReport(engine="e1", items=[snapshot]))
    (got,) = await frames(sub, 1)
    assert (got["channel"], got["symbol"], got["data"]["type"], got["data"]["status"]) == (
        "orders",
        "MSFT",
        "Order",
        "FILLED",
    )
    await nothing_more(sub)
    await feed.close()


async def test_events_that_name_no_account_are_shown_to_nobody(bus: MemoryTransport) -> None:
    feed = LiveFeed(bus, block_ms=50)
    sub = feed.attach("")
    await feed.subscribe(sub, ["orders"], ["*"])
    await bus.publish(REPORTS, ExecutionReport(engine="e1", items=[OrderAccepted(client_order_id="old")]))
    await bus.publish(SIGNALS, signal("AAPL"))  # a marker: once the reader is past it, the report was handled
    await asyncio.sleep(0.1)
    assert sub.queued == 0
    assert feed.stats.unrouted == 1
    await feed.close()


def test_an_event_in_the_format_from_before_account_and_symbol_decodes_with_them_empty() -> None:
    old = msgspec.msgpack.encode({"type": "OrderAccepted", "client_order_id": "x", "venue_order_id": "v", "ts_ns": 5})
    decoded = DEFAULT_CODEC.decode(old)
    assert isinstance(decoded, OrderAccepted)
    assert (decoded.account_id, decoded.symbol, decoded.venue_order_id, decoded.ts_ns) == ("", "", "v", 5)


async def test_unsubscribe_stops_delivery_and_the_last_one_stops_the_reader(bus: MemoryTransport) -> None:
    feed = LiveFeed(bus, block_ms=20)
    sub = feed.attach("a")
    await feed.subscribe(sub, ["quotes"], ["AAPL", "MSFT"])
    assert feed.readers_running() == [TICKS]
    feed.unsubscribe(sub, ["quotes"], ["AAPL"])
    await bus.publish_many(TICKS, [tick("AAPL"), tick("MSFT")])
    (got,) = await frames(sub, 1)
    assert got["symbol"] == "MSFT"
    feed.unsubscribe(sub, ["quotes"], ["MSFT"])
    await bus.publish(TICKS, tick("MSFT"))
    await until(lambda: not feed.readers_running(), 2, "the reader stopped")
    assert sub.queued == 0
    # a new subscription starts a new reader, from the stream's end
    await feed.subscribe(sub, ["quotes"], ["MSFT"])
    await bus.publish(TICKS, tick("MSFT", 77.0))
    (got,) = await frames(sub, 1)
    assert got["data"]["price"] == 77.0
    await feed.close()


async def test_a_subscriber_that_falls_behind_is_cut_off_and_its_queue_never_exceeds_the_bound(
    bus: MemoryTransport,
) -> None:
    feed = LiveFeed(bus, block_ms=50, queue_max=10)
    slow = feed.attach("a")
    fast = feed.attach("b")
    await feed.subscribe(slow, ["quotes"], ["*"])
    await feed.subscribe(fast, ["quotes"], ["*"])
    received = 0

    async def drain() -> None:
        nonlocal received
        while True:
            received += len(await fast.next())

    drainer = asyncio.ensure_future(drain())
    for i in range(200):
        await bus.publish(TICKS, tick("AAPL", 100.0 + i / 100))
        await asyncio.sleep(0)
    await until(lambda: received == 200, 2, "the fast subscriber got every quote")
    drainer.cancel()
    assert slow.peak == 10
    assert slow.queued == 0, "the queue of a subscriber cut off is released"
    with pytest.raises(SlowConsumer, match="slow consumer: more than 10 messages queued"):
        await slow.next()
    assert feed.stats.slow_consumers == 1
    assert feed.subscribers == 1
    with pytest.raises(SlowConsumer):
        await feed.subscribe(slow, ["quotes"], ["*"])
    await feed.close()


async def test_a_subscriber_that_keeps_up_survives_a_burst_larger_than_its_queue(bus: MemoryTransport) -> None:
    feed = LiveFeed(bus, block_ms=50, queue_max=100, read_count=1_000)
    sub = feed.attach("a")
    await feed.subscribe(sub, ["quotes"], ["*"])
    received = 0

    async def drain() -> None:
        nonlocal received
        while True:
            received += len(await sub.next())

    drainer = asyncio.ensure_future(drain())
    await bus.publish_many(TICKS, [tick("AAPL", 100.0 + i / 100) for i in range(1_000)])  # one read of 1,000
    await until(lambda: received == 1_000 or sub.closed is not None, 2, "the burst was delivered")
    drainer.cancel()
    assert sub.closed is None
    assert received == 1_000
    assert sub.peak <= feed.dispatch_chunk
    await feed.close()


async def test_bad_channels_and_symbols_are_refused_with_the_name(bus: MemoryTransport) -> None:
    feed = LiveFeed(bus)
    sub = feed.attach("a")
    with pytest.raises(ValueError, match="channel 'trades': must be one of signals, quotes, orders, fills"):
        await feed.subscribe(sub, ["trades"], ["AAPL"])
    with pytest.raises(ValueError, match="symbol 'A A': must be"):
        await feed.subscribe(sub, ["quotes"], ["A A"])
    assert sub.topics == set()
    assert feed.readers_running() == []
    await feed.close()


async def test_close_ends_every_stream_and_stops_the_readers(bus: MemoryTransport) -> None:
    feed = LiveFeed(bus, block_ms=1_000)
    sub = feed.attach("a")
    await feed.subscribe(sub, ["signals", "orders"], ["*"])
    waiting = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0.01)
    await feed.close()
    with pytest.raises(FeedClosed, match="shutting down"):
        await waiting
    assert feed.readers_running() == []
    with pytest.raises(FeedClosed):
        feed.attach("a")


async def test_a_failing_start_fails_the_subscribe_call_and_the_next_one_retries(bus: MemoryTransport) -> None:
    from tradepulse.bus import BusUnavailable

    feed = LiveFeed(bus)
    sub = feed.attach("a")
    real = bus.tail
    calls = 0

    async def flaky(stream: str, after: str, *, count: int, block_ms: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BusUnavailable("redis unreachable: test")
        return await real(stream, after, count=count, block_ms=block_ms)

    bus.tail = flaky  # type: ignore[method-assign]
    with pytest.raises(BusUnavailable):
        await feed.subscribe(sub, ["signals"], ["*"])
    await feed.subscribe(sub, ["signals"], ["*"])
    await bus.publish(SIGNALS, signal("AAPL"))
    (got,) = await frames(sub, 1)
    assert got["channel"] == "signals"
    await feed.close()
