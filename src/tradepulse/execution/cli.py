"""``tradepulse risk ...`` and ``tradepulse ledger ...``: the kill switch (the admin call) and the books."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tradepulse.domain import TradingState

risk_app = typer.Typer(help="The kill switch: show or set the trading state (ACTIVE / REDUCING / HALTED).")
ledger_app = typer.Typer(help="The ledger: account summaries and verification against the fills.")
console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (also TRADEPULSE_CONFIG).", show_default=False),
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", help="Ledger backend: sqlite or postgres (default: settings).")
]


def _settings(config: Path | None, database: str | None):  # type: ignore[no-untyped-def]
    from tradepulse.cli import settings_from

    return settings_from(config, **{"database.backend": database})


@risk_app.command("show")
def risk_show(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Print the persisted trading state, why and by whom it was set."""
    from tradepulse.cli import run_async
    from tradepulse.storage import make_ledger_store

    settings = _settings(config, database)

    async def go() -> None:
        store = make_ledger_store(settings)
        await store.open()
        try:
            row = await store.trading_state()
        finally:
            await store.close()
        console.print(f"trading state: [bold]{row.state}[/bold] ({row.reason}; set by {row.changed_by})")

    run_async(go())


@risk_app.command("set")
def risk_set(
    state: Annotated[TradingState, typer.Argument(help="ACTIVE, REDUCING or HALTED.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the state).")],
    by: Annotated[str, typer.Option(help="Who is setting it.")] = "admin",
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Set the trading state (the admin call). Engines apply it within risk.state_poll_ms; HALTED cancels every
    open order and rejects new ones until an admin sets ACTIVE again; the state survives restarts."""
    from tradepulse.cli import run_async
    from tradepulse.storage import make_ledger_store

    settings = _settings(config, database)

    async def go() -> None:
        store = make_ledger_store(settings)
        await store.open()
        try:
            await store.set_trading_state(state, reason, by, time.time_ns())
        finally:
            await store.close()
        console.print(f"trading state set to [bold]{state}[/bold]")

    run_async(go())


@ledger_app.command("summary")
def ledger_summary(
    account: Annotated[str, typer.Option(help="Account id.")] = "default",
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Print an account's cash, positions and PnL (marked at the last prices the engine stored)."""
    from tradepulse.cli import run_async
    from tradepulse.portfolio.ledger import Ledger
    from tradepulse.storage import make_ledger_store

    settings = _settings(config, database)

    async def go() -> None:
        store = make_ledger_store(settings)
        await store.open()
        try:
            summary = await Ledger(store).summary(account)
        finally:
            await store.close()
        if summary is None:
            console.print(f"account {account!r} is not in the ledger")
            raise typer.Exit(1)
        table = Table(title=f"{account}: cash {summary.account.cash:,.2f} {summary.account.currency}")
        for column in ("symbol", "quantity", "avg price", "mark", "realized", "unrealized", "fees"):
            table.add_column(column, justify="left" if column == "symbol" else "right")
        for line in summary.positions:
            p = line.position
            avg = p.avg_price
            table.add_row(
                p.symbol,
                f"{p.quantity:,}",
                "" if avg is None else f"{avg:,.4f}",
                "" if line.mark is None else f"{line.mark:,}",
                f"{p.realized_pnl:,.2f}",
                f"{line.unrealized_pnl:,.2f}",
                f"{p.fees:,.2f}",
            )
        console.print(table)
        console.print(
            f"realized {summary.realized_pnl:,.2f}  unrealized {summary.unrealized_pnl:,.2f}  "
            f"fees {summary.fees:,.2f}  equity {summary.equity:,.2f}"
        )

    run_async(go())


@ledger_app.command("verify")
def ledger_verify(
    account: Annotated[str, typer.Option(help="Account id.")] = "default",
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Check positions, cash, fees, order fills and reservations against the booked fills; exit 1 on any error."""
    from tradepulse.cli import run_async
    from tradepulse.portfolio.ledger import verify
    from tradepulse.storage import make_ledger_store

    settings = _settings(config, database)

    async def go() -> list[str]:
        store = make_ledger_store(settings)
        await store.open()
        try:
            return await verify(store, account)
        finally:
            await store.close()

    problems = run_async(go())
    for problem in problems:
        console.print(f"[red]✗[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]✓[/green] the books of {account!r} agree with its fills")
