"""Session set-up: make sure Redis and PostgreSQL answer, or start private ones, or stop with a clear message."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest

from tests.support.servers import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    HOW_TO_GET_THEM,
    PostgresServer,
    RedisServer,
    free_port,
    postgres_answers,
    redis_answers,
)

_private: list[RedisServer | PostgresServer] = []
_tmpdirs: list[str] = []


def _needs_services(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr") or ""
    return "not integration" not in markexpr


def pytest_configure(config: pytest.Config) -> None:
    if not _needs_services(config) or hasattr(config, "workerinput"):
        return
    redis_url = os.environ.setdefault("TRADEPULSE_REDIS_URL", DEFAULT_REDIS_URL)
    if not redis_answers(redis_url):
        if not shutil.which("redis-server"):
            pytest.exit(f"no Redis answers at {redis_url} and redis-server is not installed: {HOW_TO_GET_THEM}", 3)
        tmp = tempfile.mkdtemp(prefix="tp-redis-")
        _tmpdirs.append(tmp)
        server = RedisServer(free_port(), Path(tmp))
        server.start()
        _private.append(server)
        os.environ["TRADEPULSE_REDIS_URL"] = server.url
        print(f"\nno Redis at {redis_url}; started a private redis-server at {server.url}")
    db_url = os.environ.setdefault("TRADEPULSE_DATABASE_URL", DEFAULT_DATABASE_URL)
    if not postgres_answers(db_url):
        tmp = tempfile.mkdtemp(prefix="tp-pg-")
        _tmpdirs.append(tmp)
        pg = PostgresServer(free_port(), Path(tmp))
        try:
            pg.start()
        except Exception as exc:
            pytest.exit(
                f"no PostgreSQL answers at {db_url} and a private one could not start ({exc}): {HOW_TO_GET_THEM}",
                3,
            )
        _private.append(pg)
        os.environ["TRADEPULSE_DATABASE_URL"] = pg.url
        print(f"\nno PostgreSQL at {db_url}; started a private cluster at {pg.url}")


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in reversed(_private):
        server.stop()
    for tmp in _tmpdirs:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("TRADEPULSE_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get("TRADEPULSE_DATABASE_URL", DEFAULT_DATABASE_URL)


@pytest.fixture
def tmp_cwd(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def _with_database(url: str, name: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_database(database_url: str) -> Iterator[str]:
    """Create a private database for this test session on the PostgreSQL server; drop it afterwards."""
    import asyncpg

    name = f"tp_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(database_url, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_schema(pg_database: str) -> AsyncIterator[str]:
    """Create a fresh schema for one test in the session database; drop it afterwards."""
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield schema
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def pg_pool(pg_database: str, pg_schema: str) -> AsyncIterator[Any]:
    """An asyncpg pool on this test's own schema (migrations create their tables there)."""
    from tradepulse.config import DatabaseConfig
    from tradepulse.storage.postgres import create_pool

    pool = await create_pool(DatabaseConfig(backend="postgres", url=pg_database), schema=pg_schema, min_size=1)
    try:
        yield pool
    finally:
        await pool.close()
