"""One contract for both ledger stores (SQLite and PostgreSQL): admission, booking, idempotency, exact money."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest

from tests.integration.ledger_fixtures import store, store_factory
from tradepulse.domain import (
    Fill,
    Order,
    OrderAccepted,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    RejectReason,
    Side,
    SubmitOrder,
    TradingState,
)
from tradepulse.portfolio.ledger import BookItem, Ledger, verify
from tradepulse.storage.ledger_store import DuplicateFill, FillQuery, LedgerStore, OrderQuery, OrderRecord

__all__ = ["store", "store_factory"]
D = Decimal
#: the chain of admissions each test follows: after admission n, an account's last admission is (n, TOKENS[n - 1])
TOKENS = [f"t{n}" for n in range(10)]
SEQ = [(0, ""), *((n, TOKENS[n - 1]) for n in range(1, 10))]


def record(coid: str, side: Side = Side.BUY, qty: str = "10", *, status: OrderStatus = OrderStatus.NEW) -> OrderRecord:
    order = Order.from_submit(
        SubmitOrder(client_order_id=coid, symbol="AAA", side=side, quantity=D(qty), ts_ns=1), now_ns=1
    )
    if status is OrderStatus.REJECTED:
        order = Order(
            **{
                **{f: getattr(order, f) for f in order.__struct_fields__},
                "status": status,
                "reject_reason": RejectReason.MAX_POSITION,
            }
        )
    return OrderRecord(order=order, reserve_price=D("100.05"), engine="e1", venue="sim:e1")


def fill(coid: str, n: int, qty: str, price: str, side: Side = Side.BUY, fee: str = "0.01") -> Fill:
    return Fill(
        fill_id=f"{coid}-f{n}",
        client_order_id=coid,
        symbol="AAA",
        side=side,
        price=D(price),
        quantity=D(qty),
        fee=D(fee),
        ts_exchange_ns=n,
    )


async def test_accounts_are_created_once(store: LedgerStore) -> None:
    await store.ensure_accounts(["a", "b"], D("1000.50"), "USD")
    await store.ensure_accounts(["a"], D(5), "USD")
    snap = await store.snapshot(["a", "b", "missing"])
    assert set(snap) == {"a", "b"}
    assert snap["a"].account.cash == D("1000.50")
    assert snap["a"].seq == 0


async def test_admission_writes_orders_and_reservations_once(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(100_000), "USD")
    result = await store.admit(
        [record("o1"), record("o2", Side.SELL, "5"), record("r1", status=OrderStatus.REJECTED)],
        {"default": SEQ[0]},
        {"default": TOKENS[0]},
    )
    assert result.ok
    assert result.inserted == {"o1", "o2", "r1"}
    assert result.seqs == {"default": 1}
    snap = (await store.snapshot(["default"]))["default"]
    assert snap.seq == 1
    reserved = snap.reserved["AAA"]
    assert (reserved.buy_qty, reserved.sell_qty) == (D(10), D(5))
    assert (reserved.buy_notional, reserved.sell_notional) == (D("1000.50"), D("500.25"))
    # a duplicate is neither inserted nor reserved again; a new one in the same batch is
    again = await store.admit([record("o1"), record("o3")], {"default": SEQ[1]}, {"default": TOKENS[1]})
    assert again.ok
    assert again.inserted == {"o3"}
    snap = (await store.snapshot(["default"]))["default"]
    assert snap.reserved["AAA"].buy_qty == D(20)
    orders = await store.get_orders(["o1", "r1", "nope"])
    assert set(orders) == {"o1", "r1"}
    assert orders["r1"].order.reject_reason is RejectReason.MAX_POSITION
    assert orders["o1"].reserve_price == D("100.05")
    assert [r.order.client_order_id for r in await store.open_orders("sim:e1")] == ["o1", "o2", "o3"]
    assert await store.open_orders("sim:other") == []


async def test_a_stale_admission_sequence_writes_nothing(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(100_000), "USD")
    assert (await store.admit([record("o1")], {"default": SEQ[0]}, {"default": TOKENS[0]})).ok
    stale = await store.admit([record("o2")], {"default": SEQ[0]}, {"default": TOKENS[0]})
    assert not stale.ok
    assert await store.get_orders(["o2"]) == {}
    assert (await store.snapshot(["default"]))["default"].reserved["AAA"].buy_qty == D(10)


async def test_concurrent_admissions_with_the_same_sequence_admit_exactly_one(
    store_factory: Callable[[], LedgerStore],
) -> None:
    stores = [store_factory() for _ in range(3)]
    for s in stores:
        await s.open()
    await stores[0].ensure_accounts(["default"], D(100_000), "USD")
    results = await asyncio.gather(
        *(s.admit([record(f"race{i}")], {"default": SEQ[0]}, {"default": TOKENS[0]}) for i, s in enumerate(stores))
    )
    assert sorted(r.ok for r in results) == [False, False, True]


async def test_a_stale_admission_asked_for_fresh_state_returns_the_state_that_overtook_it(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D("100000.25"), "USD")
    first = await store.admit([record("o1", qty="7")], {"default": SEQ[0]}, {"default": TOKENS[0]}, fresh=True)
    assert first.ok
    assert first.snapshots == {}
    stale = await store.admit([record("o2")], {"default": SEQ[0]}, {"default": "late"}, fresh=True)
    assert not stale.ok
    assert stale.inserted == frozenset()
    snap = stale.snapshots["default"]
    assert (snap.seq, snap.token) == SEQ[1]
    assert snap.account.cash == D("100000.25")
    assert snap.reserved["AAA"].buy_qty == D(7)
    assert snap == (await store.snapshot(["default"]))["default"]
    assert await store.get_orders(["o2"]) == {}
    retried = await store.admit([record("o2")], {"default": (snap.seq, snap.token)}, {"default": TOKENS[1]})
    assert retried.ok
    assert retried.inserted == {"o2"}


async def test_racing_admissions_asked_for_fresh_state_see_the_winner(
    store_factory: Callable[[], LedgerStore],
) -> None:
    """Whether a loser's statement started before or after the winner committed, it sees the winner's state."""
    stores = [store_factory() for _ in range(4)]
    for s in stores:
        await s.open()
    await stores[0].ensure_accounts(["default"], D(100_000), "USD")
    for n in range(5):
        seq = (await stores[0].snapshot(["default"]))["default"]
        results = await asyncio.gather(
            *(
                s.admit([record(f"r{n}-{i}")], {"default": (seq.seq, seq.token)}, {"default": f"{n}-{i}"}, fresh=True)
                for i, s in enumerate(stores)
            )
        )
        winners = [i for i, r in enumerate(results) if r.ok]
        assert len(winners) == 1
        for r in results:
            if not r.ok:
                assert (r.snapshots["default"].seq, r.snapshots["default"].token) == (seq.seq + 1, f"{n}-{winners[0]}")
                assert r.snapshots["default"].reserved["AAA"].buy_qty == D(10) * (n + 1)


async def test_an_admission_under_the_lock_reads_fresh_state_and_commits(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D("100000.25"), "USD")
    await store.admit([record("o1", qty="7")], {"default": SEQ[0]}, {"default": TOKENS[0]})
    async with store.admission_lock(["default", "missing"]) as tx:
        snap = tx.snapshots["default"]
        assert set(tx.snapshots) == {"default"}
        assert (snap.seq, snap.token) == SEQ[1]
        assert snap.account.cash == D("100000.25")
        assert snap.reserved["AAA"].buy_qty == D(7)
        assert snap.reserved["AAA"].buy_notional == D(7) * D("100.05")
        result = await tx.admit([record("o2", Side.SELL, "2.5")], {"default": SEQ[1]}, {"default": TOKENS[1]})
        assert result.ok
        assert result.inserted == {"o2"}
    after = (await store.snapshot(["default"]))["default"]
    assert (after.seq, after.token) == SEQ[2]
    assert after.reserved["AAA"].sell_qty == D("2.5")
    assert after == (await store.snapshot(["default"]))["default"]  # the one-statement snapshot is stable


async def test_a_failure_under_the_admission_lock_writes_nothing(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(100_000), "USD")

    async def admit_then_fail() -> None:
        async with store.admission_lock(["default"]) as tx:
            await tx.admit([record("o1")], {"default": SEQ[0]}, {"default": TOKENS[0]})
            raise RuntimeError("decided otherwise")

    with pytest.raises(RuntimeError, match="decided otherwise"):
        await admit_then_fail()
    if store.backend == "postgres":  # SQLite commits each admit: its lock is the sequence check alone
        assert await store.get_orders(["o1"]) == {}
        assert (await store.snapshot(["default"]))["default"].seq == 0


async def test_the_admission_lock_makes_other_engines_wait_and_then_follow(
    store_factory: Callable[[], LedgerStore],
) -> None:
    first, second = store_factory(), store_factory()
    await first.open()
    await second.open()
    await first.ensure_accounts(["default"], D(100_000), "USD")
    async with first.admission_lock(["default"]) as tx:
        if first.backend == "postgres":
            # another engine's optimistic admission, following the same state, waits for the lock, then fails
            racing = asyncio.ensure_future(
                second.admit([record("other")], {"default": SEQ[0]}, {"default": "other-token"})
            )
            await asyncio.sleep(0.2)
            assert not racing.done()
        assert (await tx.admit([record("mine")], {"default": SEQ[0]}, {"default": TOKENS[0]})).ok
    if first.backend == "postgres":
        assert not (await racing).ok
    # the other engine then takes the lock itself and sees the admission it waited for
    async with second.admission_lock(["default"]) as tx2:
        assert (tx2.snapshots["default"].seq, tx2.snapshots["default"].token) == SEQ[1]
        assert (await tx2.admit([record("other")], {"default": SEQ[1]}, {"default": TOKENS[1]})).ok
    assert set(await first.get_orders(["mine", "other"])) == {"mine", "other"}


async def test_booking_moves_positions_and_cash_exactly_and_each_fill_once(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(10_000), "USD")
    await store.admit(
        [record("o1", qty="3"), record("o2", Side.SELL, "2")], {"default": SEQ[0]}, {"default": TOKENS[0]}
    )
    ledger = Ledger(store)
    o1 = (await store.get_orders(["o1"]))["o1"].order.apply(OrderAccepted(client_order_id="o1"))
    f1, f2 = fill("o1", 1, "1", "0.10"), fill("o1", 2, "2", "0.20")
    o1 = o1.apply(OrderPartiallyFilled(client_order_id="o1", fill=f1)).apply(OrderFilled(client_order_id="o1", fill=f2))
    await ledger.book([BookItem(order=o1, reserve_price=D("100.05"), fills=[f1, f2])])
    positions = await store.positions("default")
    assert positions[0].position.quantity == D(3)
    assert positions[0].position.cost_basis == D("0.50")
    assert positions[0].released.buy_qty == D(3)
    account = await store.account("default")
    assert account is not None
    assert account.cash == D(10_000) - D("0.50") - D("0.02")
    assert (await store.get_orders(["o1"]))["o1"].order.status is OrderStatus.FILLED
    # booking the same fill again fails whole and changes nothing
    o2 = (await store.get_orders(["o2"]))["o2"].order.apply(OrderAccepted(client_order_id="o2"))
    sell = fill("o2", 1, "2", "0.30", Side.SELL)
    o2_done = o2.apply(OrderFilled(client_order_id="o2", fill=sell))
    with pytest.raises(DuplicateFill):
        await ledger.book(
            [
                BookItem(order=o1, reserve_price=D("100.05"), fills=[f2]),
                BookItem(order=o2_done, reserve_price=D("100.05"), fills=[sell]),
            ]
        )
    assert (await store.get_orders(["o2"]))["o2"].order.status is OrderStatus.NEW
    assert await store.existing_fill_ids(["o1-f2", "o2-f1"]) == {"o1-f2"}
    await ledger.book([BookItem(order=o2_done, reserve_price=D("100.05"), fills=[sell])])
    (position,) = await store.positions("default")
    assert position.position.quantity == D(1)
    assert position.position.realized_pnl == D("0.30") * 2 - (D("0.50") / 3 * 2).quantize(D("1e-12"))
    summary = await ledger.summary("default", {"AAA": D("0.40")})
    assert summary is not None
    assert summary.realized_pnl + summary.unrealized_pnl == D("0.60") - D("0.50") + D("0.40") * 1
    assert summary.fees == D("0.03")
    assert await verify(store, "default") == []
    assert [f.fill_id for f in await store.fills(client_order_ids=["o1"])] == ["o1-f1", "o1-f2"]
    assert len(await store.fills(account_id="default")) == 3


async def test_closing_an_order_releases_its_reservation(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(10_000), "USD")
    await store.admit([record("o1", qty="10")], {"default": SEQ[0]}, {"default": TOKENS[0]})
    ledger = Ledger(store)
    order = (await store.get_orders(["o1"]))["o1"].order.apply(OrderAccepted(client_order_id="o1"))
    part = fill("o1", 1, "4", "100.00")
    order = order.apply(OrderPartiallyFilled(client_order_id="o1", fill=part))
    from tradepulse.domain import OrderCanceled

    order = order.apply(OrderCanceled(client_order_id="o1"))
    await ledger.book([BookItem(order=order, reserve_price=D("100.05"), fills=[part], release_quantity=D(6))])
    assert await verify(store, "default") == []
    snap = (await store.snapshot(["default"]))["default"]
    assert snap.reserved["AAA"].buy_qty - snap.positions["AAA"].released.buy_qty == 0
    assert await store.open_orders("sim:e1") == []


async def test_verify_finds_books_that_disagree_with_the_fills(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(10_000), "USD")
    await store.admit([record("o1", qty="1")], {"default": SEQ[0]}, {"default": TOKENS[0]})
    order = (await store.get_orders(["o1"]))["o1"].order.apply(OrderAccepted(client_order_id="o1"))
    f = fill("o1", 1, "1", "100.00")
    order = order.apply(OrderFilled(client_order_id="o1", fill=f))
    async with store.booking(["default"], [("default", "AAA")]) as tx:  # a broken booking: no cash moved
        await tx.write(fills=[f], orders=[order], positions=[], accounts=[], booked_ns=1)
    problems = await verify(store, "default")
    assert any("cash" in p for p in problems)
    assert any("position" in p for p in problems)


async def test_trading_state_persists_across_a_reopen(store_factory: Callable[[], LedgerStore]) -> None:
    first = store_factory()
    await first.open()
    assert (await first.trading_state()).state is TradingState.ACTIVE
    await first.set_trading_state(TradingState.HALTED, "drill", "admin", 42)
    await first.close()
    second = store_factory()
    await second.open()
    state = await second.trading_state()
    assert (state.state, state.reason, state.changed_by, state.changed_ns) == (
        TradingState.HALTED,
        "drill",
        "admin",
        42,
    )


async def test_marks(store: LedgerStore) -> None:
    await store.write_marks([("AAA", D("101.25"), 5), ("BBB", D("7.01"), 6)])
    await store.write_marks([("AAA", D("101.50"), 7)])
    assert await store.marks() == {"AAA": D("101.50"), "BBB": D("7.01")}


async def test_an_admission_must_follow_the_exact_last_admission(store: LedgerStore) -> None:
    await store.ensure_accounts(["default"], D(100_000), "USD")
    assert (await store.admit([record("a1")], {"default": (0, "")}, {"default": "engine-1:1"})).ok
    # another engine's admission with the right count but not the right predecessor is refused
    assert not (await store.admit([record("b1")], {"default": (1, "engine-2:7")}, {"default": "engine-2:8"})).ok
    # a pipelined follower of engine-1's admission goes through, and the chain moves on
    assert (await store.admit([record("a2")], {"default": (1, "engine-1:1")}, {"default": "engine-1:2"})).ok
    snap = (await store.snapshot(["default"]))["default"]
    assert (snap.seq, snap.token) == (2, "engine-1:2")
    assert set(await store.get_orders(["a1", "a2", "b1"])) == {"a1", "a2"}


def _order_at(coid: str, account: str, symbol: str, side: Side, created_ns: int, status: OrderStatus) -> OrderRecord:
    order = Order(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        quantity=D(1),
        account_id=account,
        status=status,
        reject_reason=RejectReason.MAX_POSITION if status is OrderStatus.REJECTED else None,
        created_ns=created_ns,
        updated_ns=created_ns,
    )
    return OrderRecord(order=order, reserve_price=D(10), engine="e1", venue="sim:e1")


async def test_orders_and_fills_page_with_filters_and_a_stable_cursor(store: LedgerStore) -> None:
    await store.ensure_accounts(["a", "b"], D(1_000_000), "USD")
    records = []
    # several orders share a created_ns, so the order id must break the tie
    for i in range(23):
        status = OrderStatus.REJECTED if i % 4 == 0 else OrderStatus.NEW
        records.append(
            _order_at(f"a{i:02d}", "a", "AAA" if i % 3 else "BBB", Side.BUY if i % 2 else Side.SELL, i // 2, status)
        )
    records.append(_order_at("b00", "b", "AAA", Side.BUY, 5, OrderStatus.NEW))
    result = await store.admit(records, {"a": SEQ[0], "b": SEQ[0]}, {"a": TOKENS[0], "b": TOKENS[0]})
    assert result.ok
    assert len(result.inserted) == 24
    everything = sorted((r.order.created_ns, r.order.client_order_id) for r in records if r.order.account_id == "a")

    for descending in (False, True):
        seen: list[tuple[int, str]] = []
        after: tuple[int, str] | None = None
        while True:
            page = await store.orders_page(OrderQuery(account_id="a", after=after, limit=5, descending=descending))
            seen.extend((r.order.created_ns, r.order.client_order_id) for r in page)
            if len(page) < 5:
                break
            after = (page[-1].order.created_ns, page[-1].order.client_order_id)
        assert seen == (everything[::-1] if descending else everything)

    rejected = await store.orders_page(OrderQuery(account_id="a", statuses=(OrderStatus.REJECTED,), limit=100))
    assert [r.order.client_order_id for r in rejected] == [f"a{i:02d}" for i in range(0, 23, 4)]
    bbb_buys = await store.orders_page(OrderQuery(account_id="a", symbol="BBB", side=Side.BUY, limit=100))
    assert [r.order.client_order_id for r in bbb_buys] == ["a03", "a09", "a15", "a21"]
    window = await store.orders_page(OrderQuery(account_id="a", since_ns=3, until_ns=5, limit=100))
    assert [r.order.client_order_id for r in window] == ["a06", "a07", "a08", "a09"]
    one = await store.orders_page(OrderQuery(account_id="a", client_order_id="a07"))
    assert [r.order.client_order_id for r in one] == ["a07"]
    assert await store.orders_page(OrderQuery(account_id="a", client_order_id="b00")) == []
    assert [r.order.client_order_id for r in await store.orders_page(OrderQuery(account_id="b"))] == ["b00"]

    # fills: book some for a01 and a03 (two bookings), then page them
    ledger = Ledger(store)
    for coid, n, booked in (("a01", 3, 100), ("a03", 2, 200)):
        rec = (await store.get_orders([coid]))[coid]
        order = rec.order.apply(OrderAccepted(client_order_id=coid))
        order = msgspec.structs.replace(order, quantity=D(n))
        fills = [
            Fill(
                fill_id=f"{coid}-f{k}",
                client_order_id=coid,
                symbol=order.symbol,
                side=order.side,
                price=D("10.5"),
                quantity=D(1),
                ts_exchange_ns=k,
            )
            for k in range(n)
        ]
        for k, f in enumerate(fills):
            event = OrderFilled if k == n - 1 else OrderPartiallyFilled
            order = order.apply(event(client_order_id=coid, fill=f))
        await ledger.book([BookItem(order=order, reserve_price=D(10), fills=fills)], now_ns=booked)
    walked: list[str] = []
    after = None
    while True:
        fpage = await store.fills_page(FillQuery(account_id="a", after=after, limit=2))
        walked.extend(f.fill_id for f in fpage)
        if len(fpage) < 2:
            break
        after = (fpage[-1].ts_received_ns, fpage[-1].fill_id)
    assert walked == ["a01-f0", "a01-f1", "a01-f2", "a03-f0", "a03-f1"]
    by_order = await store.fills_page(FillQuery(account_id="a", client_order_id="a03", descending=True))
    assert [f.fill_id for f in by_order] == ["a03-f1", "a03-f0"]
    assert [f.ts_received_ns for f in by_order] == [200, 200]
    late = await store.fills_page(FillQuery(account_id="a", since_ns=150))
    assert [f.fill_id for f in late] == ["a03-f0", "a03-f1"]
    bbb = await store.fills_page(FillQuery(account_id="a", symbol="BBB"))
    assert [f.fill_id for f in bbb] == ["a03-f0", "a03-f1"]
    assert await store.fills_page(FillQuery(account_id="a", side=Side.SELL)) == []
    assert await store.fills_page(FillQuery(account_id="b")) == []
