"""The ``tradepulse`` command."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from tradepulse import __version__
from tradepulse.config import ConfigError, Settings, load_settings, settings_as_toml

T = TypeVar("T")

app = typer.Typer(
    name="tradepulse",
    help="A fast, honest algorithmic trading platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect and check settings.", no_args_is_help=True)
bus_app = typer.Typer(help="Inspect the message bus.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(bus_app, name="bus")


def _add_execution_apps() -> None:
    from tradepulse.execution.cli import ledger_app, risk_app

    app.add_typer(risk_app, name="risk")
    app.add_typer(ledger_app, name="ledger")


_add_execution_apps()


def _add_ml_commands() -> None:
    from tradepulse.ml.cli import models_app, signals, train

    app.command("train")(train)
    app.command("signals")(signals)
    app.add_typer(models_app, name="models")


_add_ml_commands()


def _add_data_commands() -> None:
    from tradepulse.marketdata.cli import data_app

    app.add_typer(data_app, name="data")


_add_data_commands()


def _add_api_commands() -> None:
    from tradepulse.api.cli import api_command, keys_app

    app.command("api")(api_command)
    app.add_typer(keys_app, name="keys")


_add_api_commands()

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (also TRADEPULSE_CONFIG).", show_default=False),
]
MetricsPortOption = Annotated[
    int, typer.Option(help="Serve Prometheus metrics on this port (0: off; deploy/prometheus uses 9101).")
]
MetricsHostOption = Annotated[str, typer.Option(help="Address for the metrics port.")]


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """Return validated settings, or exit with status 2 and a message naming the bad key."""
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop."""
    return uvloop.run(coro)


def _version(value: bool) -> None:
    if value:
        console.print(f"tradepulse {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """tradepulse: market data -> features -> ML signal -> risk -> execution -> portfolio, with an API."""


@app.command()
def run(
    config: ConfigOption = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop by itself after this many seconds and print a summary.")
    ] = None,
    transport: Annotated[
        str | None, typer.Option(help="Bus transport: memory (default) or redis.", show_default=False)
    ] = None,
    panel: Annotated[bool, typer.Option(help="Show the live terminal panel.")] = True,
    demo_orders: Annotated[
        float | None,
        typer.Option(help="Also trade random small market orders at this rate (orders/s) through the engine."),
    ] = None,
) -> None:
    """Run the whole platform in one process (in-process bus, SQLite, simulated market)."""
    from tradepulse.observability.logging import setup_logging
    from tradepulse.runtime.embedded import EmbeddedRuntime

    settings = settings_from(
        config,
        **{
            "bus.transport": transport,
            "execution.demo_orders_per_s": None if demo_orders is None else str(demo_orders),
        },
    )
    setup_logging(settings.log_level, err)
    runtime = EmbeddedRuntime(settings, console=console)
    try:
        summary = run_async(runtime.run(duration=duration, panel=(panel and console.is_terminal) or panel))
    except Exception as exc:  # a start-up failure (e.g. Redis unreachable) is one clear line, not a trace
        from tradepulse.bus import BusError

        if isinstance(exc, BusError | OSError):
            err.print(f"[red]cannot start:[/red] {exc}")
            raise typer.Exit(1) from None
        raise
    table = Table(title=f"summary after {summary.seconds:.1f} s")
    for column in ("stream", "published", "delivered", "acked", "dead", "msgs/s"):
        table.add_column(column, justify="left" if column == "stream" else "right")
    for stream, ops in sorted(summary.streams.items()):
        table.add_row(
            stream,
            f"{ops.get('published', 0):,}",
            f"{ops.get('delivered', 0):,}",
            f"{ops.get('acked', 0):,}",
            f"{ops.get('dead_lettered', 0):,}",
            f"{ops.get('published', 0) / max(summary.seconds, 1e-9):,.0f}",
        )
    console.print(table)
    for pipeline, stages in summary.latency_ms.items():
        lat = Table(title=f"{pipeline}: stage latency (ms)")
        for column in ("stage", "p50", "p95", "p99", "p99.9"):
            lat.add_column(column, justify="left" if column == "stage" else "right")
        for stage, p in stages.items():
            lat.add_row(stage, *(f"{p[k]:.3f}" for k in ("p50", "p95", "p99", "p99.9")))
        console.print(lat)
    parts = Table(title="components")
    for column in ("component", "what", "value"):
        parts.add_column(column, justify="right" if column == "value" else "left")
    for name, rows in summary.components.items():
        for label, value in rows:
            parts.add_row(name, label, value)
    if parts.row_count:
        console.print(parts)


@app.command()
def engine(
    config: ConfigOption = None,
    name: Annotated[
        str | None, typer.Option(help="Engine name (unique per process; owns its orders and venue journal).")
    ] = None,
    transport: Annotated[str, typer.Option(help="Bus transport: redis (default) or memory.")] = "redis",
    database: Annotated[str, typer.Option(help="Ledger backend: postgres (default) or sqlite.")] = "postgres",
    broker: Annotated[str | None, typer.Option(help="simulated (default) or paper.", show_default=False)] = None,
    metrics_port: MetricsPortOption = 0,
    metrics_host: MetricsHostOption = "127.0.0.1",
) -> None:
    """Run the execution engine as a service: consume orders:{p} as a group member, check risk, write the
    ledger, route to the broker, publish reports. SIGTERM drains in-flight work and exits 0."""
    from tradepulse.execution.service import main as engine_main
    from tradepulse.observability.logging import setup_logging
    from tradepulse.observability.metrics import serve_metrics

    settings = settings_from(
        config,
        **{
            "execution.engine_name": name,
            "bus.transport": transport,
            "database.backend": database,
            "execution.broker": broker,
        },
    )
    setup_logging(settings.log_level, err)
    serve_metrics(metrics_port, metrics_host)
    engine_main(settings)


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective settings as TOML (defaults, file and environment merged)."""
    console.print(settings_as_toml(settings_from(config)), markup=False, highlight=False)


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the settings and exit 0, or print what is wrong and exit 2."""
    settings_from(config)
    console.print("settings are valid")


@bus_app.command("dead-letters")
def bus_dead_letters(
    stream: Annotated[str, typer.Argument(help="The stream whose dead letters to list (e.g. orders:0).")],
    count: Annotated[int, typer.Option(help="How many, oldest first.")] = 20,
    config: ConfigOption = None,
) -> None:
    """List a stream's dead letters with their errors (Redis transport)."""
    from tradepulse.bus import make_transport

    settings = settings_from(config, **{"bus.transport": "redis"})

    async def fetch() -> list[Any]:
        bus = make_transport(settings)
        try:
            return await bus.dead_letters(stream, count)
        finally:
            await bus.close()

    rows = run_async(fetch())
    table = Table(title=f"dead letters of {stream}")
    for column in ("id", "entry", "group", "deliveries", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.dead_letter_id, row.entry_id, row.group, str(row.deliveries), row.error)
    console.print(table)


def _register_rebalance() -> None:
    from tradepulse.portfolio.cli import rebalance_command

    app.command("rebalance")(rebalance_command)


_register_rebalance()


def main() -> None:
    """Entry point of the ``tradepulse`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
