"""The trading service against a real engine with the simulated exchange, real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.integration.api.trading_fixtures import Trading, open_trading, trading, wait_marks
from tests.support.engine import EngineHarness, settings_for, tick, until_async
from tradepulse.api.trading_models import OrderRequest, RebalanceRequest
from tradepulse.api.trading_service import Conflict, InvalidRequest, NotFound, TradingService
from tradepulse.bus import MemoryTransport
from tradepulse.client import OrderClient
from tradepulse.domain import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradepulse.portfolio.ledger import verify
from tradepulse.storage.ledger_sqlite import SqliteLedgerStore

__all__ = ["trading"]
D = Decimal
B = "acct-b"


def req(coid: str, qty: str = "10", side: Side = Side.BUY, symbol: str = "AAA", **kw: object) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol=symbol, side=side, quantity=qty, **kw)  # type: ignore[arg-type]


async def test_submit_is_idempotent_by_client_order_id_and_bound_to_its_account(trading: Trading) -> None:
    svc = trading.service
    status, first = await svc.submit(req("m-1"), "default")
    assert status == 201
    assert first.outcome == "created"
    assert first.order.status is OrderStatus.FILLED
    assert [f.quantity for f in first.fills] == [D(10)]
    assert first.order.avg_fill_price == D("100.01")
    status, again = await svc.submit(req("m-1", qty="99"), "default")
    assert status == 200
    assert again.outcome == "existing"
    assert again.order.quantity == D(10)
    assert again.order.status is OrderStatus.FILLED
    with pytest.raises(Conflict) as conflict:
        await svc.submit(req("m-1"), B)
    assert conflict.value.field == "body.client_order_id"
    await trading.harness.quiet()
    assert trading.harness.venue is not None
    assert trading.harness.venue.fills == 1
    assert [f.fill_id for f in await trading.store.fills(client_order_ids=["m-1"])] == [f.fill_id for f in first.fills]
    assert await verify(trading.store, "default") == []


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"symbol": "ZZZ"}, "body.symbol"),
        ({"qty": "1.5"}, "body.quantity"),
        ({"qty": "0"}, "body.quantity"),
        ({"qty": "-3"}, "body.quantity"),
        ({"qty": "NaN"}, "body.quantity"),
        ({"qty": "Infinity"}, "body.quantity"),
        ({"qty": "1e308"}, "body.quantity"),
        ({"qty": "1.000000000000000000000000000000000000001"}, "body.quantity"),
        ({"order_type": OrderType.LIMIT, "limit_price": "100.005"}, "body.limit_price"),
        ({"order_type": OrderType.LIMIT}, "body.limit_price"),
        ({"limit_price": "100.00"}, "body.limit_price"),
        ({"time_in_force": TimeInForce.GTC}, "body.time_in_force"),
        ({"coid": "bad id with spaces"}, "body.client_order_id"),
    ],
)
async def test_invalid_orders_are_422_with_the_field_and_never_published(
    trading: Trading, kw: dict[str, object], field: str
) -> None:
    args = {"coid": "bad-1", "qty": "10", **kw}
    with pytest.raises(InvalidRequest) as err:
        await trading.service.submit(req(**args), "default")  # type: ignore[arg-type]
    assert err.value.field == field
    assert err.value.status == 422
    assert await trading.store.orders() == []
    assert trading.harness.engine is not None


async def test_a_risk_rejection_is_a_created_order_with_its_reason(trading: Trading) -> None:
    status, answer = await trading.service.submit(req("big-1", qty="6000"), "default")
    assert status == 201
    assert answer.order.status is OrderStatus.REJECTED
    assert answer.order.reject_reason is RejectReason.MAX_POSITION
    assert answer.fills == []


async def test_resting_orders_list_get_and_cancel_per_account(trading: Trading) -> None:
    svc = trading.service
    limit = {"order_type": OrderType.LIMIT, "limit_price": "95.00", "time_in_force": TimeInForce.GTC}
    status, resting = await svc.submit(req("l-1", **limit), "default")
    assert status == 201
    assert resting.order.status is OrderStatus.ACCEPTED
    await svc.submit(req("l-b", **limit), B)
    await trading.harness.quiet()
    assert (await svc.get("l-1", "default")).order.status is OrderStatus.ACCEPTED
    with pytest.raises(NotFound):
        await svc.get("l-1", B)
    with pytest.raises(NotFound):
        await svc.cancel("l-1", B)
    page = await svc.list_orders("default", status=[OrderStatus.ACCEPTED])
    assert [o.order_id for o in page.orders] == ["l-1"]
    assert page.next is None
    status, canceled = await svc.cancel("l-1", "default")
    assert status == 200
    assert canceled.order.status is OrderStatus.CANCELED
    await trading.harness.quiet()
    with pytest.raises(Conflict):
        await svc.cancel("l-1", "default")
    assert (await svc.get("l-b", B)).order.status is OrderStatus.ACCEPTED


async def test_pagination_walks_every_order_once_and_filters(trading: Trading) -> None:
    svc = trading.service
    ids = []
    for i in range(13):
        side = Side.BUY if i % 3 else Side.SELL
        symbol = "AAA" if i % 2 else "BBB"
        await svc.submit(req(f"p-{i:02d}", qty="1", side=side, symbol=symbol), "default")
        ids.append(f"p-{i:02d}")
    await svc.submit(req("p-b", qty="1"), B)
    await trading.harness.quiet()
    for order in ("asc", "desc"):
        seen: list[str] = []
        cursor = None
        while True:
            page = await svc.list_orders("default", limit=4, cursor=cursor, order=order)  # type: ignore[arg-type]
            seen.extend(o.order_id for o in page.orders)
            if page.next is None:
                break
            cursor = page.next
        assert sorted(seen) == ids
        assert len(seen) == len(set(seen))
    sells = await svc.list_orders("default", side=Side.SELL, symbol="BBB")
    assert sorted(o.order_id for o in sells.orders) == ["p-00", "p-06", "p-12"]
    fills: list[str] = []
    cursor = None
    while True:
        fpage = await svc.list_fills("default", limit=5, cursor=cursor)
        fills.extend(f.order_id for f in fpage.fills)
        if fpage.next is None:
            break
        cursor = fpage.next
    assert sorted(fills) == ids
    assert [f.order_id for f in (await svc.list_fills(B)).fills] == ["p-b"]
    assert [f.order_id for f in await svc.order_fills("p-03", "default")] == ["p-03"]
    with pytest.raises(InvalidRequest) as bad:
        await svc.list_orders("default", cursor="not-a-cursor")
    assert bad.value.field == "query.cursor"
    with pytest.raises(InvalidRequest):
        await svc.list_orders("default", limit=501)


async def test_positions_and_account_are_exact_at_the_marks(trading: Trading) -> None:
    svc = trading.service
    await svc.submit(req("a-1", qty="10"), "default")
    await svc.submit(req("a-2", qty="4", side=Side.SELL), "default")
    await trading.harness.quiet()
    await wait_marks(trading.store)
    marks = await trading.store.marks()
    (aaa,) = [p for p in await svc.positions("default") if p.symbol == "AAA"]
    assert aaa.quantity == D(6)
    assert aaa.mark == marks["AAA"]
    assert aaa.market_value == D(6) * marks["AAA"]
    assert aaa.unrealized_pnl == aaa.market_value - aaa.cost_basis
    assert (await svc.position("AAA", "default")) == aaa
    flat = await svc.position("BBB", "default")
    assert flat.quantity == 0
    with pytest.raises(NotFound):
        await svc.position("ZZZ", "default")
    account = await svc.account("default")
    fills = await trading.store.fills(account_id="default")
    cash = D(1_000_000) - sum((f.price * f.quantity * (1 if f.side is Side.BUY else -1) + f.fee for f in fills), D(0))
    assert account.cash == cash
    assert account.fees == sum((f.fee for f in fills), D(0))
    assert account.positions_value == aaa.market_value
    assert account.equity == account.cash + aaa.market_value
    assert account.positions == 1
    assert msgspec.json.decode(msgspec.json.encode(account))["cash"] == str(cash)
    assert (await svc.account(B)).cash == D(1_000_000)


async def test_rebalance_preview_execute_and_replay_never_double_trades(trading: Trading) -> None:
    svc = trading.service
    await svc.submit(req("r-seed", qty="100"), "default")  # 100 AAA ~ 10,000
    await trading.harness.quiet()
    await wait_marks(trading.store)
    targets = {"AAA": "0.005", "BBB": "0.01"}
    preview = await svc.preview(RebalanceRequest(targets=targets, rebalance_id="rb1"), "default")
    sides = {(o.side, o.symbol) for o in preview.orders}
    assert sides == {(Side.SELL, "AAA"), (Side.BUY, "BBB")}
    assert {o.client_order_id for o in preview.orders} == {"rb-rb1-S-AAA", "rb-rb1-B-BBB"}
    status, done = await svc.execute(RebalanceRequest(targets=targets, rebalance_id="rb1"), "default")
    assert status == 200
    assert done.outcome == "executed"
    assert done.failed == 0
    assert {o.order_id for o in done.orders} == {"rb-rb1-S-AAA", "rb-rb1-B-BBB"}
    assert all(o.status is OrderStatus.FILLED for o in done.orders)
    await trading.harness.quiet()
    positions = {p.symbol: p.quantity for p in await svc.positions("default")}
    planned = {p.symbol: p.quantity_after for p in preview.positions}
    assert positions == planned
    venue = trading.harness.venue
    assert venue is not None
    fills_before = venue.fills
    status, replay = await svc.execute(RebalanceRequest(targets={"AAA": "0.9"}, rebalance_id="rb1"), "default")
    assert status == 200
    assert replay.outcome == "replayed"
    assert {o.order_id for o in replay.orders} == {"rb-rb1-S-AAA", "rb-rb1-B-BBB"}
    await trading.harness.quiet()
    assert venue.fills == fills_before
    assert {p.symbol: p.quantity for p in await svc.positions("default")} == planned
    with pytest.raises(Conflict):
        await svc.execute(RebalanceRequest(targets=targets, rebalance_id="rb1"), B)
    with pytest.raises(InvalidRequest) as missing:
        await svc.execute(RebalanceRequest(targets=targets), "default")
    assert missing.value.field == "body.rebalance_id"
    with pytest.raises(InvalidRequest) as unknown:
        await svc.preview(RebalanceRequest(targets={"ZZZ": "0.1"}), "default")
    assert unknown.value.field == "body.targets.ZZZ"
    with pytest.raises(InvalidRequest) as over:
        await svc.preview(RebalanceRequest(targets={"AAA": "0.7", "BBB": "0.7"}), "default")
    assert over.value.field is not None
    assert await verify(trading.store, "default") == []


async def _until_terminal_in_ledger(trading: Trading, coid: str) -> None:
    async def final() -> bool:
        rec = (await trading.store.get_orders([coid])).get(coid)
        return rec is not None and rec.order.is_terminal

    await until_async(final, 20, f"the pending order {coid} ended after the engine restarted")


async def test_no_answer_in_time_is_pending_and_the_order_ends_later(trading: Trading) -> None:
    await trading.harness.crash()
    svc = TradingService.create(trading.settings, trading.store, trading.client, timeout_s=0.3)
    status, pending = await svc.submit(req("late-1"), "default")
    assert status == 202
    assert pending.outcome == "pending"
    assert pending.order.status is OrderStatus.NEW
    await trading.harness.start()
    await trading.harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))

    await _until_terminal_in_ledger(trading, "late-1")
    status, existing = await svc.submit(req("late-1"), "default")
    assert status == 200
    assert existing.outcome == "existing"
    stored = (await trading.store.get_orders(["late-1"]))["late-1"].order
    # the restarted engine handled it once (filled, or rejected if it came before the first tick)
    assert existing.order.status is stored.status
    assert existing.order.status in (OrderStatus.FILLED, OrderStatus.REJECTED)
    assert len(await trading.store.fills(client_order_ids=["late-1"])) == (stored.status is OrderStatus.FILLED)


async def test_an_order_valid_for_less_than_the_outage_is_rejected_stale_when_an_engine_returns(
    trading: Trading,
) -> None:
    await trading.harness.crash()
    svc = TradingService.create(trading.settings, trading.store, trading.client, timeout_s=0.3)
    status, pending = await svc.submit(req("stale-1", valid_for_ms=200), "default")
    assert status == 202
    assert pending.outcome == "pending"
    await asyncio.sleep(0.3)  # the 200 ms pass with no engine reading
    await trading.harness.start()
    await trading.harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))

    await _until_terminal_in_ledger(trading, "stale-1")
    status, existing = await svc.submit(req("stale-1", valid_for_ms=200), "default")
    assert status == 200
    assert existing.order.status is OrderStatus.REJECTED
    assert existing.order.reject_reason is RejectReason.STALE_ORDER
    assert await trading.store.fills(client_order_ids=["stale-1"]) == []
    status, fresh = await svc.submit(req("stale-2", valid_for_ms=5_000), "default")
    assert status == 201
    assert fresh.order.status is OrderStatus.FILLED


async def test_rebalance_to_target_quantities(trading: Trading) -> None:
    svc = trading.service
    await svc.submit(req("q-seed", qty="100"), "default")
    await trading.harness.quiet()
    await wait_marks(trading.store)
    ask = RebalanceRequest(targets={"AAA": "40", "BBB": "25"}, target_unit="quantity", rebalance_id="q1")
    preview = await svc.preview(ask, "default")
    assert {(o.side, o.symbol, o.quantity) for o in preview.orders} == {
        (Side.SELL, "AAA", D(60)),
        (Side.BUY, "BBB", D(25)),
    }
    status, done = await svc.execute(ask, "default")
    assert status == 200
    assert done.failed == 0
    await trading.harness.quiet()
    assert {p.symbol: p.quantity for p in await svc.positions("default")} == {"AAA": D(40), "BBB": D(25)}
    for bad, field in (
        (RebalanceRequest(targets={"AAA": "1.5"}, target_unit="quantity"), "body.targets.AAA"),
        (RebalanceRequest(targets={"AAA": "-1"}, target_unit="quantity"), "body.targets.AAA"),
        (RebalanceRequest(targets={"AAA": "1000000000"}, target_unit="quantity"), "body.targets.AAA"),
        (RebalanceRequest(targets={"AAA": "x"}, target_unit="quantity"), "body.targets.AAA"),
    ):
        with pytest.raises(InvalidRequest) as err:
            await svc.preview(bad, "default")
        assert err.value.field == field, (bad, err.value)


async def test_concurrent_submits_of_one_id_by_two_accounts_never_both_succeed(trading: Trading) -> None:
    svc = trading.service
    for i in range(8):
        coid = f"race-{i}"
        results = await asyncio.gather(
            svc.submit(req(coid), "default"), svc.submit(req(coid), B), return_exceptions=True
        )
        statuses = sorted(409 if isinstance(r, Conflict) else r[0] for r in results)  # type: ignore[index]
        assert statuses in ([201, 409], [200, 409]), results
        (record,) = (await trading.store.get_orders([coid])).values()
        winner = 0 if record.order.account_id == "default" else 1
        won = results[winner]
        assert not isinstance(won, BaseException)
        assert won[1].order.account_id == record.order.account_id
        assert isinstance(results[1 - winner], Conflict)
    await trading.harness.quiet()
    assert trading.harness.venue is not None
    assert trading.harness.venue.fills == 8


async def test_the_service_over_the_embedded_sqlite_ledger(tmp_path: Path) -> None:
    """The embedded mode: in-process bus, SQLite ledger (the engine's and the service's own connection)."""
    bus = MemoryTransport()
    settings = settings_for(tmp_path, risk={"accounts": ("default", B)})
    harness = EngineHarness(settings, bus)
    await harness.start()
    await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
    store = SqliteLedgerStore(settings.database.sqlite_path)
    await store.open()
    client = OrderClient(bus, partitions=settings.bus.order_partitions, block_ms=100)
    await client.start()
    svc = TradingService.create(settings, store, client)
    try:
        for i in range(5):
            status, _ = await svc.submit(req(f"s-{i}", qty="2"), "default")
            assert status == 201
        assert (await svc.submit(req("s-0"), "default"))[0] == 200
        with pytest.raises(Conflict):
            await svc.submit(req("s-0"), B)
        await harness.quiet()
        first = await svc.list_orders("default", limit=3)
        assert first.next is not None
        rest = await svc.list_orders("default", limit=3, cursor=first.next)
        assert [o.order_id for o in first.orders + rest.orders] == [f"s-{i}" for i in range(5)]
        assert rest.next is None
        fills = await svc.list_fills("default", order="desc")
        assert sorted(f.order_id for f in fills.fills) == [f"s-{i}" for i in range(5)]
        account = await svc.account("default")
        assert account.cash == D(10_000_000) - sum((D(f.price) * f.quantity + f.fee for f in fills.fills), D(0))
        assert (await svc.position("AAA", "default")).quantity == D(10)
        assert await verify(store, "default") == []
    finally:
        await client.close()
        await harness.stop()
        await store.close()
        await bus.close()


async def test_a_cancel_without_an_engine_answer_is_pending_then_done(trading: Trading) -> None:
    limit = {"order_type": OrderType.LIMIT, "limit_price": "95.00", "time_in_force": TimeInForce.GTC}
    status, _ = await trading.service.submit(req("cx-1", **limit), "default")
    assert status == 201
    await trading.harness.quiet()
    await trading.harness.crash()
    svc = TradingService.create(trading.settings, trading.store, trading.client, timeout_s=0.3)
    status, pending = await svc.cancel("cx-1", "default")
    assert status == 202
    assert pending.outcome == "pending"
    assert pending.order.status is OrderStatus.ACCEPTED
    await trading.harness.start()  # the restarted engine takes the cancel from the stream

    async def canceled() -> bool:
        return (await svc.get("cx-1", "default")).order.status is OrderStatus.CANCELED

    await until_async(canceled, 20, "the cancel was carried out after the restart")
    got = await svc.get("cx-1", "default")
    assert got.outcome == "current"


async def test_a_created_order_costs_no_ledger_lookup_when_its_reports_name_its_account(trading: Trading) -> None:
    svc = trading.service
    store = trading.store
    looked_up: list[list[str]] = []
    get_orders = store.get_orders

    async def counting(ids: list[str]) -> object:
        looked_up.append(list(ids))
        return await get_orders(ids)

    store.get_orders = counting  # type: ignore[method-assign]
    try:
        status, created = await svc.submit(req("one-1"), "default")
    finally:
        del store.get_orders
    assert status == 201
    assert created.order.status is OrderStatus.FILLED
    # no duplicate check before submitting (the engine answers a repeated id); the reports named "default",
    # so no owner lookup after either
    assert looked_up == []


async def test_a_repeated_id_waits_as_its_stored_order_not_as_the_repeated_request(trading: Trading) -> None:
    """A resting LIMIT GTC order repeated as a MARKET request: the engine's answer (the resting order) ends the
    wait at once (200, existing), although a MARKET request alone would be awaited until final."""
    limit = {"order_type": OrderType.LIMIT, "limit_price": "95.00", "time_in_force": TimeInForce.GTC}
    status, _ = await trading.service.submit(req("rest-1", **limit), "default")
    assert status == 201
    await trading.harness.quiet()
    svc = TradingService.create(trading.settings, trading.store, trading.client, timeout_s=3.0)
    store = trading.store
    looked_up: list[list[str]] = []
    get_orders = store.get_orders

    async def counting(ids: list[str]) -> object:
        looked_up.append(list(ids))
        return await get_orders(ids)

    store.get_orders = counting  # type: ignore[method-assign]
    try:
        status, again = await svc.submit(req("rest-1", qty="20"), "default")
    finally:
        del store.get_orders
    assert looked_up == []  # the engine's answer ended the wait (no timeout, so no ledger lookup for pending)
    assert status == 200
    assert again.outcome == "existing"
    assert again.order.status is OrderStatus.ACCEPTED
    assert again.order.order_type is OrderType.LIMIT
    assert again.order.quantity == D(10)
    with pytest.raises(Conflict):
        await svc.submit(req("rest-1"), B)
    assert (await svc.get("rest-1", "default")).order.status is OrderStatus.ACCEPTED


async def test_a_repeated_id_without_an_engine_answer_is_existing_from_the_ledger(trading: Trading) -> None:
    status, first = await trading.service.submit(req("gone-1"), "default")
    assert status == 201
    assert first.order.status is OrderStatus.FILLED
    await trading.harness.quiet()
    await trading.harness.crash()
    svc = TradingService.create(trading.settings, trading.store, trading.client, timeout_s=0.3)
    status, again = await svc.submit(req("gone-1"), "default")
    assert status == 200
    assert again.outcome == "existing"
    assert again.order.status is OrderStatus.FILLED
    assert [f.fill_id for f in again.fills] == [f.fill_id for f in first.fills]
    with pytest.raises(Conflict):
        await svc.submit(req("gone-1"), B)
    status, new = await svc.submit(req("gone-2"), "default")
    assert status == 202
    assert new.outcome == "pending"
    await trading.harness.start()  # the restarted engine takes gone-2 from the stream

    async def final() -> bool:
        rec = (await trading.store.get_orders(["gone-2"])).get("gone-2")
        return rec is not None and rec.order.is_terminal

    await until_async(final, 20, "the pending order ended after the engine restarted")


async def test_positions_and_account_share_one_cached_summary_dropped_by_the_accounts_order_events(
    trading: Trading,
) -> None:
    await trading.service.submit(req("s-1", qty="10"), "default")
    await trading.harness.quiet()
    svc = TradingService.create(trading.settings, trading.store, trading.client)
    svc.summary_ttl_s = 3600.0  # no expiry within the test: only order events drop the entry
    svc.summary_quiet_s = 3600.0  # after an event of the account, no caching for the rest of the test
    store = trading.store
    reads: list[str] = []
    account_of = store.account

    async def counting(account_id: str) -> object:
        reads.append(account_id)
        return await account_of(account_id)

    store.account = counting  # type: ignore[method-assign]
    try:
        together = await asyncio.gather(*(svc.positions("default") for _ in range(5)))
        assert reads == ["default"]  # one read for concurrent requests
        assert all(p == together[0] for p in together)
        assert (await svc.account("default")).positions == 1
        assert (await svc.position("AAA", "default")).quantity == D(10)
        assert reads == ["default"]  # cached
        await svc.account(B)
        assert reads == ["default", B]  # per account
        # another account's order event leaves "default" cached; its own drops it, and none is cached after it
        status, _ = await svc.submit(req("s-b", qty="1"), B)
        assert status == 201
        await svc.positions("default")
        assert reads == ["default", B]
        status, _ = await svc.submit(req("s-2", qty="5"), "default")
        assert status == 201
        await trading.harness.quiet()
        assert (await svc.position("AAA", "default")).quantity == D(15)
        assert (await svc.position("AAA", "default")).quantity == D(15)
        assert reads == ["default", B, "default", "default"]
    finally:
        del store.account


async def test_reads_wait_until_the_ledger_has_booked_what_was_reported(
    tmp_path: Path, pg_database: str, pg_schema: str
) -> None:
    """The engine books fills a moment after it reports them (here up to 400 ms: a slow booker); a GET after a
    FILLED answer still shows the order filled, its fill and the position (read-your-writes)."""
    async with open_trading(tmp_path, pg_database, pg_schema, execution={"book_interval_ms": 400.0}) as trading:
        svc = trading.service
        impatient = TradingService.create(trading.settings, trading.store, trading.client, timeout_s=5.0)
        impatient.booking_wait_s = 0.0
        assert (await svc.submit(req("rw-1", qty="3"), "default"))[1].order.status is OrderStatus.FILLED
        # the booker books rw-1 at once, then pauses 400 ms: rw-2's fill waits for the next booking
        status, second = await svc.submit(req("rw-2", qty="4"), "default")
        assert (status, second.order.status) == (201, OrderStatus.FILLED)
        booked_now = await impatient.get("rw-2", "default")  # what the ledger has this instant
        assert booked_now.order.status is not OrderStatus.FILLED
        assert booked_now.fills == []
        got = await svc.get("rw-2", "default")
        assert got.order.status is OrderStatus.FILLED
        assert [f.fill_id for f in got.fills] == [f.fill_id for f in second.fills]
        assert (await svc.position("AAA", "default")).quantity == D(7)
        assert [f.order_id for f in (await svc.list_fills("default")).fills] == ["rw-1", "rw-2"]
