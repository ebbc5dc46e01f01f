"""Authentication and scopes: 401 without or with a bad key, 403 below the route's scope, keys hashed at rest."""

from __future__ import annotations

import asyncpg
import httpx
from litestar import Litestar

from tests.integration.api.conftest import MakeKey
from tradepulse.api.auth import Scope
from tradepulse.api.services import Services

STATE = "/api/v1/risk/state"


async def test_no_key_is_401_with_the_error_shape(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/api/v1/signals")
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "code": "unauthorized",
            "message": "an API key is required (X-API-Key or Authorization: Bearer)",
            "field": None,
        }
    }


async def test_bad_keys_are_401(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    good = await make_key(Scope.READ)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")  # right id, wrong secret
    for token in ("nope", "tp_000000000000_" + "A" * 43, forged, good + "x", "", " "):
        r = await app_client.get("/api/v1/signals", headers={"X-API-Key": token})
        assert r.status_code == 401, token
        assert r.json()["error"]["code"] == "unauthorized"
        assert token.strip() == "" or token not in r.text


async def test_header_and_bearer_both_work(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    token = await make_key(Scope.READ)
    assert (await app_client.get("/api/v1/signals", headers={"X-API-Key": token})).status_code == 200
    assert (await app_client.get("/api/v1/signals", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await app_client.get("/api/v1/signals", headers={"Authorization": f"Basic {token}"})).status_code == 401


async def test_scopes_are_ordered(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    body = {"state": "ACTIVE", "reason": "scope test"}
    for scope, status in ((Scope.READ, 403), (Scope.TRADE, 403), (Scope.ADMIN, 200)):
        token = await make_key(scope)
        assert (await app_client.get(STATE, headers={"X-API-Key": token})).status_code == 200
        r = await app_client.put(STATE, json=body, headers={"X-API-Key": token})
        assert r.status_code == status, scope
        if status == 403:
            assert r.json()["error"]["code"] == "forbidden"
            assert "admin is needed" in r.json()["error"]["message"]


async def test_revoked_key_is_refused(app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services) -> None:
    token = await make_key(Scope.READ)
    assert (await app_client.get("/api/v1/signals", headers={"X-API-Key": token})).status_code == 200
    key_id = token.split("_")[1]
    revoked = await api_services.keys.revoke(key_id)
    assert not revoked.active
    assert (await app_client.get("/api/v1/signals", headers={"X-API-Key": token})).status_code == 401


async def test_only_a_hash_of_the_secret_is_stored(
    make_key: MakeKey, api_services: Services, pg_database: str, api_settings: object
) -> None:
    token = await make_key(Scope.TRADE, account="acc-7", name="bot")
    key_id, secret = token.split("_")[1], token.split("_", 2)[2]
    schema = api_services.settings.database.schema
    conn = await asyncpg.connect(pg_database)
    try:
        row = await conn.fetchrow(f'SELECT * FROM "{schema}".api_keys WHERE key_id = $1', key_id)
    finally:
        await conn.close()
    assert row is not None
    assert (row["scope"], row["account_id"], row["name"]) == ("trade", "acc-7", "bot")
    assert secret not in str(dict(row))
    assert len(row["secret_sha256"]) == 64
    key = await api_services.keys.verify(token)
    assert key is not None
    assert key.key_id == key_id


async def test_every_authenticated_route_has_its_scope_checked_by_the_middleware(
    api_app: Litestar, app_client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    from litestar.handlers import HTTPRouteHandler

    from tradepulse.api.auth import REQUIRED_SCOPE

    routes = [
        (r.path, h) for r in api_app.routes for h in getattr(r, "route_handlers", []) if isinstance(h, HTTPRouteHandler)
    ]
    checked = {(m, p): h.opt[REQUIRED_SCOPE] for p, h in routes if REQUIRED_SCOPE in h.opt for m in h.http_methods}
    assert checked["GET", "/api/signals"] is Scope.READ
    assert checked["GET", "/api/v1/orders"] is Scope.READ
    assert checked["POST", "/api/v1/orders"] is Scope.TRADE
    assert checked["PUT", STATE] is Scope.ADMIN  # a handler's own guard over its router's READ
    for path, h in routes:  # no scope guard is left to Litestar (which copies the handler per guard call)
        assert not any(hasattr(g, "required_scope") for g in h.resolve_guards()), path
    public = {p for p, h in routes if REQUIRED_SCOPE not in h.opt}
    assert {"/api/v1/health", "/metrics"} <= public
    reader = await make_key(Scope.READ)
    r = await app_client.post("/api/v1/orders", json={}, headers={"X-API-Key": reader})
    assert r.status_code == 403
    assert "trade is needed" in r.json()["error"]["message"]
