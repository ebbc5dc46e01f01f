"""The simulated exchange and the paper broker: matching rules, fees, journal recovery."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradepulse.clock import ManualClock
from tradepulse.config import InstrumentsConfig, InstrumentSpec, VenueConfig
from tradepulse.domain import (
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    SubmitOrder,
    Tick,
    TimeInForce,
)
from tradepulse.execution.brokers import ExecType, PaperBroker, SimulatedExchange, VenueReport
from tradepulse.risk import InstrumentRegistry

D = Decimal
INSTRUMENTS = InstrumentRegistry.from_config(InstrumentsConfig(universe=(InstrumentSpec(symbol="AAA"),)))
CONFIG = VenueConfig(
    depth_levels=3, min_level_lots=100, depth_growth=D(1), maker_fee_bps=D(1), taker_fee_bps=D(2), journal_dir=""
)
_n = iter(range(1_000_000))


def order(
    side: Side,
    qty: int,
    limit: str | None = None,
    *,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    account: str = "a",
    coid: str | None = None,
) -> Order:
    kind = OrderType.MARKET
    if stop is not None:
        kind = OrderType.STOP_LIMIT if limit is not None else OrderType.STOP
    elif limit is not None:
        kind = OrderType.LIMIT
    return Order.from_submit(
        SubmitOrder(
            client_order_id=coid or f"c{next(_n)}",
            symbol="AAA",
            side=side,
            quantity=D(qty),
            order_type=kind,
            limit_price=None if limit is None else D(limit),
            stop_price=None if stop is None else D(stop),
            time_in_force=tif,
            account_id=account,
        )
    )


def tick(bid: float = 99.99, ask: float = 100.0, price: float | None = None, size: float = 100.0) -> Tick:
    return Tick(
        symbol="AAA",
        ts_ns=1,
        price=ask if price is None else price,
        size=size,
        bid=bid,
        ask=ask,
        bid_size=size,
        ask_size=size,
    )


async def exchange(journal: Path | None = None, config: VenueConfig = CONFIG) -> SimulatedExchange:
    venue = SimulatedExchange("sim:test", INSTRUMENTS, config, journal=journal, clock=ManualClock())
    await venue.start()
    return venue


def fills(reports: list[VenueReport], coid: str) -> list[tuple[str, str]]:
    return [
        (str(r.fill.price), str(r.fill.quantity)) for r in reports if r.fill is not None and r.client_order_id == coid
    ]


def last_status(reports: list[VenueReport], coid: str) -> OrderStatus:
    return [r for r in reports if r.client_order_id == coid][-1].status


async def test_a_market_order_walks_the_synthetic_book_and_pays_taker_fees() -> None:
    venue = await exchange()
    venue.on_tick(tick())
    o = order(Side.BUY, 250)
    await venue.submit([o])
    reports = venue.take_reports()
    assert [r.exec_type for r in reports] == [ExecType.NEW, ExecType.TRADE, ExecType.TRADE, ExecType.TRADE]
    assert fills(reports, o.client_order_id) == [("100.00", "100"), ("100.01", "100"), ("100.02", "50")]
    assert reports[-1].status is OrderStatus.FILLED
    assert reports[-1].cum_quantity == 250
    trade = reports[1].fill
    assert trade is not None
    assert trade.liquidity is Liquidity.TAKER
    assert trade.fee == D("2.00")  # 100 x 100.00 x 2 bps


async def test_a_market_order_beyond_the_depth_is_partly_filled_then_canceled() -> None:
    venue = await exchange()
    venue.on_tick(tick())
    o = order(Side.SELL, 350)
    await venue.submit([o])
    reports = venue.take_reports()
    assert fills(reports, o.client_order_id) == [("99.99", "100"), ("99.98", "100"), ("99.97", "100")]
    assert reports[-1].exec_type is ExecType.CANCELED
    assert reports[-1].cum_quantity == 300


async def test_a_market_order_without_liquidity_is_rejected() -> None:
    venue = await exchange()
    o = order(Side.BUY, 1)
    await venue.submit([o])
    (report,) = venue.take_reports()
    assert report.exec_type is ExecType.REJECTED
    assert report.reason is RejectReason.NO_LIQUIDITY


async def test_price_time_priority_among_resting_orders() -> None:
    venue = await exchange()
    first, second, better = (
        order(Side.SELL, 100, "101.00"),
        order(Side.SELL, 100, "101.00"),
        order(Side.SELL, 50, "100.50"),
    )
    await venue.submit([first, second, better])
    venue.take_reports()
    taker = order(Side.BUY, 200, "101.00", account="b")
    await venue.submit([taker])
    reports = venue.take_reports()
    assert fills(reports, taker.client_order_id) == [("100.50", "50"), ("101.00", "100"), ("101.00", "50")]
    assert last_status(reports, better.client_order_id) is OrderStatus.FILLED
    assert last_status(reports, first.client_order_id) is OrderStatus.FILLED
    assert last_status(reports, second.client_order_id) is OrderStatus.PARTIALLY_FILLED
    maker_fill = next(r.fill for r in reports if r.fill is not None and r.client_order_id == first.client_order_id)
    assert maker_fill.liquidity is Liquidity.MAKER
    assert maker_fill.fee == D("1.01")
    assert venue.depth("AAA")["asks"] == [("101.00", "50")]


async def test_ioc_and_fok() -> None:
    venue = await exchange()
    venue.on_tick(tick())
    ioc = order(Side.BUY, 400, "100.01", tif=TimeInForce.IOC)
    fok_no = order(Side.BUY, 101, "100.00", tif=TimeInForce.FOK)
    fok_yes = order(Side.BUY, 100, "100.02", tif=TimeInForce.FOK)
    await venue.submit([ioc, fok_no, fok_yes])
    reports = venue.take_reports()
    assert fills(reports, ioc.client_order_id) == [("100.00", "100"), ("100.01", "100")]
    assert last_status(reports, ioc.client_order_id) is OrderStatus.CANCELED
    assert fills(reports, fok_no.client_order_id) == []
    assert last_status(reports, fok_no.client_order_id) is OrderStatus.CANCELED
    assert fills(reports, fok_yes.client_order_id) == [("100.02", "100")]


async def test_resting_limit_fills_at_its_own_price_when_the_market_crosses_it() -> None:
    venue = await exchange()
    venue.on_tick(tick())
    bid = order(Side.BUY, 150, "99.50")
    await venue.submit([bid])
    venue.take_reports()
    venue.on_tick(tick(bid=99.30, ask=99.40))
    reports = venue.take_reports()
    assert fills(reports, bid.client_order_id) == [("99.50", "100"), ("99.50", "50")]
    assert all(r.fill.liquidity is Liquidity.MAKER for r in reports if r.fill is not None)


async def test_stops_trigger_on_the_last_trade() -> None:
    venue = await exchange()
    venue.on_tick(tick())
    stop = order(Side.BUY, 10, stop="101.00")
    stop_limit = order(Side.SELL, 10, "98.90", stop="99.00")
    await venue.submit([stop, stop_limit])
    assert [r.exec_type for r in venue.take_reports()] == [ExecType.NEW, ExecType.NEW]
    venue.on_tick(tick(bid=100.99, ask=101.01, price=101.0))
    assert fills(venue.take_reports(), stop.client_order_id) == [("101.01", "10")]
    venue.on_tick(tick(bid=98.99, ask=99.01, price=99.0))
    assert fills(venue.take_reports(), stop_limit.client_order_id) == [("98.99", "10")]


async def test_self_trade_prevention_cancels_the_resting_order() -> None:
    venue = await exchange()
    resting = order(Side.SELL, 10, "100.00", account="x")
    await venue.submit([resting])
    venue.take_reports()
    taker = order(Side.BUY, 10, "100.00", account="x")
    await venue.submit([taker])
    reports = venue.take_reports()
    assert last_status(reports, resting.client_order_id) is OrderStatus.CANCELED
    assert fills(reports, taker.client_order_id) == []
    assert venue.depth("AAA")["bids"] == [("100.00", "10")]


async def test_duplicate_client_order_id_is_not_executed_twice() -> None:
    venue = await exchange()
    venue.on_tick(tick())
    o = order(Side.BUY, 10)
    await venue.submit([o])
    await venue.submit([o])
    reports = venue.take_reports()
    assert [r.exec_type for r in reports] == [ExecType.NEW, ExecType.TRADE, ExecType.DUPLICATE]
    assert venue.fills == 1


async def test_cancel_and_day_expiry() -> None:
    venue = await exchange()
    day, gtc = order(Side.BUY, 10, "99.00"), order(Side.BUY, 10, "99.00", tif=TimeInForce.GTC)
    await venue.submit([day, gtc])
    await venue.cancel(["no-such-order"])
    assert venue.end_of_session() == 1
    await venue.cancel([gtc.client_order_id])
    reports = venue.take_reports()
    assert last_status(reports, day.client_order_id) is OrderStatus.EXPIRED
    assert last_status(reports, gtc.client_order_id) is OrderStatus.CANCELED
    assert venue.depth("AAA")["bids"] == []


async def test_the_journal_restores_orders_fills_and_priority_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "venue.journal"
    venue = await exchange(path)
    venue.on_tick(tick())
    a, b = order(Side.SELL, 100, "101.00", account="p"), order(Side.SELL, 100, "101.00", account="q")
    m = order(Side.BUY, 150)
    stop = order(Side.BUY, 5, stop="103.00")
    await venue.submit([a, b, m, stop])
    before = {coid: vo.state() for coid, vo in venue.orders.items()}
    # no close(): a crash. Append a torn record, as a process dying inside write() would leave.
    with path.open("ab") as f:
        f.write(b"\x40\x00\x00\x00partial")
    again = await exchange(path)
    assert {coid: vo.state() for coid, vo in again.orders.items()} == before
    taker = order(Side.BUY, 150, "101.00", account="r")
    await again.submit([taker])
    reports = again.take_reports()
    assert fills(reports, taker.client_order_id) == [("101.00", "100"), ("101.00", "50")]
    assert last_status(reports, a.client_order_id) is OrderStatus.FILLED  # a kept its priority over b
    ids = [f.fill_id for vo in again.orders.values() for f in vo.fills]
    assert len(ids) == len(set(ids))
    again.on_tick(tick(bid=102.99, ask=103.01, price=103.0))
    assert fills(again.take_reports(), stop.client_order_id) == [("103.01", "5")]
    await again.close()


async def test_paper_broker_fills_at_the_quote_with_slippage() -> None:
    config = VenueConfig(slippage_bps=D(1), impact_bps=D(10), taker_fee_bps=D(0), maker_fee_bps=D(0), journal_dir="")
    venue = PaperBroker("paper:test", INSTRUMENTS, config, clock=ManualClock())
    await venue.start()
    venue.on_tick(tick(bid=99.99, ask=100.0, size=100))
    buy = order(Side.BUY, 200)  # 1 bp + 10 bp x 2 quoted sizes = 21 bp over 100.00 -> 100.21
    sell = order(Side.SELL, 100, "99.50")  # 1 + 10 = 11 bp under 99.99 -> 99.88 (above the limit)
    rest = order(Side.BUY, 10, "99.00")
    ioc = order(Side.BUY, 10, "99.00", tif=TimeInForce.IOC)
    await venue.submit([buy, sell, rest, ioc])
    reports = venue.take_reports()
    assert fills(reports, buy.client_order_id) == [("100.21", "200")]
    assert fills(reports, sell.client_order_id) == [("99.88", "100")]
    assert last_status(reports, rest.client_order_id) is OrderStatus.ACCEPTED
    assert last_status(reports, ioc.client_order_id) is OrderStatus.CANCELED
    venue.on_tick(tick(bid=98.90, ask=98.95, size=1000))
    # 98.95 x (1 + 1 bp + 10 bp x 10/1000) = 98.9609, rounded up to the tick: 98.97, still under the 99 limit
    assert fills(venue.take_reports(), rest.client_order_id) == [("98.97", "10")]


@pytest.mark.parametrize("cls", [SimulatedExchange, PaperBroker])
async def test_query_by_client_order_id(cls: type[SimulatedExchange] | type[PaperBroker]) -> None:
    venue = cls("v", INSTRUMENTS, CONFIG, clock=ManualClock())
    await venue.start()
    venue.on_tick(tick())
    o = order(Side.BUY, 10)
    await venue.submit([o])
    state = await venue.query(o.client_order_id)
    assert state is not None
    assert state.status is OrderStatus.FILLED
    assert state.cum_quantity == 10
    assert sum(f.quantity for f in state.fills) == 10
    assert await venue.query("never-sent") is None
