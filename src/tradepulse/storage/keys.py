"""API keys: a store keeping a SHA-256 hash of each secret, never the secret, on PostgreSQL or SQLite.

A key as handed out is ``tp_<key_id>_<secret>``: ``key_id`` (public, 12 hex digits) finds the row, the secret
(32 random bytes, URL-safe base64) is checked against the stored hash in constant time. A high-entropy secret
needs no slow password hash: SHA-256 of 256 random bits cannot be brute-forced.

Scopes are stored by name (``read``, ``trade``, ``admin``); the API maps them to its ordered ``Scope``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal, Protocol

import asyncpg
import msgspec

from tradepulse.config import DatabaseConfig
from tradepulse.storage.migrations import migrate_postgres, migrate_sqlite
from tradepulse.storage.postgres import create_pool
from tradepulse.storage.sqlite import connect

ScopeName = Literal["read", "trade", "admin"]
SCOPE_NAMES: tuple[ScopeName, ...] = ("read", "trade", "admin")
_TOKEN = re.compile(r"^tp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class KeyStoreError(Exception):
    """The key store cannot be reached, or a key does not exist."""


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A stored key, without its secret."""

    key_id: str
    name: str
    account_id: str
    scope: ScopeName
    created_ns: int
    revoked_ns: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_ns is None


def new_token() -> tuple[str, str, str]:
    """Return (key_id, token, sha256 of the token's secret) for a fresh key."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"tp_{key_id}_{secret}", _digest(secret)


def parse_token(token: str) -> tuple[str, str] | None:
    """Return (key_id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    """Compare ``secret``'s hash with ``digest`` in constant time."""
    return hmac.compare_digest(_digest(secret), digest)


def _check(name: str, account_id: str, scope: str) -> None:
    if scope not in SCOPE_NAMES:
        raise ValueError(f"scope: must be one of {', '.join(SCOPE_NAMES)}, got {scope!r}")
    if not name.strip():
        raise ValueError("name: must not be empty")
    if not account_id.strip():
        raise ValueError("account: must not be empty")


class KeyStore(Protocol):
    """Where API keys live."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, *, name: str, account_id: str, scope: ScopeName) -> tuple[ApiKey, str]:
        """Store a new key; return it and its token (shown once: only a hash is kept)."""
        ...

    async def verify(self, token: str) -> ApiKey | None:
        """Return the active key ``token`` belongs to, or None (unknown, malformed, wrong secret or revoked)."""
        ...

    async def list(self) -> list[ApiKey]:
        """Return every key, oldest first."""
        ...

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent); raise KeyStoreError if there is no such key."""
        ...


_COLUMNS = "key_id, name, account_id, scope, created_ns, revoked_ns"


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=str(row[0]),
        name=str(row[1]),
        account_id=str(row[2]),
        scope=row[3],
        created_ns=int(row[4]),
        revoked_ns=None if row[5] is None else int(row[5]),
    )


class PostgresKeyStore:
    """Keys in PostgreSQL (a small pool of its own)."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise KeyStoreError("the key store is not open")
        return self._pool

    async def open(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(self.config, schema=self.config.schema or None, min_size=1, max_size=4)
            async with self._pool.acquire() as conn:
                await migrate_postgres(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def create(self, *, name: str, account_id: str, scope: ScopeName) -> tuple[ApiKey, str]:
        _check(name, account_id, scope)
        key_id, token, digest = new_token()
        now = time.time_ns()
        await self.pool.execute(
            "INSERT INTO api_keys (key_id, name, account_id, scope, secret_sha256, created_ns) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            key_id,
            name,
            account_id,
            scope,
            digest,
            now,
        )
        return ApiKey(key_id=key_id, name=name, account_id=account_id, scope=scope, created_ns=now), token

    async def verify(self, token: str) -> ApiKey | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS}, secret_sha256 FROM api_keys WHERE key_id = $1", parsed[0])
        if row is None or not secret_matches(parsed[1], row[6]):
            return None
        key = _key(row)
        return key if key.active else None

    async def list(self) -> list[ApiKey]:
        return [_key(r) for r in await self.pool.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_ns")]

    async def revoke(self, key_id: str) -> ApiKey:
        row = await self.pool.fetchrow(
            f"UPDATE api_keys SET revoked_ns = coalesce(revoked_ns, $2) WHERE key_id = $1 RETURNING {_COLUMNS}",
            key_id,
            time.time_ns(),
        )
        if row is None:
            raise KeyStoreError(f"no API key {key_id!r}")
        return _key(row)


class SqliteKeyStore:
    """Keys in the embedded mode's SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise KeyStoreError("the key store is not open")
        return self._conn

    async def open(self) -> None:
        if self._conn is None:
            conn = connect(self.path)
            migrate_sqlite(conn)
            self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def create(self, *, name: str, account_id: str, scope: ScopeName) -> tuple[ApiKey, str]:
        _check(name, account_id, scope)
        key_id, token, digest = new_token()
        now = time.time_ns()
        self.conn.execute(
            "INSERT INTO api_keys (key_id, name, account_id, scope, secret_sha256, created_ns) VALUES (?,?,?,?,?,?)",
            (key_id, name, account_id, scope, digest, now),
        )
        return ApiKey(key_id=key_id, name=name, account_id=account_id, scope=scope, created_ns=now), token

    async def verify(self, token: str) -> ApiKey | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        row = self.conn.execute(
            f"SELECT {_COLUMNS}, secret_sha256 FROM api_keys WHERE key_id = ?", (parsed[0],)
        ).fetchone()
        if row is None or not secret_matches(parsed[1], row[6]):
            return None
        key = _key(row)
        return key if key.active else None

    async def list(self) -> list[ApiKey]:
        return [_key(r) for r in self.conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_ns")]

    async def revoke(self, key_id: str) -> ApiKey:
        conn = self.conn
        conn.execute(
            "UPDATE api_keys SET revoked_ns = coalesce(revoked_ns, ?) WHERE key_id = ?", (time.time_ns(), key_id)
        )
        row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise KeyStoreError(f"no API key {key_id!r}")
        return _key(row)


def make_key_store(config: DatabaseConfig) -> KeyStore:
    """Return the key store ``config.backend`` names (not opened yet)."""
    if config.backend == "postgres":
        return PostgresKeyStore(config)
    return SqliteKeyStore(config.sqlite_path)


__all__ = [
    "SCOPE_NAMES",
    "ApiKey",
    "KeyStore",
    "KeyStoreError",
    "PostgresKeyStore",
    "ScopeName",
    "SqliteKeyStore",
    "make_key_store",
    "new_token",
    "parse_token",
    "secret_matches",
]
