"""The key store on both backends, and ``tradepulse keys create | list | revoke``."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradepulse.cli import app
from tradepulse.config import DatabaseConfig
from tradepulse.storage.keys import KeyStore, KeyStoreError, make_key_store, parse_token


@pytest.fixture(params=["sqlite", "postgres"])
async def key_store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: str, pg_schema: str
) -> AsyncIterator[KeyStore]:
    if request.param == "sqlite":
        config = DatabaseConfig(backend="sqlite", sqlite_path=str(tmp_path / "keys.db"))
    else:
        config = DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=2)
    store = make_key_store(config)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_create_verify_list_revoke(key_store: KeyStore) -> None:
    key, token = await key_store.create(name="bot", account_id="acc-1", scope="trade")
    parsed = parse_token(token)
    assert parsed is not None
    assert parsed[0] == key.key_id
    assert await key_store.verify(token) == key
    assert await key_store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert await key_store.verify("tp_" + key.key_id + "_short") is None
    other, _ = await key_store.create(name="ops", account_id="acc-2", scope="admin")
    assert [k.key_id for k in await key_store.list()] == [key.key_id, other.key_id]
    revoked = await key_store.revoke(key.key_id)
    assert revoked.revoked_ns is not None
    assert (await key_store.revoke(key.key_id)).revoked_ns == revoked.revoked_ns  # idempotent
    assert await key_store.verify(token) is None
    with pytest.raises(KeyStoreError, match="no API key"):
        await key_store.revoke("000000000000")
    with pytest.raises(ValueError, match="scope"):
        await key_store.create(name="x", account_id="a", scope="root")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="account"):
        await key_store.create(name="x", account_id=" ", scope="read")


def test_keys_cli(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    env = {"TRADEPULSE_DATABASE_SQLITE_PATH": str(db)}
    runner = CliRunner()
    created = runner.invoke(
        app,
        ["keys", "create", "--scope", "trade", "--account", "acc-9", "--name", "desk", "--database", "sqlite"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    parsed = parse_token(token)
    assert parsed is not None
    key_id, secret = parsed
    row = sqlite3.connect(db).execute("SELECT * FROM api_keys").fetchall()
    assert len(row) == 1
    assert secret not in repr(row)

    listed = runner.invoke(app, ["keys", "list", "--database", "sqlite"], env=env)
    assert listed.exit_code == 0
    assert key_id in listed.stdout
    assert "acc-9" in listed.stdout
    assert "active" in listed.stdout
    assert secret not in listed.stdout

    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--database", "sqlite"], env=env)
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list", "--database", "sqlite"], env=env).stdout
    missing = runner.invoke(app, ["keys", "revoke", "000000000000", "--database", "sqlite"], env=env)
    assert missing.exit_code == 1
    bad = runner.invoke(app, ["keys", "create", "--scope", "root", "--database", "sqlite"], env=env)
    assert bad.exit_code == 2
