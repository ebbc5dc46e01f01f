"""The engine end to end in one process: client -> orders stream -> risk -> ledger -> venue -> reports -> ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.support.engine import EngineHarness, client_for, order, settings_for, tick, until, until_async
from tradepulse.bus import Delivery, MemoryTransport
from tradepulse.bus.streams import engine_stream, order_stream
from tradepulse.config import DatabaseConfig
from tradepulse.domain import Order, OrderStatus, RejectReason, Side, TimeInForce, TradingState
from tradepulse.execution import admission
from tradepulse.portfolio.ledger import verify

D = Decimal


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    bus = MemoryTransport()
    h = EngineHarness(settings_for(tmp_path, risk={"max_position": D(1000)}), bus)
    await h.start()
    await h.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
    yield h
    await h.stop()
    await bus.close()


async def test_a_market_order_fills_and_is_booked(harness: EngineHarness) -> None:
    client = await client_for(harness.bus, harness.settings)
    result = await client.submit(order("AAA", Side.BUY, 10))
    assert result.status is OrderStatus.FILLED
    assert [type(e).__name__ for e in result.events] == ["OrderAccepted", "OrderFilled"]
    assert result.fills[0].price == D("100.01")
    stamps = result.events[-1].stamps
    assert list(stamps) == ["submit", "consume", "risk", "ledger", "broker", "report", "receive"]
    await harness.quiet()
    assert harness.store is not None
    assert await verify(harness.store, "default") == []
    (position,) = await harness.store.positions("default")
    assert position.position.quantity == 10
    await client.close()


async def test_risk_rejections_are_recorded_and_reported(harness: EngineHarness) -> None:
    client = await client_for(harness.bus, harness.settings)
    result = await client.submit(order("AAA", Side.BUY, 1001))
    assert result.status is OrderStatus.REJECTED
    assert result.last is not None
    assert getattr(result.last, "reason", None) is RejectReason.MAX_POSITION
    unknown = await client.submit(order("ZZZ", Side.BUY, 1))
    assert getattr(unknown.last, "reason", None) is RejectReason.UNKNOWN_INSTRUMENT
    assert harness.store is not None
    stored = await harness.store.get_orders([result.client_order_id])
    assert stored[result.client_order_id].order.status is OrderStatus.REJECTED
    await client.close()


async def test_a_duplicate_submit_returns_the_order_and_never_executes_twice(harness: EngineHarness) -> None:
    client = await client_for(harness.bus, harness.settings)
    cmd = order("AAA", Side.BUY, 5)
    first = await client.submit(cmd)
    second = await client.submit(cmd)
    assert first.status is OrderStatus.FILLED
    assert isinstance(second.last, Order)
    assert second.last.status is OrderStatus.FILLED
    assert second.last.filled_quantity == 5
    assert harness.venue is not None
    assert harness.venue.fills == 1
    await client.close()


async def test_resting_order_cancel_releases_its_reservation(harness: EngineHarness) -> None:
    client = await client_for(harness.bus, harness.settings)
    cmd = order("AAA", Side.BUY, 600, limit="99.00", tif=TimeInForce.GTC)
    accepted = await client.submit(cmd, until="accepted")
    assert accepted.status is OrderStatus.ACCEPTED
    blocked = await client.submit(order("AAA", Side.BUY, 401))  # 600 open + 401 > 1000
    assert getattr(blocked.last, "reason", None) is RejectReason.MAX_POSITION
    canceled = await client.cancel(cmd.client_order_id, "AAA")
    assert canceled.status is OrderStatus.CANCELED
    allowed = await client.submit(order("AAA", Side.BUY, 1000))
    assert allowed.status is OrderStatus.FILLED
    await harness.quiet()
    assert harness.store is not None
    assert await verify(harness.store, "default") == []
    await client.close()


async def test_concurrent_orders_cannot_breach_the_position_limit_together(harness: EngineHarness) -> None:
    client = await client_for(harness.bus, harness.settings)
    results = await client.submit_many([order("BBB", Side.SELL, 11, limit="49.00") for _ in range(100)])
    statuses = [r.status for r in results if not isinstance(r, BaseException)]
    assert len(statuses) == 100
    assert statuses.count(OrderStatus.FILLED) == 90
    assert statuses.count(OrderStatus.REJECTED) == 10
    await harness.quiet()
    assert harness.store is not None
    positions = {p.position.symbol: p.position.quantity for p in await harness.store.positions("default")}
    assert positions["BBB"] == -990
    await client.close()


async def test_kill_switch_halts_cancels_open_orders_and_survives_a_restart(harness: EngineHarness) -> None:
    client = await client_for(harness.bus, harness.settings)
    resting = order("AAA", Side.BUY, 10, limit="99.50", tif=TimeInForce.GTC)
    await client.submit(resting, until="accepted")
    assert harness.engine is not None
    await harness.engine.set_trading_state(TradingState.HALTED, "drill", "test")
    await until(lambda: harness.engine is not None and not harness.engine.state.orders, 5, "open orders canceled")
    halted = await client.submit(order("AAA", Side.BUY, 1))
    assert getattr(halted.last, "reason", None) is RejectReason.TRADING_HALTED
    await harness.stop()
    await harness.start()  # a restart keeps the kill switch
    await harness.ticks(tick("AAA", 100.0))
    still = await client.submit(order("AAA", Side.BUY, 1))
    assert getattr(still.last, "reason", None) is RejectReason.TRADING_HALTED
    assert harness.engine is not None
    await harness.engine.set_trading_state(TradingState.ACTIVE, "drill over", "admin")
    ok = await client.submit(order("AAA", Side.BUY, 1))
    assert ok.status is OrderStatus.FILLED
    await client.close()


async def test_a_crash_after_the_venue_filled_is_booked_on_restart(harness: EngineHarness) -> None:
    client = await client_for(harness.bus, harness.settings)
    assert harness.engine is not None
    await harness.engine.booker.lock.acquire()  # hold bookings back, so the crash comes before the fill is booked
    filled = await client.submit(order("AAA", Side.BUY, 7))
    assert filled.status is OrderStatus.FILLED
    assert harness.store is not None
    assert await harness.store.fills(account_id="default") == []
    await harness.crash()  # what was not booked is lost with the process; the venue journal has the fill
    await harness.start()
    await harness.quiet()
    assert harness.store is not None
    assert await verify(harness.store, "default") == []
    assert harness.venue is not None
    venue_fills = {f.fill_id for vo in harness.venue.orders.values() for f in vo.fills}
    booked = {f.fill_id for f in await harness.store.fills(account_id="default")}
    assert venue_fills == booked
    assert len(booked) == 1
    await client.close()


async def test_the_venues_reports_are_applied_before_the_handler_returns(harness: EngineHarness) -> None:
    """An in-process venue answers within the submit call: its fill is applied, queued for publishing and
    booking by the time the batch's handler returns (before the consumer's next read), not a loop turn later."""
    engine = harness.engine
    assert engine is not None
    before = engine.processor.counters.fills
    cmd = order("AAA", Side.BUY, 7)
    await engine.admission.handle([Delivery(stream=order_stream("AAA", 4), entry_id="1-1", message=cmd)])
    # no await in between: nothing else (the pump, the publisher) has run since the handler returned
    assert engine.processor.counters.fills == before + 1
    assert cmd.client_order_id not in engine.state.orders  # terminal: filled
    recent = engine.state.recent.get(cmd.client_order_id)
    assert recent is not None
    assert recent.status is OrderStatus.FILLED
    await harness.quiet()
    assert harness.store is not None
    assert await verify(harness.store, "default") == []
    (record,) = (await harness.store.get_orders([cmd.client_order_id])).values()
    assert record.order.status is OrderStatus.FILLED


async def test_orders_that_waited_past_their_deadline_while_no_engine_ran_are_rejected_not_executed(
    tmp_path: Path,
) -> None:
    """Orders that sat on the stream while every engine was down are refused STALE_ORDER when an engine comes
    back (recorded in the ledger, never sent to the venue); a fresh one executes, and a late copy of an order
    admitted in time is answered with that order, never refused."""
    bus = MemoryTransport()
    h = EngineHarness(settings_for(tmp_path, risk={"max_order_age_ms": 400}), bus)
    await h.start()
    await h.ticks(tick("AAA", 100.0))
    client = await client_for(bus, h.settings)
    admitted = order("AAA", Side.BUY, 2)
    assert (await client.submit(admitted)).status is OrderStatus.FILLED
    await h.stop()
    waiting = [order("AAA", Side.BUY, 1) for _ in range(5)]
    own_deadline = msgspec.structs.replace(order("AAA", Side.BUY, 1), deadline_ns=time.time_ns() + 100_000_000)
    late_copy = msgspec.structs.replace(admitted, ts_ns=time.time_ns() - 10**9)
    futures = await client.submit_batch([*waiting, own_deadline, late_copy], timeout=10)
    await asyncio.sleep(0.5)  # past both deadlines, with no engine reading
    await h.start()
    await h.ticks(tick("AAA", 100.0))
    fresh = await client.submit(order("AAA", Side.BUY, 3))
    results = await asyncio.gather(*futures)
    for cmd, result in zip([*waiting, own_deadline], results, strict=False):
        assert result.status is OrderStatus.REJECTED, cmd.client_order_id
        assert getattr(result.last, "reason", None) is RejectReason.STALE_ORDER
        assert "after its deadline" in getattr(result.last, "message", "")
    assert isinstance(results[-1].last, Order)  # the copy: the order as it stands
    assert results[-1].last.status is OrderStatus.FILLED
    assert fresh.status is OrderStatus.FILLED
    await h.quiet()
    assert h.venue is not None
    assert h.venue.fills == 1  # the fresh order only (the restarted venue's count)
    assert h.store is not None
    stored = await h.store.get_orders([c.client_order_id for c in [*waiting, own_deadline]])
    assert {r.order.status for r in stored.values()} == {OrderStatus.REJECTED}
    assert len(stored) == 6
    (position,) = await h.store.positions("default")
    assert position.position.quantity == 5  # 2 + 3: nothing stale executed
    assert await verify(h.store, "default") == []
    await client.close()
    await h.stop()
    await bus.close()


async def test_copies_of_one_order_in_concurrent_batches_execute_once(tmp_path: Path) -> None:
    bus = MemoryTransport()
    h = EngineHarness(settings_for(tmp_path, execution={"max_batch": 1, "max_in_flight_batches": 8}), bus)
    await h.start()
    await h.ticks(tick("AAA", 100.0))
    client = await client_for(bus, h.settings)
    cmds = [order("AAA", Side.BUY, 3) for _ in range(5)]
    results = await client.submit_many([c for c in cmds for _ in range(6)])
    assert not [r for r in results if isinstance(r, BaseException)]
    await h.quiet()
    assert h.venue is not None
    assert h.venue.fills == 5
    assert h.store is not None
    assert await verify(h.store, "default") == []
    await client.close()
    await h.stop()
    await bus.close()


@pytest.mark.parametrize("fresh_attempts", [admission.FRESH_ATTEMPTS, 0], ids=["fresh-state", "under-the-lock"])
async def test_engines_sharing_an_account_take_turns_on_fresh_state(
    tmp_path: Path, pg_database: str, pg_schema: str, fresh_attempts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two engines admit for one account at once: the second finds the account moved under it, admits in turns
    decided on the state that overtook it from then on (under the ledger's lock when overtaken again and again;
    with no optimistic attempts, every turn), and together they still cannot breach the position limit."""
    monkeypatch.setattr(admission, "FRESH_ATTEMPTS", fresh_attempts)
    bus = MemoryTransport()
    database = DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=4)
    harnesses = [
        EngineHarness(
            settings_for(
                tmp_path / name,
                name=name,
                database=database,
                risk={"max_position": D(1000)},
                execution={"max_batch": 4},
            ),
            bus,
        )
        for name in ("engine-1", "engine-2")
    ]
    for h in harnesses:
        await h.start()
        await h.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
    first, second = harnesses
    assert first.engine is not None
    assert second.engine is not None
    assert first.store is not None
    # engine-1 admits first, so engine-2's view of the account is one admission behind: it must conflict once
    await bus.publish(engine_stream("engine-1"), order("AAA", Side.BUY, 1, coid="warm"))
    await until_async(lambda: _terminal(first, ["warm"]), what="the first order closed")
    sells = [order("BBB", Side.SELL, 11, limit="49.00", coid=f"s{i}") for i in range(100)]
    for i in range(0, 100, 4):  # interleaved small batches: both engines admit for the account at once
        await bus.publish_many(engine_stream("engine-2"), sells[i : i + 2])
        await bus.publish_many(engine_stream("engine-1"), sells[i + 2 : i + 4])
    ids = [s.client_order_id for s in sells]
    await until_async(lambda: _terminal(first, ids), timeout=30, what="every order closed")
    for h in harnesses:
        await h.quiet()
    records = await first.store.get_orders(ids)
    statuses = [r.order.status for r in records.values()]
    assert statuses.count(OrderStatus.FILLED) == 90
    assert statuses.count(OrderStatus.REJECTED) == 10
    assert second.engine.state.counters.contended_turns >= 1
    if fresh_attempts == 0:
        assert second.engine.state.counters.locked_admissions == second.engine.state.counters.contended_turns
    else:  # overtaken by engine-1 (whose name sorts first): engine-2 forwards the account's orders to it
        assert second.engine.state.counters.forwarded > 0
        assert first.engine.state.counters.forwarded == 0
    assert first.engine.state.counters.admitted + second.engine.state.counters.admitted == 91  # once each
    assert sum(h.venue.fills for h in harnesses if h.venue is not None) == 91
    positions = {p.position.symbol: p.position.quantity for p in await first.store.positions("default")}
    assert positions == {"AAA": D(1), "BBB": D(-990)}
    assert await verify(first.store, "default") == []
    for h in harnesses:
        await h.stop()
    await bus.close()


async def test_forwarded_orders_the_other_engine_never_admits_are_admitted_by_the_forwarder(
    tmp_path: Path, pg_database: str, pg_schema: str
) -> None:
    """engine-2, overtaken on the account by engine-1, forwards the account's orders to engine-1, which has
    crashed: after ``forward_timeout_ms`` engine-2 admits them itself, each once; engine-1, restarted, finds them
    in the ledger and executes none of them again."""
    bus = MemoryTransport()
    database = DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=4)
    first, second = (
        EngineHarness(
            settings_for(tmp_path / name, name=name, database=database, execution={"forward_timeout_ms": 200}),
            bus,
        )
        for name in ("engine-1", "engine-2")
    )
    for h in (first, second):
        await h.start()
        await h.ticks(tick("AAA", 100.0))
    assert first.engine is not None
    assert second.engine is not None
    assert second.store is not None
    await bus.publish(engine_stream("engine-1"), order("AAA", Side.BUY, 1, coid="warm"))
    await until_async(lambda: _terminal(first, ["warm"]), what="engine-1 admitted first")
    await bus.publish(engine_stream("engine-2"), order("AAA", Side.BUY, 1, coid="overtaken"))
    await until_async(lambda: _terminal(second, ["overtaken"]), what="engine-2 admitted after a conflict")
    assert second.engine.state.counters.contended_turns >= 1
    await first.crash()
    ids = [f"f{i}" for i in range(6)]
    await bus.publish_many(engine_stream("engine-2"), [order("AAA", Side.BUY, 2, coid=c) for c in ids])
    await until_async(lambda: _terminal(second, ids), timeout=10, what="the forwarded orders closed")
    counters = second.engine.state.counters
    assert counters.forwarded == len(ids)
    assert counters.forward_fallbacks == len(ids)
    records = await second.store.get_orders(ids)
    assert {r.order.status for r in records.values()} == {OrderStatus.FILLED}
    assert {r.engine for r in records.values()} == {"engine-2"}
    await second.quiet()
    await first.start()  # reads what was forwarded to it while it was down: all in the ledger already
    await first.ticks(tick("AAA", 100.0))
    await first.quiet()
    assert first.venue is not None
    assert first.venue.fills == 0  # a new venue journal replay: nothing of the forwarded orders executed there
    assert first.engine is not None
    assert first.engine.state.counters.duplicates >= len(ids)
    assert await verify(second.store, "default") == []
    (position,) = await second.store.positions("default")
    assert position.position.quantity == 1 + 1 + 2 * len(ids)
    for h in (first, second):
        await h.stop()
    await bus.close()


async def _terminal(h: EngineHarness, ids: list[str]) -> bool:
    assert h.store is not None
    records = await h.store.get_orders(ids)
    return len(records) == len(ids) and all(r.order.is_terminal for r in records.values())
