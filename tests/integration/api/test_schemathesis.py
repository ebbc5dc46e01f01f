"""Schemathesis over the app's own OpenAPI schema, against a real server (uvicorn in a thread) with Redis and
PostgreSQL behind it: every registered route, zero server errors, zero responses that break the schema.

The schema is taken from the app, so a route added to ``api.app.ROUTERS`` is fuzzed here without any change to
this file. Requests carry an ADMIN key (so every route is reachable); the number of examples per operation is
bounded to keep the run short.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from litestar.serialization import encode_json
from schemathesis.checks import positive_data_acceptance

from tests.integration.api.conftest import api_settings_for
from tests.support.servers import free_port
from tradepulse.api.app import create_app
from tradepulse.config import Settings
from tradepulse.storage.keys import make_key_store

MAX_EXAMPLES = 25


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str, pg_database: str) -> Iterator[tuple[str, str]]:
    """Serve the app on a free port (its lifespan opens the services); yield (base URL, admin token)."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(pg_database, f'CREATE SCHEMA "{schema}"'))
    api_settings = api_settings_for(tmp_path_factory.mktemp("api"), redis_url, pg_database, schema)

    async def admin_key() -> str:
        store = make_key_store(api_settings.database)
        await store.open()
        try:
            return (await store.create(name="schemathesis", account_id="default", scope="admin"))[1]
        finally:
            await store.close()

    token = asyncio.run(admin_key())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings=api_settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="schemathesis-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(15)
        asyncio.run(_admin(pg_database, f'DROP SCHEMA "{schema}" CASCADE'))


# the schema of the app as built (no services are needed to describe it), as JSON like /schema/openapi.json serves it
schema = schemathesis.openapi.from_dict(
    json.loads(encode_json(create_app(settings=Settings()).openapi_schema.to_schema()))
)
# every request carries the admin key (added below); requests without a key or with a bad one are the subject of
# test_auth.py, so schemathesis does not generate (or drop) the security header itself
schema.config.generation.with_security_parameters = False


#: operations whose input is checked against the configured instruments (symbol known and tradable, quantity on
#: the lot, price on the tick, target symbols and weights): no schema can state those rules, so a schema-valid
#: request may rightly get a 422 naming the field. Every other check still applies to them.
BUSINESS_VALIDATED = {"POST /api/v1/orders", "POST /api/v1/rebalance/preview", "POST /api/v1/rebalance/execute"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_conforms_to_its_schema(case: Any, api_server: tuple[str, str]) -> None:
    base_url, token = api_server
    label = f"{case.method.upper()} {case.operation.path}"
    excluded = [positive_data_acceptance] if label in BUSINESS_VALIDATED else []
    case.call_and_validate(base_url=base_url, headers={"X-API-Key": token}, excluded_checks=excluded)
