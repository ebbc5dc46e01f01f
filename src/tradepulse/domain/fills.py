"""Fills: the executions that move positions and cash."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradepulse.domain.enums import Liquidity, Side
from tradepulse.domain.money import exact_mul


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of (part of) an order.

    ``fill_id`` is unique per venue execution: the ledger books a fill id once, so a redelivered fill changes
    nothing. ``fee`` is in the account currency and always >= 0 here (a rebate would be negative).
    """

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal = Decimal(0)
    currency: str = "USD"
    liquidity: Liquidity = Liquidity.TAKER
    venue_order_id: str | None = None
    ts_exchange_ns: int = 0
    ts_received_ns: int = 0

    def __post_init__(self) -> None:
        if not self.fill_id:
            raise ValueError("fill_id: must not be empty")
        if not self.price.is_finite() or self.price <= 0:
            raise ValueError(f"price: must be a positive finite number, got {self.price}")
        if not self.quantity.is_finite() or self.quantity <= 0:
            raise ValueError(f"quantity: must be a positive finite number, got {self.quantity}")
        if not self.fee.is_finite():
            raise ValueError(f"fee: must be finite, got {self.fee}")

    @property
    def notional(self) -> Decimal:
        """Return price x quantity, exactly."""
        return exact_mul(self.price, self.quantity)

    @property
    def cash_delta(self) -> Decimal:
        """Return the change in cash this fill causes: -(notional) - fee for a buy, +notional - fee for a sell."""
        signed = -self.notional if self.side is Side.BUY else self.notional
        return signed - self.fee
