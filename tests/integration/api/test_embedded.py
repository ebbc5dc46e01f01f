"""``tradepulse run`` serves the API in its own event loop, on its in-process bus and SQLite file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tradepulse.config import load_settings
from tradepulse.runtime.api import ApiComponent
from tradepulse.runtime.embedded import EmbeddedRuntime
from tradepulse.storage.keys import make_key_store


async def test_embedded_runtime_serves_the_api(tmp_path: Path) -> None:
    settings = load_settings(
        env={},
        overrides={
            "api.port": 0,
            "signals.bootstrap": "skip",
            "market.symbols": ["AAA", "BBB"],
            "market.tick_rate": 50,
            "database.sqlite_path": str(tmp_path / "tp.db"),
            "venue.journal_dir": str(tmp_path / "venue"),
            "ml.registry_dir": str(tmp_path / "models"),
        },
    )
    runtime = EmbeddedRuntime(settings)
    await runtime.start()
    try:
        api = next(c for c in runtime.components if isinstance(c, ApiComponent))
        assert api.url.startswith("http://127.0.0.1:")
        headers = {"X-API-Key": api.token}
        async with httpx.AsyncClient(base_url=api.url, timeout=5.0) as client:
            ready = (await client.get("/api/v1/ready")).json()
            assert ready["status"] == "ready"
            assert {c["name"] for c in ready["checks"]} == {"bus (memory)", "database (sqlite)"}
            assert (await client.get("/api/signals", headers=headers)).status_code == 200
            assert (await client.get("/api/signals")).status_code == 401
            deadline = time.monotonic() + 20
            symbols: set[str] = set()
            while symbols != {"AAA", "BBB"} and time.monotonic() < deadline:  # the tick writer stores the market
                await asyncio.sleep(0.1)
                symbols = {
                    q["symbol"] for q in (await client.get("/api/v1/market/quotes", headers=headers)).json()["quotes"]
                }
            assert symbols == {"AAA", "BBB"}
            halt = await client.put("/api/v1/risk/state", json={"state": "HALTED", "reason": "drill"}, headers=headers)
            assert halt.status_code == 200
        assert dict(api.panel_rows())["url"] == api.url
    finally:
        await runtime.stop()
    # the session's admin key does not outlive the session
    store = make_key_store(settings.database)
    await store.open()
    try:
        assert await store.verify(api.token) is None
    finally:
        await store.close()
