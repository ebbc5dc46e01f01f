"""Injectable clocks, so that simulations and tests are deterministic.

Code asks a :class:`Clock` for the time instead of calling :mod:`time` directly. Wall-clock nanoseconds
(``time.time_ns``) are what message stage stamps use, because they are comparable across processes on one
host; monotonic time is for measuring intervals inside one process.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of time."""

    def time_ns(self) -> int:
        """Return wall-clock time in nanoseconds since the Unix epoch."""
        ...

    def monotonic_ns(self) -> int:
        """Return a monotonic time in nanoseconds, for intervals."""
        ...


class LiveClock:
    """The real clock."""

    __slots__ = ()

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now = start_ns

    def time_ns(self) -> int:
        return self._now

    def monotonic_ns(self) -> int:
        return self._now

    def advance(self, ns: int) -> None:
        """Move the clock forward by ``ns`` nanoseconds."""
        if ns < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {ns} ns)")
        self._now += ns

    def set(self, now_ns: int) -> None:
        """Jump to ``now_ns``; it may not be earlier than the current time."""
        self.advance(now_ns - self._now)


LIVE_CLOCK = LiveClock()
