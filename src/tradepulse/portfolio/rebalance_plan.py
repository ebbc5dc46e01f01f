"""The rebalancer's result: compact integer arrays, turned into Decimal rows and orders only when asked.

Both implementations return a :class:`RebalancePlan`; two plans are equal when every array and total is equal,
which is what "identical output" means in the property tests. Building thousands of Decimal-carrying objects
costs more than computing the plan, so :attr:`RebalancePlan.trades`, :attr:`RebalancePlan.positions` and
:meth:`RebalancePlan.submit_orders` materialise them on first use (and cache them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, Inexact, localcontext
from enum import IntEnum
from functools import cached_property
from typing import Any, cast

import msgspec
import numpy as np
import numpy.typing as npt

from tradepulse.domain import OrderType, Side, SubmitOrder, TimeInForce
from tradepulse.domain.money import EXACT, ZERO
from tradepulse.portfolio.rebalance_problem import RebalanceProblem, decimal_column

IntArray = npt.NDArray[np.int64]
_WEIGHT_PLACES = Decimal("1e-8")
_TURNOVER_PLACES = Decimal("1e-10")


class Reason(IntEnum):
    """Why a symbol ends where it does (the last rule that decided it, in the order the rules run)."""

    AT_TARGET = 0  #: already at the lot nearest its target
    IN_BAND = 1  #: inside its drift band, left alone
    TRADE = 2  #: traded to the lot nearest its target
    CLOSE = 3  #: target is zero: the whole holding is sold
    MIN_NOTIONAL = 4  #: the trade was below the minimum notional, skipped
    TURNOVER = 5  #: scaled down by the turnover cap
    FEE = 6  #: a sale whose fee is not less than its proceeds, skipped
    CASH = 7  #: a buy reduced (or skipped) because cash ran out at the buffer
    NO_SELL = 8  #: a sale not made because the rebalance is buy-only

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One order of the plan, priced at the plan's prices."""

    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal


class PositionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol before and after the plan. Weights are of the investable value, rounded to 8 decimals."""

    symbol: str
    quantity_before: Decimal
    quantity_after: Decimal
    price: Decimal
    target_weight: Decimal
    weight_before: Decimal
    weight_after: Decimal
    reason: Reason


@dataclass(frozen=True, eq=False)
class RebalancePlan:
    """The orders (sells first, then buys, each by symbol) and the expected state after them.

    Arrays: ``order_index`` (position in ``problem.symbols``), ``order_lots`` (signed: < 0 sells), ``order_fee``
    (money units); per symbol ``post_lots`` and ``reason`` (:class:`Reason` codes). Totals in money units
    (``10**-problem.ints.money_exponent``): ``cash_after``, ``fees``, ``gross`` (traded notional).
    """

    problem: RebalanceProblem
    engine: str
    order_index: IntArray
    order_lots: IntArray
    order_fee: IntArray
    post_lots: IntArray
    reason: npt.NDArray[np.int8]
    cash_after_units: int
    fees_units: int
    gross_units: int
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- equality: the definition of "identical output" -------------------------------------------------------
    def key(self) -> tuple[Any, ...]:
        """Return everything that makes up the plan's output (not the engine that computed it)."""
        return (
            self.order_index.tolist(),
            self.order_lots.tolist(),
            self.order_fee.tolist(),
            self.post_lots.tolist(),
            self.reason.tolist(),
            self.cash_after_units,
            self.fees_units,
            self.gross_units,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RebalancePlan):
            return NotImplemented
        return self.key() == other.key() and self.problem == other.problem

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.order_index)

    # -- totals ------------------------------------------------------------------------------------------------
    def _money(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.problem.ints.money_exponent)

    @property
    def cash_before(self) -> Decimal:
        return self.problem.cash

    @property
    def cash_after(self) -> Decimal:
        """Return the cash left after every order fills at the plan's prices and estimated fees."""
        return self._money(self.cash_after_units)

    @property
    def fees(self) -> Decimal:
        """Return the estimated cost (sum of fees) of the plan."""
        return self._money(self.fees_units)

    @property
    def traded_notional(self) -> Decimal:
        return self._money(self.gross_units)

    @property
    def value_before(self) -> Decimal:
        return self._money(self.problem.ints.value)

    @cached_property
    def value_after_units(self) -> int:
        lots = self.post_lots.astype(object) * self.problem.ints.lot_value.astype(object)
        return self.cash_after_units + int(lots.sum())

    @property
    def value_after(self) -> Decimal:
        """Return the total value after the plan: the value before minus the fees."""
        return self._money(self.value_after_units)

    @property
    def turnover(self) -> Decimal:
        """Return traded notional / total value before, rounded to 10 decimals."""
        if self.problem.ints.value == 0:
            return ZERO
        with localcontext(EXACT) as ctx:
            ctx.traps[Inexact] = False
            ratio = Decimal(self.gross_units) / Decimal(self.problem.ints.value)
            return ratio.quantize(_TURNOVER_PLACES, rounding=ROUND_HALF_EVEN)

    # -- materialised views ------------------------------------------------------------------------------------
    def _order_rows(self) -> tuple[list[str], list[bool], tuple[Decimal, ...]]:
        """Return each order's symbol, whether it sells, and its quantity (shares, with the step's decimals)."""
        cached = self._cache.get("order_rows")
        if cached is None:
            p = self.problem
            idx = self.order_index
            places = p.step_decimals[idx]
            row_steps = (p.step_units[idx] // 10 ** (p.quantity_exponent - places)).tolist()
            lots = self.order_lots.tolist()
            with localcontext(EXACT):
                quantities = tuple(
                    Decimal(abs(k) * s).scaleb(-d) for k, s, d in zip(lots, row_steps, places.tolist(), strict=True)
                )
            cached = self._cache["order_rows"] = (p.symbol_array[idx].tolist(), [k < 0 for k in lots], quantities)
        return cast(tuple[list[str], list[bool], tuple[Decimal, ...]], cached)

    @property
    def trades(self) -> tuple[Trade, ...]:
        """Return the orders as :class:`Trade` rows (built on first access)."""
        cached = self._cache.get("trades")
        if cached is None:
            p = self.problem
            idx = self.order_index
            m = p.ints.money_exponent
            symbols, sells, quantities = self._order_rows()
            prices = decimal_column(p.price_units[idx], p.price_exponent, p.price_decimals[idx])
            notionals = (np.abs(self.order_lots) * p.ints.lot_value[idx]).tolist()
            with localcontext(EXACT):
                cached = self._cache["trades"] = tuple(
                    Trade(
                        symbol=symbol,
                        side=Side.SELL if sell else Side.BUY,
                        quantity=quantity,
                        price=price,
                        notional=Decimal(notional).scaleb(-m),
                        fee=Decimal(fee).scaleb(-m),
                    )
                    for symbol, sell, quantity, price, notional, fee in zip(
                        symbols, sells, quantities, prices, notionals, self.order_fee.tolist(), strict=True
                    )
                )
        return cast(tuple[Trade, ...], cached)

    @property
    def sells(self) -> tuple[Trade, ...]:
        return tuple(t for t in self.trades if t.side is Side.SELL)

    @property
    def buys(self) -> tuple[Trade, ...]:
        return tuple(t for t in self.trades if t.side is Side.BUY)

    def post_weights(self) -> npt.NDArray[np.float64]:
        """Return each symbol's expected weight after the plan (of the investable value), as floats for display."""
        invest = self.value_after_units - self.problem.ints.buffer
        values = self.post_lots.astype(np.float64) * self.problem.ints.lot_value.astype(np.float64)
        return values / invest if invest > 0 else np.zeros_like(values)

    @property
    def positions(self) -> tuple[PositionRow, ...]:
        """Return every symbol before and after, with target and weights (built on first access)."""
        cached = self._cache.get("positions")
        if cached is None:
            p = self.problem
            ints = p.ints
            invest_before = max(ints.value - ints.buffer, 0)
            invest_after = max(self.value_after_units - ints.buffer, 0)
            rows = []
            with localcontext(EXACT) as ctx:
                ctx.traps[Inexact] = False
                for i, sym in enumerate(p.symbols):
                    lot_value = int(ints.lot_value[i])
                    before = int(ints.held_lots[i]) * lot_value
                    after = int(self.post_lots[i]) * lot_value
                    rows.append(
                        PositionRow(
                            symbol=sym,
                            quantity_before=p.quantities[i],
                            quantity_after=p.steps[i] * int(self.post_lots[i]),
                            price=p.prices[i],
                            target_weight=p.weights[i],
                            weight_before=_ratio(before, invest_before),
                            weight_after=_ratio(after, invest_after),
                            reason=Reason(int(self.reason[i])),
                        )
                    )
            cached = self._cache["positions"] = tuple(rows)
        return cached

    def submit_orders(
        self,
        *,
        strategy_id: str = "rebalance",
        account_id: str = "default",
        prefix: str = "rb",
        key: str | None = None,
    ) -> list[SubmitOrder]:
        """Return the plan as market orders, sells first. Client order ids are deterministic
        (``{prefix}-{input fingerprint}-{S|B}-{symbol}``), so submitting the same plan again is deduplicated by
        the engine instead of trading twice. With ``key`` (a caller's rebalance id) it replaces the fingerprint:
        then each (key, side, symbol) is one order however the portfolio moved in between, so re-running a
        rebalance id never trades a side of a symbol twice."""
        fp = self.problem.fingerprint() if key is None else key
        symbols, sells, quantities = self._order_rows()
        market, day = OrderType.MARKET, TimeInForce.DAY
        return [
            SubmitOrder(
                client_order_id=f"{prefix}-{fp}-{'S' if sell else 'B'}-{symbol}",
                symbol=symbol,
                side=Side.SELL if sell else Side.BUY,
                quantity=quantity,
                order_type=market,
                time_in_force=day,
                strategy_id=strategy_id,
                account_id=account_id,
            )
            for symbol, sell, quantity in zip(symbols, sells, quantities, strict=True)
        ]


def _ratio(num: int, den: int) -> Decimal:
    if den <= 0:
        return ZERO
    return (Decimal(num) / Decimal(den)).quantize(_WEIGHT_PLACES, rounding=ROUND_HALF_EVEN)


def plan_from_arrays(
    problem: RebalanceProblem,
    engine: str,
    trade_lots: IntArray,
    fee: IntArray,
    reason: npt.NDArray[np.int8],
    cash_after: int,
) -> RebalancePlan:
    """Return the plan for per-symbol signed trades (lots) and fees: orders are sells then buys, by symbol."""
    sells = np.flatnonzero(trade_lots < 0)
    buys = np.flatnonzero(trade_lots > 0)
    order_index = np.concatenate((sells, buys)).astype(np.int64, copy=False)
    order_lots = trade_lots[order_index]
    order_fee = fee[order_index]
    gross = int(np.abs(order_lots) @ problem.ints.lot_value[order_index]) if len(order_index) else 0
    return RebalancePlan(
        problem=problem,
        engine=engine,
        order_index=order_index,
        order_lots=order_lots,
        order_fee=order_fee,
        post_lots=problem.ints.held_lots + trade_lots,
        reason=reason,
        cash_after_units=cash_after,
        fees_units=int(order_fee.sum()),
        gross_units=gross,
    )


__all__ = ["PositionRow", "Reason", "RebalancePlan", "Trade", "plan_from_arrays"]
