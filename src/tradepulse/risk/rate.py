"""Order rate limiting per strategy: a token bucket on an injected clock."""

from __future__ import annotations

from tradepulse.clock import Clock


class TokenBucket:
    """Allow ``rate`` events per second with bursts of up to ``rate`` (the bucket starts full)."""

    __slots__ = ("_last_ns", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, now_ns: int) -> None:
        self.rate = float(rate)
        self.capacity = float(rate)
        self._tokens = self.capacity
        self._last_ns = now_ns

    def take(self, now_ns: int) -> bool:
        """Take one token if one is there; return whether it was."""
        elapsed = now_ns - self._last_ns
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate / 1e9)
            self._last_ns = now_ns
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One token bucket per key (strategy id)."""

    __slots__ = ("_buckets", "_clock", "rate")

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, key: str) -> bool:
        now = self._clock.monotonic_ns()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
        return bucket.take(now)
