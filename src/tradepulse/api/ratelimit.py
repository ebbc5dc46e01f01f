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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1]: the key's TAT; ARGV[1]: emission interval (ms), ARGV[2]: burst, ARGV[3]: how many requests to admit.
# Admits n = min(wanted, available) at once (available: floor((now - TAT) / interval + burst)) and returns
# {n, wait_ms}, wait_ms (as a string: Lua numbers would come back truncated) when n is 0.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local available = math.floor((now - tat) / interval + burst + 1e-9)
if available < 1 then
  return {0, tostring(tat + interval - interval * burst - now)}
end
local n = math.min(tonumber(ARGV[3]), available)
local new_tat = tat + n * interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {n, '0'}
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

    def __init__(self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        self._tat: dict[str, float] = {}
        self._clock = clock

    async def check(self, key: str) -> Decision:
        now = self._clock()
        tat = max(self._tat.get(key, now), now)
        allow_at = tat + self._interval - self._interval * self.burst
        if allow_at > now:
            return Decision(False, allow_at - now)
        self._tat[key] = tat + self._interval
        if len(self._tat) > 100_000:  # forget keys whose bucket is full again
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return ALLOWED


class _Lease:
    """Requests a process has admitted in Redis for one key and not used yet."""

    __slots__ = ("expires", "left", "size")

    def __init__(self, left: int, expires: float, size: int) -> None:
        self.left = left
        self.expires = expires
        self.size = size


class RedisRateLimiter:
    """GCRA in Redis: the limit holds across processes and hosts.

    A busy key does not cost a Redis call per request: a process admits several of its requests at once (a lease
    of up to ``max_lease``, taken from the shared bucket in the same script) and serves the next ones from it for
    up to ``lease_s``. The lease doubles each time one is used up within its life and starts again at 1 for a
    quiet key, so a key sending a request now and then is checked exactly, one call each. Requests are admitted
    from the shared bucket before they are served, so all processes together never exceed the limit; what a
    lease does not use in time is dropped (a busy key may get slightly less than its limit, never more). A refused
    key is refused locally until Redis said a request could pass, so a flood of refused requests costs no calls.
    """

    def __init__(
        self,
        client: Redis,
        rate_per_s: float,
        burst: int,
        *,
        prefix: str = "tp:ratelimit:",
        lease_s: float = 0.05,
        max_lease: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.prefix = prefix
        self.lease_s = lease_s
        #: at most a quarter of the burst, and what the rate refills during one lease
        self.max_lease = (
            max(1, min(burst // 4, int(rate_per_s * lease_s), 256)) if max_lease is None else max(1, max_lease)
        )
        self._interval_ms = str(1000.0 / rate_per_s)
        self._burst = str(burst)
        self._script = client.register_script(_GCRA)
        self._leases: dict[str, _Lease] = {}
        #: keys refused, until when: a refused key costs no call until its bucket can hold a request again
        self._blocked: dict[str, float] = {}
        self._clock = clock
        self._last_warning = 0.0
        #: script calls made (each admits one request or a lease of several)
        self.calls = 0

    async def take(self, key: str, wanted: int) -> tuple[int, float]:
        """Admit up to ``wanted`` requests of ``key`` in Redis; return (admitted, seconds to wait if none)."""
        self.calls += 1
        admitted, wait_ms = await self._script(
            keys=[self.prefix + key], args=[self._interval_ms, self._burst, str(wanted)]
        )
        return int(admitted), float(wait_ms) / 1000.0

    async def check(self, key: str) -> Decision:
        now = self._clock()
        lease = self._leases.get(key)
        if lease is not None and lease.left > 0 and now < lease.expires:
            lease.left -= 1
            return ALLOWED
        blocked = self._blocked.get(key)
        if blocked is not None:
            if now < blocked:  # the bucket cannot refill before then (tokens only come back with time)
                return Decision(False, blocked - now)
            del self._blocked[key]
        # a lease used up within its life asks for twice as many; a quiet key asks for one
        wanted = min(lease.size * 2, self.max_lease) if lease is not None and now < lease.expires else 1
        try:
            admitted, wait_s = await self.take(key, wanted)
        except (RedisError, OSError) as exc:
            # fail open: the limiter protects the service from one noisy key; with Redis down, refusing every
            # request would turn a degraded platform into a dead API
            if now - self._last_warning > 10:
                self._last_warning = now
                log.warning("rate limiter: Redis unavailable (%s); requests are not limited", type(exc).__name__)
            return ALLOWED
        if admitted == 0:
            if len(self._blocked) > 100_000:
                self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            self._blocked[key] = now + wait_s
            return Decision(False, wait_s)
        current = self._leases.get(key)
        if current is not None and current is not lease and current.left > 0 and now < current.expires:
            current.left += admitted - 1  # another request of this key leased meanwhile: keep both
        else:
            if len(self._leases) > 100_000:  # forget leases that ran out
                self._leases = {k: v for k, v in self._leases.items() if v.expires > now}
            self._leases[key] = _Lease(admitted - 1, now + self.lease_s, wanted)
        return ALLOWED


__all__ = ["ALLOWED", "Decision", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]
