"""Ledger store fixtures: one SQLite file or one PostgreSQL schema per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tradepulse.config import DatabaseConfig
from tradepulse.storage.ledger_postgres import PostgresLedgerStore
from tradepulse.storage.ledger_sqlite import SqliteLedgerStore
from tradepulse.storage.ledger_store import LedgerStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: str, pg_schema: str
) -> AsyncIterator[Callable[[], LedgerStore]]:
    """Return a factory of stores over one database (several stores = several processes' views)."""
    made: list[LedgerStore] = []
    if request.param == "postgres":
        schema = pg_schema

        def factory() -> LedgerStore:
            store: LedgerStore = PostgresLedgerStore(
                DatabaseConfig(backend="postgres", url=pg_database, schema=schema, pool_min=1, pool_max=4)
            )
            made.append(store)
            return store

    else:

        def factory() -> LedgerStore:
            store: LedgerStore = SqliteLedgerStore(tmp_path / "ledger.db")
            made.append(store)
            return store

    yield factory
    for store in made:
        await store.close()


@pytest.fixture
async def store(store_factory: Callable[[], LedgerStore]) -> LedgerStore:
    s = store_factory()
    await s.open()
    return s
