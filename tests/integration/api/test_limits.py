"""Request limits: per-key rate limit across app instances (Redis GCRA), body size, unknown query parameters,
validation errors with field paths, hostile inputs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api.conftest import MakeKey, api_settings_for
from tradepulse.api.app import create_app
from tradepulse.api.auth import Scope
from tradepulse.api.services import Services, open_services

STATE = "/api/v1/risk/state"


@pytest.fixture
async def limited(tmp_path: Path, redis_url: str, pg_database: str, pg_schema: str) -> AsyncIterator[list[Services]]:
    """Two API instances (two processes' worth of services) over the same Redis and PostgreSQL, 1 request/s with a
    burst of 3 per key."""
    settings = api_settings_for(tmp_path, redis_url, pg_database, pg_schema, rate_per_s=1.0, rate_burst=3)
    async with open_services(settings) as a, open_services(settings) as b:
        yield [a, b]


async def test_rate_limit_holds_across_instances(limited: list[Services]) -> None:
    _, token = await limited[0].keys.create(name="rl", account_id="default", scope="read")
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s)), base_url="http://t") for s in limited
    ]
    try:
        statuses = []
        for i in range(4):  # alternate between the two instances: the limit is the key's, not the process's
            r = await clients[i % 2].get("/api/v1/signals", headers={"X-API-Key": token})
            statuses.append(r.status_code)
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3] == 429
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        # another key has its own budget
        _, other = await limited[1].keys.create(name="rl2", account_id="default", scope="read")
        assert (await clients[1].get("/api/v1/signals", headers={"X-API-Key": other})).status_code == 200
    finally:
        for c in clients:
            await c.aclose()


async def test_body_larger_than_the_limit_is_413(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    token = await make_key(Scope.ADMIN)
    huge = b'{"state": "ACTIVE", "reason": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = await app_client.put(STATE, content=huge, headers={"X-API-Key": token, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_unknown_query_parameter_is_422(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    token = await make_key(Scope.READ)
    r = await app_client.get("/api/v1/signals?symbl=AAA", headers={"X-API-Key": token})
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "validation_error",
        "message": "unknown query parameter 'symbl'",
        "field": "query.symbl",
    }
    ok = await app_client.get("/api/v1/signals/AAA/history?limit=5", headers={"X-API-Key": token})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/signals/AAA/history", "limit=0", "query.limit"),
        ("/api/v1/signals/AAA/history", "limit=100001", "query.limit"),
        ("/api/v1/signals/AAA/history", "limit=abc", "query.limit"),
        ("/api/v1/signals/AAA/history", "limit=1e308", "query.limit"),
        ("/api/v1/signals/AAA/history", "limit=NaN", "query.limit"),
        ("/api/v1/signals/AAA/history", "limit=Infinity", "query.limit"),
        ("/api/v1/signals/AAA/history", "limit=99999999999999999999999999999999999999999", "query.limit"),
        ("/api/v1/market/AAA/ticks", "start_ns=-1", "query.start_ns"),
        ("/api/v1/market/AAA/ticks", "end_ns=1e308", "query.end_ns"),
        ("/api/v1/market/AAA/ticks", "end_ns=9223372036854775808", "query.end_ns"),
        ("/api/v1/market/AAA/ticks", "start_ns=NaN", "query.start_ns"),
        ("/api/v1/market/AAA/bars", "interval=1s", "query.interval"),
        ("/api/v1/market/AAA/bars", "limit=-Infinity", "query.limit"),
        ("/api/v1/market/AAA/bars", "start_ns=4102444800000000001", "query.start_ns"),
    ],
)
async def test_bad_query_values_are_422_with_the_field(
    app_client: httpx.AsyncClient, make_key: MakeKey, path: str, query: str, field: str
) -> None:
    token = await make_key(Scope.READ)
    r = await app_client.get(f"{path}?{query}", headers={"X-API-Key": token})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


async def test_bad_path_values_are_422(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    token = await make_key(Scope.READ)
    for path in ("/api/v1/market/%27%3B%20DROP/quote", "/api/v1/market/" + "A" * 40 + "/quote", "/api/v1/models/../x"):
        r = await app_client.get(path, headers={"X-API-Key": token})
        assert r.status_code in (404, 422), path
        assert "error" in r.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"state": "PAUSED", "reason": "x"}', "body.state"),
        (b'{"state": "ACTIVE"}', "body.reason"),
        (b'{"state": "ACTIVE", "reason": ""}', "body.reason"),
        (b'{"state": "ACTIVE", "reason": "a\\u0000b"}', "body.reason"),
        (b'{"state": "ACTIVE", "reason": "forged\\nlog line"}', "body.reason"),
        (b'{"state": "ACTIVE", "reason": "\\ud800"}', None),
        (b'{"state": "ACTIVE", "reason": 12}', "body.reason"),
        (b'{"state": "ACTIVE", "reason": "x", "extra": 1}', "body.extra"),
        (b'{"state": NaN, "reason": "x"}', None),
        (b'{"state": "ACTIVE", "reason": Infinity}', None),
        (b'{"state": "ACTIVE", "reason": 1e308}', "body.reason"),
        (b'{"state": "ACTIVE", "reason": 1' + b"0" * 400 + b"}", "body.reason"),
        (b'["ACTIVE", "x"]', None),
        (b"", None),
        (b"{", None),
    ],
)
async def test_hostile_bodies_are_4xx_and_change_nothing(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services, body: bytes, field: str | None
) -> None:
    token = await make_key(Scope.ADMIN)
    before = await api_services.ledger.trading_state()
    r = await app_client.put(STATE, content=body, headers={"X-API-Key": token, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message", "field"}
    if field is not None:
        assert r.status_code == 422
        assert error["field"] == field
    assert "Traceback" not in r.text
    assert await api_services.ledger.trading_state() == before


async def test_duplicate_json_keys_are_refused(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services
) -> None:
    """A key named twice is refused (a parser would keep one value, not necessarily the one a proxy or a log
    showed); nothing changes."""
    token = await make_key(Scope.ADMIN)
    before = await api_services.ledger.trading_state()
    for body, field in (
        (b'{"state": "HALTED", "reason": "dup", "state": "REDUCING"}', "body.state"),
        (b'{"reason": "a", "state": "HALTED", "reason": "b"}', "body.reason"),
    ):
        r = await app_client.put(STATE, content=body, headers={"X-API-Key": token, "Content-Type": "application/json"})
        assert r.status_code == 422
        assert r.json()["error"] == {
            "code": "validation_error",
            "message": r.json()["error"]["message"],
            "field": field,
        }
        assert "duplicate key" in r.json()["error"]["message"]
    assert await api_services.ledger.trading_state() == before


async def test_large_responses_are_gzipped_small_ones_not(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services
) -> None:
    from tradepulse.domain import Signal, SignalAction

    token = await make_key(Scope.READ)
    for i in range(100):  # a latest-signals body well above api.gzip_min_bytes
        api_services.signals.add(
            Signal(symbol=f"GZ{i:03d}", action=SignalAction.BUY, confidence=0.5, model_version="v1", ts_ns=i)
        )
    big = await app_client.get("/api/signals", headers={"X-API-Key": token, "Accept-Encoding": "gzip"})
    assert big.status_code == 200
    assert big.headers["content-encoding"] == "gzip"
    assert len(big.json()["signals"]) >= 100  # httpx decompressed it
    small = await app_client.get("/api/v1/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    plain = await app_client.get("/api/signals", headers={"X-API-Key": token, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


async def test_gcra_script_admits_what_the_bucket_holds(redis_url: str) -> None:
    from redis.asyncio import Redis

    from tradepulse.api.ratelimit import RedisRateLimiter

    client = Redis.from_url(redis_url)
    try:
        # one request per 1000 s: nothing refills during the test
        limiter = RedisRateLimiter(client, rate_per_s=0.001, burst=10, prefix=f"tp:test:{uuid.uuid4().hex}:")
        assert [(await limiter.take("k", 4))[0] for _ in range(3)] == [4, 4, 2]
        admitted, wait_s = await limiter.take("k", 1)
        assert admitted == 0
        assert 999 < wait_s <= 1000
        assert (await limiter.take("other", 20))[0] == 10  # never more than the burst
    finally:
        await client.aclose()


async def test_leases_never_exceed_the_shared_limit_and_save_calls(redis_url: str) -> None:
    from redis.asyncio import Redis

    from tradepulse.api.ratelimit import RedisRateLimiter

    client = Redis.from_url(redis_url)
    prefix = f"tp:test:{uuid.uuid4().hex}:"
    try:
        # two processes' limiters on one key; leases live long enough to be used up (no refill meanwhile)
        a, b = (
            RedisRateLimiter(client, rate_per_s=0.001, burst=100, prefix=prefix, lease_s=60.0, max_lease=16)
            for _ in range(2)
        )
        allowed = 0
        for i in range(300):
            decision = await (a if i % 2 else b).check("k")
            allowed += decision.allowed
        assert allowed == 100  # every admitted request was served, none beyond the burst
        # 100 requests admitted in far fewer script calls; the 200 refused ones cost one call per limiter
        assert a.calls + b.calls < 40
        refused = await a.check("k")
        assert not refused.allowed
        assert int(refused.retry_after_header) >= 999
        # a quiet key is checked exactly: one call per request
        quiet = RedisRateLimiter(client, rate_per_s=0.001, burst=2, prefix=prefix, lease_s=0.0, max_lease=16)
        assert [(await quiet.check("q")).allowed for _ in range(3)] == [True, True, False]
        assert quiet.calls == 3
    finally:
        await client.aclose()
