"""GCRA in-process: a burst, then the sustained rate, with an injected clock."""

from __future__ import annotations

from tradepulse.api.ratelimit import Decision, MemoryRateLimiter


async def test_burst_then_sustained_rate() -> None:
    now = [100.0]
    limiter = MemoryRateLimiter(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [(await limiter.check("k")).allowed for _ in range(4)] == [True, True, True, False]
    refused = await limiter.check("k")
    assert refused.retry_after_s == 0.5  # one emission interval at 2/s
    assert refused.retry_after_header == "1"
    assert (await limiter.check("other")).allowed  # per key
    now[0] += 0.5
    assert (await limiter.check("k")).allowed
    assert not (await limiter.check("k")).allowed
    now[0] += 10.0  # idle: the burst is back, never more
    assert [(await limiter.check("k")).allowed for _ in range(4)] == [True, True, True, False]


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert Decision(False, 0.01).retry_after_header == "1"
    assert Decision(False, 2.2).retry_after_header == "3"
