"""Metrics by route template, readiness with a dependency down."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.api.conftest import MakeKey, api_settings_for
from tests.support.servers import free_port
from tradepulse.api.app import create_app
from tradepulse.api.auth import Scope
from tradepulse.api.services import open_services
from tradepulse.config import RedisConfig


def _counts(text: str) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "http_request_duration_ms":
            continue
        for sample in family.samples:
            if sample.name == "http_request_duration_ms_count":
                labels = sample.labels
                out[(labels["method"], labels["route"], labels["status"])] = sample.value
    return out


async def test_request_durations_are_labelled_by_route_template(
    app_client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = {"X-API-Key": await make_key(Scope.READ)}
    before = _counts((await app_client.get("/metrics")).text)
    symbols = [f"M{uuid.uuid4().hex[:6].upper()}" for _ in range(3)]
    for sym in symbols:
        assert (await app_client.get(f"/api/v1/market/{sym}/quote", headers=headers)).status_code == 404
    assert (await app_client.get("/api/v1/signals", headers=headers)).status_code == 200
    assert (await app_client.get("/api/v1/signals")).status_code == 401
    r = await app_client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    after = _counts(r.text)

    def delta(key: tuple[str, str, str]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta(("GET", "/api/v1/market/{symbol}/quote", "404")) == 3
    assert delta(("GET", "/api/v1/signals", "200")) == 1
    assert delta(("GET", "/api/v1/signals", "401")) == 1
    assert not any(sym in r.text for sym in symbols)  # raw paths never become label values
    assert re.search(r'^http_request_duration_ms_bucket\{.*le="50\.0".*\}', r.text, re.M)


async def test_ready_names_redis_when_it_is_down(
    tmp_path: Path, redis_url: str, pg_database: str, pg_schema: str
) -> None:
    settings = api_settings_for(tmp_path, redis_url, pg_database, pg_schema)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = type(settings)(
        **{
            **{f: getattr(settings, f) for f in settings.__struct_fields__},
            "redis": RedisConfig(url=dead, publish_retry_s=0.2, connect_timeout_s=0.5),
        }
    )
    async with open_services(settings) as services:  # the API comes up with Redis down, and says so
        app = create_app(services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/api/v1/health")).status_code == 200
            r = await client.get("/api/v1/ready")
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "unavailable"
            checks = {c["name"]: c for c in body["checks"]}
            assert checks["postgresql"]["ok"] is True
            assert checks["redis"]["ok"] is False
            assert checks["redis"]["detail"].startswith("unreachable")
            assert dead not in r.text
            # keys live in PostgreSQL, and the rate limiter lets requests through while Redis is down
            _, token = await services.keys.create(name="down", account_id="default", scope="read")
            assert (await client.get("/api/v1/signals", headers={"X-API-Key": token})).status_code == 200
