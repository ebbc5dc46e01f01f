"""A small, explicit schema migration runner for PostgreSQL and SQLite.

A :class:`Migration` belongs to a component and has a version; it carries SQL (or, for PostgreSQL, a
coroutine that may branch on the server's features, e.g. whether TimescaleDB is available) for each backend.
Applied migrations are recorded in ``tradepulse_migrations``; a PostgreSQL run holds an advisory lock, so
several processes starting at once apply each migration exactly once.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

import tradepulse.storage.schema as schema_pkg

_LOCK_ID = 0x7472_6164_6570  # "tradep"


@dataclass(frozen=True)
class PgFeatures:
    """What the PostgreSQL server offers."""

    server_version: int
    timescaledb_available: bool
    timescaledb_installed: bool


PgStep = str | Callable[[asyncpg.Connection, PgFeatures], Awaitable[None]]


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    postgres: PgStep | None = None
    sqlite: str | None = None
    #: some DDL (TimescaleDB continuous aggregates) cannot run inside a transaction block
    transactional: bool = True


def all_migrations() -> list[Migration]:
    """Return every migration of every schema module, ordered by (component, version)."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(schema_pkg.__path__):
        module = importlib.import_module(f"{schema_pkg.__name__}.{info.name}")
        found.extend(getattr(module, "MIGRATIONS", []))
    keys = [(m.component, m.version) for m in found]
    if len(keys) != len(set(keys)):
        raise RuntimeError(f"duplicate migration versions: {sorted(k for k in keys if keys.count(k) > 1)}")
    return sorted(found, key=lambda m: (m.component, m.version))


async def pg_features(conn: asyncpg.Connection) -> PgFeatures:
    version = int(await conn.fetchval("SHOW server_version_num"))
    available = bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))
    installed = bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
    return PgFeatures(version, available, installed)


async def migrate_postgres(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations on ``conn``; return the names applied."""
    todo = all_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS tradepulse_migrations (
                 component text NOT NULL, version int NOT NULL, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"""
        )
        done = {(r["component"], r["version"]) for r in await conn.fetch("SELECT * FROM tradepulse_migrations")}
        features = await pg_features(conn)
        applied: list[str] = []
        for m in todo:
            if m.postgres is None or (m.component, m.version) in done:
                continue
            if m.transactional:
                async with conn.transaction():
                    await _run_pg(conn, m, features)
            else:
                await _run_pg(conn, m, features)
            applied.append(f"{m.component}:{m.version:04d}_{m.name}")
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


async def _run_pg(conn: asyncpg.Connection, m: Migration, features: PgFeatures) -> None:
    step = m.postgres
    if isinstance(step, str):
        await conn.execute(step)
    elif step is not None:
        await step(conn, features)
    await conn.execute(
        "INSERT INTO tradepulse_migrations (component, version, name) VALUES ($1, $2, $3)",
        m.component,
        m.version,
        m.name,
    )


def migrate_sqlite(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations on ``conn`` (each in its own transaction); return the names applied."""
    todo = all_migrations() if migrations is None else migrations
    conn.execute(
        """CREATE TABLE IF NOT EXISTS tradepulse_migrations (
             component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
             PRIMARY KEY (component, version))"""
    )
    conn.commit()
    done = {(r[0], r[1]) for r in conn.execute("SELECT component, version FROM tradepulse_migrations")}
    applied: list[str] = []
    for m in todo:
        if m.sqlite is None or (m.component, m.version) in done:
            continue
        try:
            conn.execute("BEGIN")
            for statement in _split_sql(m.sqlite):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO tradepulse_migrations (component, version, name) VALUES (?, ?, ?)",
                (m.component, m.version, m.name),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(f"{m.component}:{m.version:04d}_{m.name}")
    return applied


def _split_sql(script: str) -> list[str]:
    """Split a script into complete statements (sqlite3.complete_statement handles quotes and triggers)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
