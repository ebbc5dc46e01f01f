"""The tick store fixture: every contract test runs once on SQLite (tmp_path) and once on PostgreSQL (pg_pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tradepulse.storage.ticks import TickStore
from tradepulse.storage.ticks_pg import PostgresTickStore
from tradepulse.storage.ticks_sqlite import SqliteTickStore


@pytest.fixture(params=["sqlite", "postgres"])
async def tick_store(request: pytest.FixtureRequest, tmp_path: Path, pg_pool: Any) -> AsyncIterator[TickStore]:
    if request.param == "sqlite":
        store: TickStore = await SqliteTickStore.open(tmp_path / "ticks.db")
    else:
        store = await PostgresTickStore.open(pg_pool)
    try:
        yield store
    finally:
        await store.close()
