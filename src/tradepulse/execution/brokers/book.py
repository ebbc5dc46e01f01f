"""A per-symbol limit order book with price-time priority, plus synthetic depth from market data.

Client orders rest in :class:`SideBook`s: price levels (integer ticks) kept sorted, each a FIFO queue, so the
best price trades first and, at one price, the earliest order first. The market simulator's quotes become
:class:`SyntheticDepth`: a few levels per side around the quoted bid and ask, refreshed on every tick, so a
large market order walks the book level by level to worse prices instead of filling at the touch.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

from tradepulse.execution.brokers.venue import VenueOrder


class SideBook:
    """Resting client orders on one side. Bids: the highest price is best; asks: the lowest."""

    __slots__ = ("bids", "levels", "prices")

    def __init__(self, bids: bool) -> None:
        self.bids = bids
        self.levels: dict[int, deque[VenueOrder]] = {}
        self.prices: list[int] = []  # ascending

    def __bool__(self) -> bool:
        return bool(self.prices)

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.bids else self.prices[0]

    def front(self, price: int) -> VenueOrder:
        return self.levels[price][0]

    def add(self, vo: VenueOrder, price: int) -> None:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = deque()
            insort(self.prices, price)
        level.append(vo)

    def pop_front(self, price: int) -> None:
        level = self.levels[price]
        level.popleft()
        if not level:
            self._drop_level(price)

    def remove(self, vo: VenueOrder, price: int) -> bool:
        level = self.levels.get(price)
        if level is None:
            return False
        try:
            level.remove(vo)
        except ValueError:
            return False
        if not level:
            self._drop_level(price)
        return True

    def _drop_level(self, price: int) -> None:
        del self.levels[price]
        i = bisect_left(self.prices, price)
        del self.prices[i]

    def better_or_equal(self, price: int, than: int) -> bool:
        """Return whether ``price`` is at least as good as ``than`` for this side's resting orders."""
        return price >= than if self.bids else price <= than

    def walk(self) -> list[tuple[int, deque[VenueOrder]]]:
        """Return the levels best first."""
        order = reversed(self.prices) if self.bids else iter(self.prices)
        return [(p, self.levels[p]) for p in order]

    def count(self) -> int:
        return sum(len(level) for level in self.levels.values())


@dataclass(slots=True)
class SyntheticDepth:
    """Market liquidity on one side: ``[price_ticks, lots]`` best first, consumed as it trades."""

    levels: list[list[int]] = field(default_factory=list)

    def best(self) -> int | None:
        while self.levels and self.levels[0][1] <= 0:
            self.levels.pop(0)
        return self.levels[0][0] if self.levels else None

    def take(self, lots: int) -> int:
        """Take up to ``lots`` at the best level; return how many were taken."""
        level = self.levels[0]
        taken = min(lots, level[1])
        level[1] -= taken
        if level[1] == 0:
            self.levels.pop(0)
        return taken


__all__ = ["SideBook", "SyntheticDepth"]
