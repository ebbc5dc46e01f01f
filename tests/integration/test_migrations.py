"""The migration runner applies each migration once, on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tradepulse.storage.migrations import Migration, PgFeatures, migrate_postgres, migrate_sqlite, pg_features
from tradepulse.storage.sqlite import connect


async def _second(conn: Any, features: PgFeatures) -> None:
    kind = "timescale" if features.timescaledb_available else "plain"
    await conn.execute("INSERT INTO demo (kind) VALUES ($1)", kind)


DEMO = [
    Migration("demo", 1, "create", postgres="CREATE TABLE demo (kind text)", sqlite="CREATE TABLE demo (kind TEXT);"),
    Migration("demo", 2, "fill", postgres=_second, sqlite="INSERT INTO demo (kind) VALUES ('plain');"),
]


async def test_postgres_migrations_apply_once_even_when_racing(pg_pool: Any) -> None:
    async def run() -> list[str]:
        async with pg_pool.acquire() as conn:
            return await migrate_postgres(conn, DEMO)

    results = await asyncio.gather(run(), run(), run())
    assert sorted(len(r) for r in results) == [0, 0, 2]
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM demo") == 1
        features = await pg_features(conn)
        assert features.server_version >= 120000
        kind = await conn.fetchval("SELECT kind FROM demo")
        assert kind == ("timescale" if features.timescaledb_available else "plain")


def test_sqlite_migrations_apply_once(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    assert migrate_sqlite(conn, DEMO) == ["demo:0001_create", "demo:0002_fill"]
    assert migrate_sqlite(conn, DEMO) == []
    assert conn.execute("SELECT count(*) FROM demo").fetchone() == (1,)


def test_failed_sqlite_migration_writes_nothing(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    bad = [Migration("bad", 1, "half", sqlite="CREATE TABLE ok (x INTEGER);\nINSERT INTO missing VALUES (1);")]
    with pytest.raises(sqlite3.OperationalError, match="missing"):
        migrate_sqlite(conn, bad)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'ok'").fetchone() is None
