"""Health, readiness and authentication basics over the real Redis and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import MakeKey
from tradepulse.api.auth import Scope


async def test_health_needs_no_key(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_checks_redis_and_postgres(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/api/v1/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert {c["name"]: c["ok"] for c in body["checks"]} == {"redis": True, "postgresql": True}


async def test_unknown_route_is_a_json_404(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    token = await make_key(Scope.READ)
    r = await app_client.get("/api/v1/nope", headers={"X-API-Key": token})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
