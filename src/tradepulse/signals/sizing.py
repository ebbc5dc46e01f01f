"""Sizing policies: how much to trade on a signal.

* ``fixed_quantity``: always ``quantity`` units;
* ``fixed_notional``: ``notional / price`` units;
* ``volatility_target``: ``risk_per_order / (price * sigma_h)`` units, where ``sigma_h`` is the expected
  volatility of the log return over the label horizon (one-bar realised volatility * sqrt(horizon), known at
  the signal): each order risks about the same amount of money whatever the instrument's volatility.

Quantities are rounded *down* to the lot, so a policy never trades more than it asked for; zero means no order.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from tradepulse.config import SignalsConfig


class SizingPolicy(Protocol):
    name: str

    def quantity(self, price: float, sigma_h: float) -> Decimal:
        """Return the order quantity (>= 0, on the lot grid) for a signal at ``price``."""
        ...


def _to_lots(units: float, lot: Decimal) -> Decimal:
    if not math.isfinite(units) or units <= 0:
        return Decimal(0)
    lots = (Decimal(repr(units)) / lot).to_integral_value(rounding=ROUND_DOWN)
    return lots * lot if lots > 0 else Decimal(0)


def lot_decimal(lot_size: float) -> Decimal:
    """The lot as a Decimal with no spurious exponent: 1.0 -> 1 (quantities print as ``100``, not ``100.0`` or
    ``1E+2``), 0.01 -> 0.01."""
    lot = Decimal(repr(lot_size))
    return Decimal(int(lot)) if lot == lot.to_integral_value() else lot


class FixedQuantity:
    name = "fixed_quantity"

    def __init__(self, quantity: float, lot: Decimal) -> None:
        self._q = _to_lots(quantity, lot)

    def quantity(self, price: float, sigma_h: float) -> Decimal:
        return self._q


class FixedNotional:
    name = "fixed_notional"

    def __init__(self, notional: float, lot: Decimal) -> None:
        self._notional = notional
        self._lot = lot

    def quantity(self, price: float, sigma_h: float) -> Decimal:
        return _to_lots(self._notional / price, self._lot) if price > 0 else Decimal(0)


class VolatilityTarget:
    name = "volatility_target"

    def __init__(self, risk_per_order: float, lot: Decimal) -> None:
        self._risk = risk_per_order
        self._lot = lot

    def quantity(self, price: float, sigma_h: float) -> Decimal:
        if not (price > 0 and sigma_h > 0 and math.isfinite(sigma_h)):
            return Decimal(0)
        return _to_lots(self._risk / (price * sigma_h), self._lot)


def make_sizing(cfg: SignalsConfig) -> SizingPolicy:
    """Return the policy ``cfg.sizing`` names."""
    lot = lot_decimal(cfg.lot_size)
    if cfg.sizing == "fixed_quantity":
        return FixedQuantity(cfg.quantity, lot)
    if cfg.sizing == "fixed_notional":
        return FixedNotional(cfg.notional, lot)
    return VolatilityTarget(cfg.risk_per_order, lot)
