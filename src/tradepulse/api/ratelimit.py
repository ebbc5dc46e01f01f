"""Per-key rate limits: GCRA (the generic cell rate algorithm), in Redis for many processes or in-process.

GCRA keeps one number per key, the theoretical arrival time (TAT) of the next request at the sustained rate.
A request at ``now`` is allowed if ``TAT - burst * interval <= now``; it then moves TAT to ``max(TAT, now) +
interval``. That is a token bucket of ``burst`` tokens refilled at ``rate`` per second, with no refill timer and
one read-modify-write per request. In Redis the read-modify-write is one Lua script using the server's clock, so
every worker process (and every API host) shares the same limit per key.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1]: the key's TAT; ARGV[1]: emission interval (ms), ARGV[2]: burst (requests). Returns {allowed, wait_ms}
# with wait_ms as a string (Lua numbers would come back truncated to integers).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - interval * tonumber(ARGV[2])
if allow_at > now then
  return {0, tostring(allow_at - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, '0'}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: seconds until a request would be allowed (0 when allowed)
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """Return the Retry-After value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


ALLOWED = Decision(True)


class RateLimiter(Protocol):
    rate_per_s: float
    burst: int

    async def check(self, key: str) -> Decision:
        """Count one request for ``key`` and say whether it is allowed."""
        ...


class MemoryRateLimiter:
    """GCRA in this process (the embedded mode: one process serves every request)."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        self._tat: dict[str, float] = {}

    async def check(self, key: str) -> Decision:
        now = time.monotonic()
        tat = max(self._tat.get(key, now), now)
        allow_at = tat + self._interval - self._interval * self.burst
        if allow_at > now:
            return Decision(False, allow_at - now)
        self._tat[key] = tat + self._interval
        if len(self._tat) > 100_000:  # forget keys whose bucket is full again
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return ALLOWED


class RedisRateLimiter:
    """GCRA in Redis, one script call per request: the limit holds across processes and hosts."""

    def __init__(self, client: Redis, rate_per_s: float, burst: int, *, prefix: str = "tp:ratelimit:") -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.prefix = prefix
        self._interval_ms = str(1000.0 / rate_per_s)
        self._burst = str(burst)
        self._script = client.register_script(_GCRA)
        self._last_warning = 0.0

    async def check(self, key: str) -> Decision:
        try:
            allowed, wait_ms = await self._script(keys=[self.prefix + key], args=[self._interval_ms, self._burst])
        except (RedisError, OSError) as exc:
            # fail open: the limiter protects the service from one noisy key; with Redis down, refusing every
            # request would turn a degraded platform into a dead API
            now = time.monotonic()
            if now - self._last_warning > 10:
                self._last_warning = now
                log.warning("rate limiter: Redis unavailable (%s); requests are not limited", type(exc).__name__)
            return ALLOWED
        if int(allowed):
            return ALLOWED
        return Decision(False, float(wait_ms) / 1000.0)


__all__ = ["ALLOWED", "Decision", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]
