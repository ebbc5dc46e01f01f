"""A seedable multi-symbol market simulator.

Each symbol's mid price follows geometric Brownian motion with the configured annualised volatility; trades
print at the bid or ask around the mid with a random size, and the spread is a few ticks. Given the same seed,
symbols and step times, it produces the same ticks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tradepulse.domain import Tick

_SECONDS_PER_YEAR = 252 * 6.5 * 3600


class MarketSimulator:
    """Generate ticks for ``symbols``; call :meth:`step` with the simulated time that passed."""

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        seed: int = 7,
        start_price: float = 100.0,
        volatility: float = 0.3,
        tick_size: float = 0.01,
    ) -> None:
        if not symbols:
            raise ValueError("symbols: at least one symbol is needed")
        self.symbols = tuple(symbols)
        self._rng = np.random.default_rng(seed)
        self._tick = tick_size
        self._sigma = volatility
        self._mid = np.full(len(self.symbols), start_price, dtype=np.float64)

    def step(self, ts_ns: int, dt_s: float) -> list[Tick]:
        """Advance every symbol by ``dt_s`` simulated seconds and return one tick per symbol at ``ts_ns``."""
        n = len(self.symbols)
        shocks = self._rng.standard_normal(n)
        var = self._sigma**2 * dt_s / _SECONDS_PER_YEAR
        self._mid *= np.exp(-0.5 * var + math.sqrt(var) * shocks)
        half_spread = self._tick * self._rng.integers(1, 4, n)
        at_ask = self._rng.random(n) < 0.5
        sizes = self._rng.integers(1, 20, n) * 100
        ticks: list[Tick] = []
        for i, symbol in enumerate(self.symbols):
            mid = round(self._mid[i] / self._tick) * self._tick
            bid = round(mid - half_spread[i], 2)
            ask = round(mid + half_spread[i], 2)
            price = ask if at_ask[i] else bid
            ticks.append(
                Tick(
                    symbol=symbol,
                    ts_ns=ts_ns,
                    price=price,
                    size=float(sizes[i]),
                    bid=bid,
                    ask=ask,
                    bid_size=float(sizes[i]),
                    ask_size=float(sizes[i]),
                    stamps={"market": ts_ns},
                )
            )
        return ticks
