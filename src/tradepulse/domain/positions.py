"""Positions and account cash, moved only by fills.

Positions use average cost. ``cost_basis`` is the signed cost of the open quantity (positive for a long, negative
for a short) and is kept exact; when a fill reduces a position, the cost it removes is rounded to 1e-12 only to
decide how much of the PnL is *realized*. That split never loses money: at every step

    cost_basis - realized_pnl == sum(signed quantity x price over all fills)

exactly, so realized + unrealized PnL always equals what the fills and the mark price say.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, Inexact, localcontext

import msgspec

from tradepulse.domain.fills import Fill
from tradepulse.domain.money import EXACT, ZERO, Money, exact_add, exact_mul, exact_sub

_COST_STEP = Decimal("1e-12")


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A signed position in one symbol of one account."""

    account_id: str = "default"
    symbol: str
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    currency: str = "USD"
    updated_ns: int = 0

    @property
    def avg_price(self) -> Decimal | None:
        """Return the average cost per unit of the open quantity, or None when flat."""
        return None if self.quantity == 0 else self.cost_basis / self.quantity

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """Return the PnL of the open quantity at ``mark``, exactly."""
        return exact_sub(exact_mul(self.quantity, mark), self.cost_basis)

    def market_value(self, mark: Decimal) -> Decimal:
        return exact_mul(self.quantity, mark)

    def apply_fill(self, fill: Fill) -> Position:
        """Return the position after ``fill``."""
        if fill.symbol != self.symbol:
            raise ValueError(f"fill {fill.fill_id!r} is for {fill.symbol}, not {self.symbol}")
        signed_qty = exact_mul(fill.quantity, Decimal(fill.side.sign))
        qty, cost, realized = self.quantity, self.cost_basis, self.realized_pnl
        if qty == 0 or (qty > 0) == (signed_qty > 0):
            qty = exact_add(qty, signed_qty)
            cost = exact_add(cost, exact_mul(signed_qty, fill.price))
        else:
            closing = min(abs(signed_qty), abs(qty))
            if closing == abs(qty):
                removed = cost
            else:
                with localcontext(EXACT) as ctx:
                    ctx.traps[Inexact] = False
                    removed = (cost * closing / abs(qty)).quantize(_COST_STEP, rounding=ROUND_HALF_EVEN)
            signed_close = closing if signed_qty > 0 else -closing
            realized = exact_add(realized, exact_sub(-exact_mul(signed_close, fill.price), removed))
            cost = exact_sub(cost, removed)
            qty = exact_add(qty, signed_close)
            leftover = exact_sub(signed_qty, signed_close)
            if leftover != 0:
                qty = leftover
                cost = exact_mul(leftover, fill.price)
        return msgspec.structs.replace(
            self,
            quantity=qty,
            cost_basis=cost,
            realized_pnl=realized,
            fees=exact_add(self.fees, fill.fee),
            updated_ns=max(self.updated_ns, fill.ts_exchange_ns),
        )


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """An account's cash. Cash moves by each fill's notional and fee, exactly."""

    account_id: str = "default"
    cash: Money = Money(ZERO)
    updated_ns: int = 0

    def apply_fill(self, fill: Fill) -> Account:
        """Return the account after paying for (or receiving) ``fill`` and its fee."""
        if fill.currency != self.cash.currency:
            raise ValueError(f"fill {fill.fill_id!r} is in {fill.currency}, account in {self.cash.currency}")
        return msgspec.structs.replace(
            self,
            cash=self.cash + Money(fill.cash_delta, self.cash.currency),
            updated_ns=max(self.updated_ns, fill.ts_exchange_ns),
        )
