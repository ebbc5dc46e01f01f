"""Pre-trade risk checks, each with a reason code, and the kill switch.

:meth:`RiskEngine.check` runs the checks in a fixed order and returns the first failure, or accepts the order
and *reserves* its worst case in the account's :class:`~tradepulse.risk.book.AccountRisk` so that the next
order (in the same batch or later) is checked against it. Every limit is inclusive: an order exactly at a limit
passes; one smallest step above it fails.

Order of the checks (the reason codes of :class:`~tradepulse.domain.RejectReason`):

0. STALE_ORDER (read after its deadline)           8. PRICE_COLLAR (limit/stop too far from the last price)
1. TRADING_HALTED (kill switch HALTED)             9. MAX_ORDER_NOTIONAL
2. UNKNOWN_ACCOUNT                                10. REDUCE_ONLY (kill switch REDUCING)
3. UNKNOWN_INSTRUMENT, INSTRUMENT_NOT_TRADABLE    11. MAX_POSITION (counting open orders)
4. INVALID_QUANTITY (lot), INVALID_PRICE (tick)   12. MAX_GROSS_EXPOSURE (counting open orders)
5. RATE_LIMIT (per strategy)                      13. INSUFFICIENT_CASH (buys, counting open buys and a fee
6. MAX_ORDER_QUANTITY                                 reserve)
7. NO_REFERENCE_PRICE (no market data yet)

An order's deadline is its own ``deadline_ns`` or ``risk.max_order_age_ms`` after it was sent (the order client's
``submit`` stamp, else the command's ``ts_ns``; neither: no age), whichever comes first. It is compared with this
engine's clock, so the sender's and the engine's clocks must agree to well within that age (NTP does). Only an
order admitted for the first time is checked: a repeated client order id is answered with its order as it
stands, however late it comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tradepulse.clock import Clock
from tradepulse.config import RiskConfig
from tradepulse.domain import Instrument, OrderType, RejectReason, Side, SubmitOrder, TradingState
from tradepulse.domain.money import ZERO
from tradepulse.risk.book import AccountRisk, Marks
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.risk.rate import RateLimiter

_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The outcome of the checks: accepted with the reserve price, or rejected with a reason."""

    reason: RejectReason | None = None
    message: str = ""
    #: the price the order's quantity is reserved at (limit, stop, or the collar bound for a market order)
    reserve_price: Decimal = ZERO

    @property
    def accepted(self) -> bool:
        return self.reason is None


def _reject(reason: RejectReason, message: str) -> RiskDecision:
    return RiskDecision(reason, message)


class RiskEngine:
    """Check orders against the limits of ``config`` and the current trading state."""

    def __init__(self, config: RiskConfig, instruments: InstrumentRegistry, clock: Clock) -> None:
        self.config = config
        self.instruments = instruments
        self.state = TradingState.ACTIVE
        self._rates = RateLimiter(config.max_orders_per_s, clock)
        self._accounts = frozenset(config.accounts)
        self._collar = config.price_collar
        self._fee_reserve = config.fee_reserve_bps / _BPS
        self._clock = clock
        self._max_age_ns = config.max_order_age_ms * 1_000_000

    def check(
        self, cmd: SubmitOrder, account: AccountRisk | None, marks: Marks, *, count_rate: bool = True
    ) -> RiskDecision:
        """Return the decision for ``cmd``; on acceptance its worst case is reserved in ``account``.

        ``count_rate`` False skips the rate limit (re-checking an order already counted, after the ledger asked
        for a second look because another engine changed the account meanwhile).
        """
        decision = self._check(cmd, account, marks, count_rate)
        if decision.reason is None:
            assert account is not None
            account.reserve(cmd.symbol, cmd.side, cmd.quantity, decision.reserve_price)
        return decision

    def deadline_ns(self, cmd: SubmitOrder) -> int:
        """The latest time ``cmd`` may be admitted (epoch ns), or 0 for none (see the module docstring)."""
        deadline = cmd.deadline_ns
        sent = cmd.stamps.get("submit") or cmd.ts_ns  # the client's publish, else the command's own time
        if self._max_age_ns and sent:
            by_age = sent + self._max_age_ns
            if not deadline or by_age < deadline:
                return by_age
        return deadline

    def _check(self, cmd: SubmitOrder, account: AccountRisk | None, marks: Marks, count_rate: bool) -> RiskDecision:
        cfg = self.config
        if cmd.deadline_ns or self._max_age_ns:
            deadline = self.deadline_ns(cmd)
            now = self._clock.time_ns()
            if deadline and now > deadline:
                return _reject(
                    RejectReason.STALE_ORDER,
                    f"read {(now - deadline) / 1e6:.3f} ms after its deadline"
                    + ("" if deadline == cmd.deadline_ns else f" ({cfg.max_order_age_ms} ms after it was sent)")
                    + "; not executed",
                )
        if self.state is TradingState.HALTED:
            return _reject(RejectReason.TRADING_HALTED, "trading is HALTED (kill switch); only an admin can resume")
        if account is None or cmd.account_id not in self._accounts:
            return _reject(RejectReason.UNKNOWN_ACCOUNT, f"account {cmd.account_id!r} is not configured")
        instrument = self.instruments.get(cmd.symbol)
        if instrument is None:
            return _reject(RejectReason.UNKNOWN_INSTRUMENT, f"symbol {cmd.symbol!r} is not a known instrument")
        if not instrument.tradable:
            return _reject(RejectReason.INSTRUMENT_NOT_TRADABLE, f"{cmd.symbol} is not tradable")
        qty = cmd.quantity
        if not instrument.is_valid_quantity(qty):
            return _reject(
                RejectReason.INVALID_QUANTITY, f"quantity {qty} is not a multiple of the lot {instrument.lot_size}"
            )
        for name, price in (("limit_price", cmd.limit_price), ("stop_price", cmd.stop_price)):
            if price is not None and not instrument.is_valid_price(price):
                return _reject(
                    RejectReason.INVALID_PRICE, f"{name} {price} is not on the tick grid {instrument.tick_size}"
                )
        if count_rate and not self._rates.allow(cmd.strategy_id):
            return _reject(
                RejectReason.RATE_LIMIT, f"strategy {cmd.strategy_id!r} exceeds {cfg.max_orders_per_s} orders/s"
            )
        if qty > cfg.max_order_quantity:
            return _reject(RejectReason.MAX_ORDER_QUANTITY, f"quantity {qty} > max {cfg.max_order_quantity}")
        ref = marks.price(cmd.symbol)
        if ref is None:
            return _reject(RejectReason.NO_REFERENCE_PRICE, f"no market price for {cmd.symbol} yet")
        collar = self._collar_check(cmd, ref)
        if collar is not None:
            return collar
        order_price = _order_price(cmd, ref)
        notional = qty * order_price
        if notional > cfg.max_order_notional:
            return _reject(
                RejectReason.MAX_ORDER_NOTIONAL,
                f"notional {notional} ({qty} x {order_price}) > max {cfg.max_order_notional}",
            )
        reserve_price = self._reserve_price(cmd, ref, instrument)
        exp = account.symbols.get(cmd.symbol)
        position = exp.position if exp is not None else ZERO
        buy_open = exp.buy_qty if exp is not None else ZERO
        sell_open = exp.sell_qty if exp is not None else ZERO
        if self.state is TradingState.REDUCING:
            reducible = position - sell_open if cmd.side is Side.SELL else -position - buy_open
            if reducible <= 0 or qty > reducible:
                return _reject(
                    RejectReason.REDUCE_ONLY,
                    f"trading is REDUCING: only orders that shrink the {cmd.symbol} position "
                    f"({position}, open buys {buy_open}, open sells {sell_open}) are allowed",
                )
        if cmd.side is Side.BUY:
            worst_after = max(abs(position + buy_open + qty), abs(position - sell_open))
        else:
            worst_after = max(abs(position + buy_open), abs(position - sell_open - qty))
            if not cfg.allow_short and position - sell_open - qty < 0:
                return _reject(
                    RejectReason.MAX_POSITION,
                    f"short selling is off: selling {qty} with {position} held and {sell_open} already being sold",
                )
        if worst_after > cfg.max_position:
            return _reject(
                RejectReason.MAX_POSITION,
                f"{cmd.symbol} position could reach {worst_after} counting open orders > max {cfg.max_position}",
            )
        worst_before = exp.worst_abs() if exp is not None else ZERO
        if worst_after > worst_before:
            mark = marks.price_or(cmd.symbol, ref)
            gross_after = account.gross_exposure(marks) + (worst_after - worst_before) * mark
            if gross_after > cfg.max_gross_exposure:
                return _reject(
                    RejectReason.MAX_GROSS_EXPOSURE,
                    f"gross exposure could reach {gross_after} counting open orders > max {cfg.max_gross_exposure}",
                )
        if cfg.check_cash and cmd.side is Side.BUY:
            needed = qty * reserve_price
            needed += needed * self._fee_reserve
            available = account.buying_power()
            if needed > available:
                return _reject(
                    RejectReason.INSUFFICIENT_CASH,
                    f"needs {needed} (with fee reserve) but only {available} is not reserved by open buys",
                )
        return RiskDecision(None, "", reserve_price)

    def _collar_check(self, cmd: SubmitOrder, ref: Decimal) -> RiskDecision | None:
        band = ref * self._collar
        for name, price in (("limit_price", cmd.limit_price), ("stop_price", cmd.stop_price)):
            if price is not None and abs(price - ref) > band:
                return _reject(
                    RejectReason.PRICE_COLLAR,
                    f"{name} {price} is more than {self._collar:%} from the last price {ref}",
                )
        return None

    def _reserve_price(self, cmd: SubmitOrder, ref: Decimal, instrument: Instrument) -> Decimal:
        """Return the price the order's quantity is reserved at: its own price, or the collar's far edge."""
        if cmd.order_type is OrderType.LIMIT or cmd.order_type is OrderType.STOP_LIMIT:
            assert cmd.limit_price is not None
            return cmd.limit_price
        base = cmd.stop_price if cmd.stop_price is not None else ref
        if cmd.side is Side.BUY:
            return instrument.round_price(base * (1 + self._collar), ROUND_CEILING)
        return max(instrument.tick_size, instrument.round_price(base * (1 - self._collar), ROUND_FLOOR))


def _order_price(cmd: SubmitOrder, ref: Decimal) -> Decimal:
    if cmd.limit_price is not None:
        return cmd.limit_price
    if cmd.stop_price is not None:
        return cmd.stop_price
    return ref


__all__ = ["RiskDecision", "RiskEngine"]
