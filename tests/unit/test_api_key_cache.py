"""The per-process key cache: one lookup per key at a time, refresh ahead of expiry, revocation within the TTL.

The store is a table in a dict here (what ``KeyStore.verify`` answers for a token); the integration tests run the
same cache against PostgreSQL (tests/integration/api/test_auth.py).
"""

from __future__ import annotations

import asyncio

import pytest

from tradepulse.api.auth import KeyCache, Principal, Scope
from tradepulse.storage.keys import ApiKey

KEY = ApiKey(key_id="k1", name="n", account_id="acc", scope="read", created_ns=1)


class Store:
    """Answers ``verify`` from ``valid``; each lookup waits until the test releases it."""

    def __init__(self) -> None:
        self.valid: dict[str, ApiKey] = {"tok": KEY}
        self.calls = 0
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def verify(self, token: str) -> ApiKey | None:
        self.calls += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.valid.get(token)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_requests_share_one_lookup() -> None:
    store, now = Store(), [100.0]
    cache = KeyCache(5.0, clock=lambda: now[0])
    waiting = [asyncio.ensure_future(cache.principal("tok", store.verify)) for _ in range(50)]
    await _settle()
    assert store.calls == 1
    store.release.set()
    results = await asyncio.gather(*waiting)
    assert results == [Principal("k1", "n", "acc", Scope.READ)] * 50
    assert await cache.principal("tok", store.verify) == results[0]  # cached now
    assert store.calls == cache.lookups == 1


async def test_unknown_key_is_none_and_not_cached() -> None:
    store = Store()
    store.release.set()
    cache = KeyCache(5.0)
    assert await cache.principal("nope", store.verify) is None
    assert await cache.principal("nope", store.verify) is None
    assert store.calls == 2


async def test_a_used_entry_is_refreshed_ahead_of_expiry_in_the_background() -> None:
    store, now = Store(), [100.0]
    cache = KeyCache(5.0, refresh_s=1.0, clock=lambda: now[0])
    store.release.set()
    principal = await cache.principal("tok", store.verify)
    store.release.clear()
    now[0] = 104.5  # due for refresh, not expired: served at once, one lookup starts
    results = [await cache.principal("tok", store.verify) for _ in range(20)]
    assert results == [principal] * 20
    await _settle()
    assert store.calls == 2
    store.release.set()
    await _settle()
    now[0] = 105.5  # past the first entry's expiry: the refreshed one (valid to 109.5) serves, no lookup
    assert await cache.principal("tok", store.verify) == principal
    assert store.calls == 2


async def test_a_revoked_key_stops_within_the_ttl() -> None:
    store, now = Store(), [100.0]
    cache = KeyCache(5.0, refresh_s=1.0, clock=lambda: now[0])
    store.release.set()
    assert await cache.principal("tok", store.verify) is not None
    del store.valid["tok"]  # revoked at t=100
    now[0] = 104.2  # the refresh ahead of expiry finds it gone: refused from then on
    assert await cache.principal("tok", store.verify) is not None  # the entry still serves this one
    await _settle()
    assert await cache.principal("tok", store.verify) is None
    assert cache.get("tok") is None


async def test_entry_expires_ttl_after_its_lookup_started_even_if_the_lookup_was_slow() -> None:
    store, now = Store(), [100.0]
    cache = KeyCache(5.0, refresh_s=1.0, clock=lambda: now[0])
    first = asyncio.ensure_future(cache.principal("tok", store.verify))
    await _settle()
    now[0] = 103.0  # the store answers 3 s later; the answer may be 3 s old, so it is valid to 105 only
    store.release.set()
    assert await first is not None
    now[0] = 105.01
    assert cache.get("tok") is None


async def test_an_expired_entry_waits_for_one_lookup() -> None:
    store, now = Store(), [100.0]
    cache = KeyCache(5.0, refresh_s=1.0, clock=lambda: now[0])
    store.release.set()
    await cache.principal("tok", store.verify)
    store.release.clear()
    now[0] = 106.0  # idle past expiry: requests wait, for one lookup
    waiting = [asyncio.ensure_future(cache.principal("tok", store.verify)) for _ in range(10)]
    await _settle()
    assert not any(w.done() for w in waiting)
    store.release.set()
    assert len(set(await asyncio.gather(*waiting))) == 1
    assert store.calls == 2


async def test_a_lookup_error_reaches_every_waiter_and_is_not_cached() -> None:
    store = Store()
    cache = KeyCache(5.0)
    store.fail = OSError("store down")
    waiting = [asyncio.ensure_future(cache.principal("tok", store.verify)) for _ in range(3)]
    await _settle()
    store.release.set()
    for w in waiting:
        with pytest.raises(OSError, match="store down"):
            await w
    store.fail = None
    assert await cache.principal("tok", store.verify) is not None
    assert store.calls == 2


async def test_a_waiter_giving_up_does_not_cancel_the_lookup_others_wait_for() -> None:
    store = Store()
    cache = KeyCache(5.0)
    first = asyncio.ensure_future(cache.principal("tok", store.verify))
    second = asyncio.ensure_future(cache.principal("tok", store.verify))
    await _settle()
    first.cancel()
    await _settle()
    store.release.set()
    assert await second is not None
    assert first.cancelled()
    assert store.calls == 1


async def test_refresh_failure_keeps_the_entry_until_expiry() -> None:
    store, now = Store(), [100.0]
    cache = KeyCache(5.0, refresh_s=1.0, clock=lambda: now[0])
    store.release.set()
    principal = await cache.principal("tok", store.verify)
    store.fail = OSError("store down")
    now[0] = 104.5
    assert await cache.principal("tok", store.verify) == principal
    await _settle()
    assert await cache.principal("tok", store.verify) == principal  # still within its TTL
    now[0] = 105.5
    with pytest.raises(OSError, match="store down"):
        await cache.principal("tok", store.verify)


async def test_zero_ttl_looks_up_every_time() -> None:
    store = Store()
    store.release.set()
    cache = KeyCache(0.0)
    for _ in range(3):
        assert await cache.principal("tok", store.verify) is not None
    assert store.calls == 3
