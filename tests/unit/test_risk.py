"""Pre-trade risk checks at their boundaries: limit - epsilon passes, limit passes, limit + epsilon fails."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradepulse.clock import ManualClock
from tradepulse.config import InstrumentsConfig, InstrumentSpec, RiskConfig
from tradepulse.domain import OrderType, RejectReason, Side, SubmitOrder, TimeInForce, TradingState
from tradepulse.risk import AccountRisk, InstrumentRegistry, Marks, RiskEngine

D = Decimal
INSTRUMENTS = InstrumentRegistry.from_config(
    InstrumentsConfig(
        universe=(
            InstrumentSpec(symbol="AAA"),
            InstrumentSpec(symbol="BBB"),
            InstrumentSpec(symbol="FRAC", lot_size=D("0.001")),
            InstrumentSpec(symbol="OFF", tradable=False),
        )
    )
)
_n = iter(range(1_000_000))


def engine(clock: ManualClock | None = None, **limits: object) -> RiskEngine:
    base: dict[str, object] = {
        "max_order_quantity": D(1_000_000),
        "max_order_notional": D(1_000_000_000),
        "max_position": D(1_000_000),
        "max_gross_exposure": D(1_000_000_000),
        "fee_reserve_bps": D(0),
        "max_orders_per_s": 1_000_000,
    }
    base.update(limits)
    return RiskEngine(RiskConfig(**base), INSTRUMENTS, clock or ManualClock())  # type: ignore[arg-type]


def marks(**prices: str) -> Marks:
    m = Marks()
    for symbol, price in {"AAA": "100.00", "BBB": "50.00", "FRAC": "100.00", **prices}.items():
        m.set(symbol, D(price))
    return m


def account(cash: str = "1000000000") -> AccountRisk:
    return AccountRisk("default", D(cash))


def order(
    qty: str | int = 1,
    side: Side = Side.BUY,
    symbol: str = "AAA",
    limit: str | None = None,
    stop: str | None = None,
    strategy: str = "s",
    account_id: str = "default",
) -> SubmitOrder:
    order_type = OrderType.MARKET
    if limit is not None and stop is not None:
        order_type = OrderType.STOP_LIMIT
    elif limit is not None:
        order_type = OrderType.LIMIT
    elif stop is not None:
        order_type = OrderType.STOP
    return SubmitOrder(
        client_order_id=f"o{next(_n)}",
        symbol=symbol,
        side=side,
        quantity=D(qty),
        order_type=order_type,
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
        time_in_force=TimeInForce.DAY,
        strategy_id=strategy,
        account_id=account_id,
    )


def reason(eng: RiskEngine, cmd: SubmitOrder, acct: AccountRisk | None = None, m: Marks | None = None) -> object:
    return eng.check(cmd, account() if acct is None else acct, marks() if m is None else m).reason


@pytest.mark.parametrize(("qty", "ok"), [(999, True), (1000, True), (1001, False)])
def test_max_order_quantity(qty: int, ok: bool) -> None:
    assert reason(engine(max_order_quantity=D(1000)), order(qty)) == (None if ok else RejectReason.MAX_ORDER_QUANTITY)


@pytest.mark.parametrize(("price", "ok"), [("99.99", True), ("100.00", True), ("100.01", False)])
def test_max_order_notional(price: str, ok: bool) -> None:
    eng = engine(max_order_notional=D(10_000))
    got = reason(eng, order(100, limit=price))
    assert got == (None if ok else RejectReason.MAX_ORDER_NOTIONAL)


@pytest.mark.parametrize(
    ("price", "ok"),
    [("109.99", True), ("110.00", True), ("110.01", False), ("90.01", True), ("90.00", True), ("89.99", False)],
)
def test_price_collar_against_the_last_price(price: str, ok: bool) -> None:
    eng = engine(price_collar=D("0.10"))
    assert reason(eng, order(1, limit=price)) == (None if ok else RejectReason.PRICE_COLLAR)
    assert reason(eng, order(1, stop=price)) == (None if ok else RejectReason.PRICE_COLLAR)


@pytest.mark.parametrize(("qty", "ok"), [(999, True), (1000, True), (1001, False)])
def test_max_position_counts_the_booked_position(qty: int, ok: bool) -> None:
    acct = account()
    acct.exposure("AAA").position = D(-500)
    # a sell from -500 reaches -(500 + qty)
    got = reason(engine(max_position=D(1500)), order(qty, side=Side.SELL), acct)
    assert got == (None if ok else RejectReason.MAX_POSITION)


def test_concurrent_orders_each_under_the_position_limit_cannot_breach_it_together() -> None:
    eng, acct = engine(max_position=D(1000)), account()
    decisions = [eng.check(order(11), acct, marks()) for _ in range(100)]
    accepted = [d for d in decisions if d.accepted]
    assert len(accepted) == 90  # 90 x 11 = 990; the 91st would make 1001
    assert all(d.reason is RejectReason.MAX_POSITION for d in decisions[90:])
    assert acct.exposure("AAA").buy_qty == 990


def test_open_sells_and_buys_count_on_their_own_side() -> None:
    eng, acct = engine(max_position=D(1000)), account()
    assert eng.check(order(1000), acct, marks()).accepted
    assert eng.check(order(1000, side=Side.SELL), acct, marks()).accepted  # worst case on each side is 1000
    assert eng.check(order(1, side=Side.SELL), acct, marks()).reason is RejectReason.MAX_POSITION
    assert eng.check(order(1), acct, marks()).reason is RejectReason.MAX_POSITION


def test_releasing_a_reservation_frees_the_limit() -> None:
    eng, acct = engine(max_position=D(1000)), account()
    assert eng.check(order(1000, limit="100.00"), acct, marks()).accepted
    assert eng.check(order(1), acct, marks()).reason is RejectReason.MAX_POSITION
    acct.release("AAA", Side.BUY, D(400), D("100.00"))  # 400 canceled
    assert eng.check(order(400), acct, marks()).accepted
    assert eng.check(order(1), acct, marks()).reason is RejectReason.MAX_POSITION


@pytest.mark.parametrize(("qty", "ok"), [("9.999", True), ("10.000", True), ("10.001", False)])
def test_max_gross_exposure_counts_open_orders_across_symbols(qty: str, ok: bool) -> None:
    eng, acct = engine(max_gross_exposure=D(3000)), account()
    acct.exposure("BBB").position = D(-20)  # 20 x 50 = 1000 short
    assert eng.check(order(10, limit="100.00"), acct, marks()).accepted  # open buy: 10 x 100 = 1000
    got = eng.check(order(qty, symbol="FRAC", limit="100.00"), acct, marks()).reason
    assert got == (None if ok else RejectReason.MAX_GROSS_EXPOSURE)


def test_an_order_that_reduces_exposure_is_not_stopped_by_gross_exposure() -> None:
    eng, acct = engine(max_gross_exposure=D(1000)), account()
    acct.exposure("AAA").position = D(20)  # 2000 > limit already (prices moved)
    assert eng.check(order(5, side=Side.SELL), acct, marks()).accepted
    assert eng.check(order(1), acct, marks()).reason is RejectReason.MAX_GROSS_EXPOSURE


@pytest.mark.parametrize(("price", "ok"), [("99.99", True), ("100.00", True), ("100.01", False)])
def test_buying_power(price: str, ok: bool) -> None:
    got = reason(engine(), order(100, limit=price), account(cash="10000"))
    assert got == (None if ok else RejectReason.INSUFFICIENT_CASH)


def test_buying_power_counts_open_buys_and_the_fee_reserve() -> None:
    eng, acct = engine(fee_reserve_bps=D(10)), account(cash="10010")
    assert eng.check(order(50, limit="100.00"), acct, marks()).accepted  # reserves 5000 (+ 5 fee reserve checked)
    assert acct.buying_power() == D(5010)
    assert eng.check(order(50, limit="100.00"), acct, marks()).accepted  # 5000 + 5 = 5005 <= 5010
    assert eng.check(order(1, limit="5.00", symbol="BBB"), acct, marks(BBB="5.00")).accepted  # 5.005 <= 10
    assert eng.check(order(1, limit="5.00", symbol="BBB"), acct, marks(BBB="5.00")).reason is (
        RejectReason.INSUFFICIENT_CASH
    )  # 5.005 > 5


def test_a_market_buy_reserves_at_the_collar_edge() -> None:
    eng, acct = engine(price_collar=D("0.05")), account(cash="10500")
    decision = eng.check(order(100), acct, marks())
    assert decision.accepted
    assert decision.reserve_price == D("105.00")
    assert acct.buying_power() == 0
    assert eng.check(order(1), acct, marks()).reason is RejectReason.INSUFFICIENT_CASH


def test_sells_need_no_cash_but_shorts_can_be_forbidden() -> None:
    assert reason(engine(), order(10, side=Side.SELL), account(cash="0")) is None
    eng, acct = engine(allow_short=False), account(cash="0")
    acct.exposure("AAA").position = D(10)
    assert eng.check(order(10, side=Side.SELL), acct, marks()).accepted
    assert eng.check(order(1, side=Side.SELL), acct, marks()).reason is RejectReason.MAX_POSITION


def test_rate_limit_per_strategy() -> None:
    clock = ManualClock()
    eng, acct = engine(clock, max_orders_per_s=5), account()
    assert [eng.check(order(1), acct, marks()).accepted for _ in range(6)] == [True] * 5 + [False]
    assert eng.check(order(1, strategy="other"), acct, marks()).accepted
    clock.advance(199_000_000)  # 0.199 s refills 0.995 of a token: not yet
    assert eng.check(order(1), acct, marks()).reason is RejectReason.RATE_LIMIT
    clock.advance(1_000_000)  # 0.2 s: one token
    assert eng.check(order(1), acct, marks()).accepted
    assert eng.check(order(1), acct, marks()).reason is RejectReason.RATE_LIMIT


@pytest.mark.parametrize(("late_ns", "ok"), [(-1, True), (0, True), (1, False)])
def test_an_order_read_after_its_own_deadline_is_stale(late_ns: int, ok: bool) -> None:
    clock = ManualClock()
    eng = engine(clock, max_order_age_ms=0)
    cmd = msgspec.structs.replace(order(1), deadline_ns=clock.time_ns() - late_ns)
    assert reason(eng, cmd) == (None if ok else RejectReason.STALE_ORDER)


@pytest.mark.parametrize(("age_ns", "ok"), [(2_000_000_000 - 1, True), (2_000_000_000, True), (2_000_000_001, False)])
def test_an_order_older_than_the_max_age_is_stale(age_ns: int, ok: bool) -> None:
    clock = ManualClock()
    eng = engine(clock, max_order_age_ms=2_000)
    cmd = msgspec.structs.replace(order(1), ts_ns=clock.time_ns() - age_ns)
    assert reason(eng, cmd) == (None if ok else RejectReason.STALE_ORDER)


def test_the_earlier_of_the_orders_deadline_and_its_max_age_applies() -> None:
    clock = ManualClock()
    now = clock.time_ns()
    eng = engine(clock, max_order_age_ms=1_000)
    sent = msgspec.structs.replace(order(1), ts_ns=now - 500_000_000)  # 0.5 s old: 0.5 s of its max age left
    assert eng.deadline_ns(sent) == now + 500_000_000
    assert eng.deadline_ns(msgspec.structs.replace(sent, deadline_ns=now + 100)) == now + 100
    assert eng.deadline_ns(msgspec.structs.replace(sent, deadline_ns=now + 10**9)) == now + 500_000_000
    assert engine(clock, max_order_age_ms=0).deadline_ns(sent) == 0  # no max age, no deadline: none
    assert eng.deadline_ns(msgspec.structs.replace(sent, ts_ns=0)) == 0  # not stamped: its age is unknown
    clock.advance(500_000_001)
    decision = eng.check(sent, account(), marks())
    assert decision.reason is RejectReason.STALE_ORDER
    assert "1000 ms after it was sent" in decision.message


def test_a_stale_order_reserves_nothing_and_uses_no_rate_token() -> None:
    clock = ManualClock()
    eng, acct = engine(clock, max_orders_per_s=1), account()
    stale = msgspec.structs.replace(order(10), deadline_ns=clock.time_ns() - 1)
    assert eng.check(stale, acct, marks()).reason is RejectReason.STALE_ORDER
    assert acct.symbols.get("AAA") is None or acct.symbols["AAA"].buy_qty == 0
    assert eng.check(order(1), acct, marks()).accepted  # the strategy's one token is still there


def test_a_negative_deadline_is_refused_where_the_order_is_built() -> None:
    with pytest.raises(ValueError, match="deadline_ns"):
        msgspec.structs.replace(order(1), deadline_ns=-1)


def test_validation_reasons() -> None:
    eng = engine()
    assert reason(eng, order(1, symbol="ZZZ")) is RejectReason.UNKNOWN_INSTRUMENT
    assert reason(eng, order(1, symbol="OFF")) is RejectReason.INSTRUMENT_NOT_TRADABLE
    assert reason(eng, order("1.5")) is RejectReason.INVALID_QUANTITY
    assert reason(eng, order("1.5", symbol="FRAC")) is None
    assert reason(eng, order("0.0005", symbol="FRAC")) is RejectReason.INVALID_QUANTITY
    assert reason(eng, order(1, limit="100.005")) is RejectReason.INVALID_PRICE
    assert reason(eng, order(1, account_id="nobody")) is RejectReason.UNKNOWN_ACCOUNT
    assert reason(eng, order(1), m=Marks()) is RejectReason.NO_REFERENCE_PRICE


def test_kill_switch_halted_rejects_everything_and_reducing_only_shrinks_positions() -> None:
    eng, acct = engine(), account()
    acct.exposure("AAA").position = D(100)
    eng.state = TradingState.HALTED
    assert eng.check(order(1, side=Side.SELL), acct, marks()).reason is RejectReason.TRADING_HALTED
    eng.state = TradingState.REDUCING
    assert eng.check(order(1), acct, marks()).reason is RejectReason.REDUCE_ONLY
    assert eng.check(order(60, side=Side.SELL), acct, marks()).accepted
    assert eng.check(order(40, side=Side.SELL), acct, marks()).accepted  # 60 + 40 = the whole position
    assert eng.check(order(1, side=Side.SELL), acct, marks()).reason is RejectReason.REDUCE_ONLY
    assert eng.check(order(1, side=Side.SELL, symbol="BBB"), acct, marks()).reason is RejectReason.REDUCE_ONLY
    eng.state = TradingState.ACTIVE
    assert eng.check(order(1), acct, marks()).accepted


def test_fills_move_cash_and_positions_and_release_reservations_exactly() -> None:
    eng, acct = engine(), account(cash="100000")
    decision = eng.check(order(10, limit="101.00"), acct, marks())
    acct.fill("AAA", Side.BUY, D(4), D("100.50"), D("0.04"), decision.reserve_price)
    exp = acct.exposure("AAA")
    assert (exp.position, exp.buy_qty, exp.buy_notional) == (D(4), D(6), D("606.00"))
    assert acct.cash == D("100000") - D("402.00") - D("0.04")
    acct.release("AAA", Side.BUY, D(6), decision.reserve_price)
    assert (exp.buy_qty, exp.buy_notional, acct.reserved_buy_notional) == (0, 0, 0)


_SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
_quantities = st.decimals(min_value=1, max_value=500, places=0)
_prices = st.decimals(min_value=D("0.01"), max_value=D("999.99"), places=2)
_steps = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from(_SYMBOLS), st.sampled_from(Side), _quantities, _prices),
    st.tuples(st.just("release"), st.sampled_from(_SYMBOLS), st.sampled_from(Side), _quantities, _prices),
    st.tuples(st.just("fill"), st.sampled_from(_SYMBOLS), st.sampled_from(Side), _quantities, _prices),
    st.tuples(st.just("mark"), st.sampled_from(_SYMBOLS), st.just(Side.BUY), _quantities, _prices),
    st.tuples(st.just("other-marks"), st.sampled_from(_SYMBOLS), st.just(Side.BUY), _quantities, _prices),
)


@given(st.lists(_steps, max_size=60))
@settings(max_examples=300, deadline=None)
def test_the_gross_exposure_kept_between_ticks_equals_the_sum_over_symbols(steps: list[tuple[object, ...]]) -> None:
    """The gross exposure is updated symbol by symbol between ticks (a check is O(1), not O(symbols)); after any
    sequence of reservations, releases, fills and new marks (also a valuation at other marks in between) it
    equals the sum of |worst-case position| x price over every symbol."""
    acct, m, other = account(), Marks(), Marks()
    m.set("AAA", D("100.00"))  # CCC and DDD have no mark until one comes: valued at their fallback price
    for kind, symbol, side, qty, price in steps:
        assert isinstance(symbol, str)
        assert isinstance(side, Side)
        assert isinstance(qty, Decimal)
        assert isinstance(price, Decimal)
        if kind == "reserve":
            acct.reserve(symbol, side, qty, price)
        elif kind == "release":
            acct.release(symbol, side, qty, price)
        elif kind == "fill":
            acct.fill(symbol, side, qty, price, D("0.01"), price)
        elif kind == "mark":
            m.set(symbol, price)
        else:
            other.set(symbol, price)
            acct.gross_exposure(other)  # valued at other marks in between: must not leak into the next figure
        expected = sum(
            (e.worst_abs() * m.price_or(s, e.fallback_price) for s, e in acct.symbols.items() if e.worst_abs()),
            D(0),
        )
        assert acct.gross_exposure(m) == expected
