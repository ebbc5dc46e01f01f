"""``tradepulse api`` as a real service: N worker processes with uvicorn and with granian, one /metrics for all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import free_port
from tradepulse.config import DatabaseConfig
from tradepulse.storage.keys import make_key_store

WORKERS = 2
REQUESTS = 40


def _env(redis_url: str, database_url: str, schema: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEPULSE_", "PROMETHEUS_"))}
    env.update(
        {
            "TRADEPULSE_REDIS_URL": redis_url,
            "TRADEPULSE_DATABASE_URL": database_url,
            "TRADEPULSE_DATABASE_SCHEMA": schema,
            "TRADEPULSE_DATABASE_POOL_MIN": "1",
            "TRADEPULSE_DATABASE_POOL_MAX": "2",
            "TRADEPULSE_LOG_LEVEL": "WARNING",
        }
    )
    return env


def _signals_count(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "http_request_duration_ms_count"
                and sample.labels.get("route") == "/api/v1/signals"
                and sample.labels.get("status") == "200"
            ):
                total += sample.value
    return total


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
async def test_workers_serve_and_share_one_metrics_registry(
    server: str, tmp_path: Path, redis_url: str, pg_database: str, pg_schema: str
) -> None:
    store = make_key_store(DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema))
    await store.open()
    try:
        _, token = await store.create(name="server-test", account_id="default", scope="read")
    finally:
        await store.close()
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, started once
        [
            sys.executable,
            "-m",
            "tradepulse.cli",
            "api",
            "--server",
            server,
            "--workers",
            str(WORKERS),
            "--port",
            str(port),
        ],
        env=_env(redis_url, pg_database, pg_schema),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await client.get("/api/v1/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{server} did not start: {(tmp_path / 'api.log').read_text()[-3000:]}")
                await asyncio.sleep(0.1)
            before = _signals_count((await client.get("/metrics")).text)
            # separate connections, so that the requests spread over the workers
            for _ in range(REQUESTS):
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as one:
                    r = await one.get("/api/v1/signals", headers={"X-API-Key": token})
                    assert r.status_code == 200
            # every worker's samples, whichever worker answers the scrape
            for _ in range(4):
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as one:
                    assert _signals_count((await one.get("/metrics")).text) - before == REQUESTS
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()
