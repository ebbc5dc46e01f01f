"""Request limits: per-key rate limit across app instances (Redis GCRA), body size, unknown query parameters,
validation errors with field paths, hostile inputs."""

from __future__ import annotations

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
    ("query", "field"),
    [
        ("limit=0", "query.limit"),
        ("limit=100001", "query.limit"),
        ("limit=abc", "query.limit"),
        ("limit=1e308", "query.limit"),
        ("limit=NaN", "query.limit"),
        ("limit=Infinity", "query.limit"),
        ("limit=99999999999999999999999999999999999999999", "query.limit"),
    ],
)
async def test_bad_query_values_are_422_with_the_field(
    app_client: httpx.AsyncClient, make_key: MakeKey, query: str, field: str
) -> None:
    token = await make_key(Scope.READ)
    r = await app_client.get(f"/api/v1/signals/AAA/history?{query}", headers={"X-API-Key": token})
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


async def test_duplicate_json_keys_take_one_value_consistently(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services
) -> None:
    """JSON with a key twice is accepted by every mainstream parser with the last value winning; the API does the
    same (msgspec), so what is validated is what is applied."""
    token = await make_key(Scope.ADMIN)
    body = b'{"state": "PAUSED", "reason": "dup", "state": "REDUCING"}'
    r = await app_client.put(STATE, content=body, headers={"X-API-Key": token, "Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json()["state"] == "REDUCING"
    assert (await api_services.ledger.trading_state()).state == "REDUCING"
