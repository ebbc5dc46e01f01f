"""``tradepulse api`` (serve the API) and ``tradepulse keys ...`` (create, list, revoke API keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tradepulse.config import Settings

keys_app = typer.Typer(
    help="API keys: create (the token is shown once; only its hash is stored), list, revoke.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (also TRADEPULSE_CONFIG).", show_default=False),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Key store backend: postgres (default, where `tradepulse api` looks) or sqlite (`tradepulse run`).",
        show_default=False,
    ),
]


def _settings(config: Path | None, database: str | None) -> Settings:
    from tradepulse.config import ConfigError, load_settings

    try:
        return load_settings(config, overrides={"database.backend": database}, service=True)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="read, trade or admin (each includes the ones before).")],
    account: Annotated[str, typer.Option(help="The account the key acts on.")] = "default",
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")] = "api",
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create a key and print its token (once: only a hash is stored)."""
    from tradepulse.cli import run_async
    from tradepulse.storage.keys import SCOPE_NAMES, make_key_store

    if scope not in SCOPE_NAMES:
        err.print(f"[red]--scope:[/red] must be one of {', '.join(SCOPE_NAMES)}, got {scope!r}")
        raise typer.Exit(2)
    settings = _settings(config, database)

    async def go() -> tuple[str, str]:
        store = make_key_store(settings.database)
        await store.open()
        try:
            key, token = await store.create(name=name, account_id=account, scope=scope)
        finally:
            await store.close()
        return key.key_id, token

    try:
        key_id, token = run_async(go())
    except ValueError as exc:
        err.print(f"[red]invalid key:[/red] {exc}")
        raise typer.Exit(2) from None
    err.print(f"created key {key_id} ({scope}, account {account}); the token is shown once, keep it safe:")
    print(token)


@keys_app.command("list")
def keys_list(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """List keys (never their secrets)."""
    from tradepulse.cli import run_async
    from tradepulse.storage.keys import ApiKey, make_key_store

    settings = _settings(config, database)

    async def go() -> list[ApiKey]:
        store = make_key_store(settings.database)
        await store.open()
        try:
            return await store.list()
        finally:
            await store.close()

    table = Table(title="API keys")
    for column in ("key id", "name", "account", "scope", "status"):
        table.add_column(column)
    for key in run_async(go()):
        table.add_row(key.key_id, key.name, key.account_id, key.scope, "active" if key.active else "revoked")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (`keys list` shows them).")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke a key. API processes stop accepting it within ``api.key_cache_s``."""
    from tradepulse.cli import run_async
    from tradepulse.storage.keys import KeyStoreError, make_key_store

    settings = _settings(config, database)

    async def go() -> None:
        store = make_key_store(settings.database)
        await store.open()
        try:
            await store.revoke(key_id)
        finally:
            await store.close()

    try:
        run_async(go())
    except KeyStoreError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"key {key_id} revoked")


def api_command(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default api.host).", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="Port (default api.port).", show_default=False)] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default api.workers).", show_default=False)
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="uvicorn or granian (default api.server).", show_default=False)
    ] = None,
    transport: Annotated[str | None, typer.Option(help="Bus transport (default redis).", show_default=False)] = None,
    database: Annotated[str | None, typer.Option(help="postgres (default) or sqlite.", show_default=False)] = None,
) -> None:
    """Serve the HTTP API (REST + WebSocket) as a service: Redis bus, PostgreSQL, N worker processes."""
    from tradepulse.api.server import export_overrides, serve
    from tradepulse.config import ConfigError, load_settings
    from tradepulse.observability.logging import setup_logging

    overrides = {
        "api.host": host,
        "api.port": port,
        "api.workers": workers,
        "api.server": server,
        "bus.transport": transport,
        "database.backend": database,
    }
    try:
        settings = load_settings(config, overrides=overrides, service=True)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    export_overrides(config, overrides)
    setup_logging(settings.log_level, err)
    err.print(
        f"tradepulse API on http://{settings.api.host}:{settings.api.port} "
        f"({settings.api.server}, {settings.api.workers} worker(s), bus={settings.bus.transport}, "
        f"database={settings.database.backend})"
    )
    serve(settings)
