"""Instruments and the one place where prices round to the tick and quantities to the lot."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, Inexact, localcontext

import msgspec

from tradepulse.domain.money import EXACT


class InstrumentError(ValueError):
    """An instrument definition, price or quantity is invalid for the instrument."""


def _round_to_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    with localcontext(EXACT) as ctx:
        ctx.traps[Inexact] = False
        units = (value / step).to_integral_value(rounding=rounding)
        return (units * step).quantize(step)


class Instrument(msgspec.Struct, frozen=True):
    """A tradable instrument.

    ``tick_size`` is the price increment and ``lot_size`` the quantity increment (``Decimal("0.0001")`` for
    fractional shares, ``Decimal(1)`` for whole shares). ``price_precision`` is the number of decimals prices are
    shown and stored with; the tick must be representable in it.
    """

    symbol: str
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal(1)
    price_precision: int = 2
    currency: str = "USD"
    tradable: bool = True

    def __post_init__(self) -> None:
        if not self.symbol or len(self.symbol) > 32 or not self.symbol.replace(".", "").replace("-", "").isalnum():
            raise InstrumentError(f"symbol: {self.symbol!r} must be 1-32 letters, digits, '.' or '-'")
        if not self.tick_size.is_finite() or self.tick_size <= 0:
            raise InstrumentError(f"{self.symbol}: tick_size must be > 0, got {self.tick_size}")
        if not self.lot_size.is_finite() or self.lot_size <= 0:
            raise InstrumentError(f"{self.symbol}: lot_size must be > 0, got {self.lot_size}")
        if not 0 <= self.price_precision <= 12:
            raise InstrumentError(f"{self.symbol}: price_precision must be in 0..12, got {self.price_precision}")
        if self.tick_size.quantize(Decimal(1).scaleb(-self.price_precision)) != self.tick_size:
            raise InstrumentError(
                f"{self.symbol}: tick_size {self.tick_size} needs more than {self.price_precision} decimals"
            )

    def round_price(self, price: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """Return ``price`` rounded to a multiple of the tick size (idempotent)."""
        return _round_to_step(price, self.tick_size, rounding).quantize(Decimal(1).scaleb(-self.price_precision))

    def round_quantity(self, quantity: Decimal, rounding: str = ROUND_DOWN) -> Decimal:
        """Return ``quantity`` rounded to a multiple of the lot size, toward zero by default (idempotent)."""
        return _round_to_step(quantity, self.lot_size, rounding)

    def price_from_float(self, price: float) -> Decimal:
        """Return a market-data float price as an exact Decimal on the tick grid."""
        # float() first: a numpy float64 (the simulator's) reprs as "np.float64(...)" under numpy 2
        return self.round_price(Decimal(repr(float(price))))

    def is_valid_price(self, price: Decimal) -> bool:
        """Return whether ``price`` is finite, positive and on the tick grid."""
        return price.is_finite() and price > 0 and price % self.tick_size == 0

    def is_valid_quantity(self, quantity: Decimal) -> bool:
        """Return whether ``quantity`` is finite, positive and a whole number of lots."""
        return quantity.is_finite() and quantity > 0 and quantity % self.lot_size == 0


__all__ = ["Instrument", "InstrumentError"]
