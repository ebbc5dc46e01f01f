"""The signal service: ticks -> bars -> online features -> model -> signals -> order requests (sizing policy,
confidence threshold, cooldown)."""

from __future__ import annotations

from tradepulse.signals.engine import LabelSpec, SignalEngine, client_order_id
from tradepulse.signals.sizing import FixedNotional, FixedQuantity, SizingPolicy, VolatilityTarget, make_sizing

__all__ = [
    "FixedNotional",
    "FixedQuantity",
    "LabelSpec",
    "SignalEngine",
    "SizingPolicy",
    "VolatilityTarget",
    "client_order_id",
    "make_sizing",
]
