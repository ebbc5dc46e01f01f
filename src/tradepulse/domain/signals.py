"""Model signals."""

from __future__ import annotations

import math
from decimal import Decimal

from tradepulse.domain.enums import SignalAction
from tradepulse.domain.messages import Message


class Signal(Message, frozen=True, kw_only=True):
    """A model's view on one symbol at one time: BUY, HOLD or SELL with a confidence in [0, 1]."""

    symbol: str
    action: SignalAction
    confidence: float
    model_version: str
    ts_ns: int
    price: Decimal | None = None
    probabilities: tuple[float, float, float] | None = None  # P(SELL), P(HOLD), P(BUY)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError(f"confidence: must be in [0, 1], got {self.confidence}")
        if not self.symbol:
            raise ValueError("symbol: must not be empty")
