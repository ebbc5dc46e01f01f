"""PostgreSQL connection pools (asyncpg)."""

from __future__ import annotations

import asyncpg

from tradepulse.config import DatabaseConfig


class DatabaseUnavailable(Exception):
    """The database could not be reached."""


async def create_pool(
    config: DatabaseConfig, *, schema: str | None = None, min_size: int | None = None, max_size: int | None = None
) -> asyncpg.Pool:
    """Return a connection pool for ``config.url``; ``schema`` sets the search path (tests use one per test)."""
    settings = {"search_path": f'"{schema}", public'} if schema else {}
    try:
        pool = await asyncpg.create_pool(
            config.url,
            min_size=config.pool_min if min_size is None else min_size,
            max_size=config.pool_max if max_size is None else max_size,
            server_settings={"application_name": "tradepulse", **settings},
            command_timeout=30,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {_redact(config.url)} is unreachable: {exc}") from exc
    assert pool is not None
    return pool


def _redact(url: str) -> str:
    """Return ``url`` without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in credentials else url
