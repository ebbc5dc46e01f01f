"""Command line: ``tradepulse train`` and ``tradepulse models list|show|promote``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

models_app = typer.Typer(help="The model registry: list, inspect and promote trained models.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (also TRADEPULSE_CONFIG).", show_default=False),
]


def _settings(config: Path | None, **overrides: Any):  # type: ignore[no-untyped-def]
    from tradepulse.cli import settings_from

    return settings_from(config, **overrides)


def train(
    model: Annotated[str, typer.Option("--model", help="xgboost, lightgbm or ensemble.")] = "xgboost",
    samples: Annotated[int, typer.Option(help="Labelled samples (bars) to train and validate on.")] = 10_000,
    data: Annotated[str, typer.Option(help="'simulator' (the regime market) or an OHLCV CSV file.")] = "simulator",
    tune: Annotated[
        bool,
        typer.Option("--tune", help="Grid-search max_depth, learning_rate, n_estimators inside each training fold."),
    ] = False,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote",
            help="Promote the new model (default: only if none is promoted, no leak is suspected and it beats chance).",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[str | None, typer.Option(help="fixed_horizon or triple_barrier.", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (data and models).", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Train a BUY/HOLD/SELL model, evaluate it walk-forward without leakage, check it against a random walk,
    and register it (with its ONNX export)."""
    from tradepulse.ml.models import SEED_GRID
    from tradepulse.ml.report import render
    from tradepulse.ml.trainer import run_training

    settings = _settings(config, **{"ml.labels": labels, "ml.seed": seed})
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        try:
            result = run_training(
                settings,
                kind=model,
                samples=samples,
                data=data,
                tune_grid=SEED_GRID if tune else None,
                promote=promote,
                progress=progress,
            )
        except ValueError as exc:
            err.print(f"[red]cannot train:[/red] {exc}")
            raise typer.Exit(2) from None
    render(result, console)


def signals(
    config: ConfigOption = None,
    transport: Annotated[str, typer.Option(help="Bus transport: redis (services mode) or memory.")] = "redis",
    duration: Annotated[float | None, typer.Option(help="Stop by itself after this many seconds.")] = None,
    panel: Annotated[bool, typer.Option(help="Show the live terminal panel.")] = True,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics on this port (0: off; deploy/prometheus uses 9102).")
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Address for the metrics port.")] = "127.0.0.1",
) -> None:
    """Run the signal service alone (services mode): ticks in from the bus, signals and order requests out."""
    from tradepulse.cli import run_async
    from tradepulse.observability.logging import setup_logging
    from tradepulse.observability.metrics import serve_metrics
    from tradepulse.runtime.embedded import EmbeddedRuntime
    from tradepulse.runtime.signals import make_signal_component

    settings = _settings(config, **{"bus.transport": transport, "signals.enabled": True})
    setup_logging(settings.log_level, err)
    serve_metrics(metrics_port, metrics_host)
    runtime = EmbeddedRuntime(settings, factories=[make_signal_component], console=console)
    try:
        summary = run_async(runtime.run(duration=duration, panel=panel and console.is_terminal))
    except Exception as exc:  # a start-up failure (Redis unreachable) is one clear line, not a trace
        from tradepulse.bus import BusError

        if isinstance(exc, BusError | OSError):
            err.print(f"[red]cannot start:[/red] {exc}")
            raise typer.Exit(1) from None
        raise
    for label, value in summary.components.get("signals", []):
        console.print(f"{label}: {value}")


def train_main() -> None:
    """Entry point of ``python -m tradepulse.ml.trainer``."""
    typer.run(train)


@models_app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """List registered models, newest last, with their held-out figures."""
    from tradepulse.ml.registry import ModelRegistry

    settings = _settings(config)
    registry = ModelRegistry(settings.ml.registry_dir)
    promoted = registry.promoted_version()
    table = Table(title=f"models in {registry.root}")
    for col in ("version", "", "kind", "created", "samples", "accuracy", "bal. acc", "IC", "control", "data"):
        table.add_column(col)
    for rec in registry.list():
        m = rec.meta.get("metrics", {})
        wf = m.get("walk_forward", {})
        table.add_row(
            rec.version,
            "*" if rec.version == promoted else "",
            rec.kind,
            rec.meta.get("created", ""),
            f"{rec.meta.get('data', {}).get('samples', 0):,}",
            f"{wf.get('accuracy', float('nan')):.4f}",
            f"{wf.get('balanced_accuracy', float('nan')):.4f}",
            f"{wf.get('ic', float('nan')):+.3f}",
            "LEAK?" if m.get("leak_suspected") else "ok",
            rec.meta.get("data", {}).get("source", ""),
        )
    console.print(table)
    if promoted is None:
        console.print("no model is promoted: `tradepulse models promote VERSION`")


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="The version (e.g. v0003); 'promoted' for the promoted one.")],
    config: ConfigOption = None,
) -> None:
    """Print a model's metadata: features, parameters, metrics, data fingerprint, timings."""
    from tradepulse.ml.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(_settings(config).ml.registry_dir)
    try:
        rec = registry.promoted() if version == "promoted" else registry.get(version)
    except RegistryError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if rec is None:
        err.print("[red]no model is promoted[/red]")
        raise typer.Exit(1)
    console.print_json(json.dumps(rec.meta))


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to serve (e.g. v0003).")],
    config: ConfigOption = None,
) -> None:
    """Make VERSION the model the live signal service loads."""
    from tradepulse.ml.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(_settings(config).ml.registry_dir)
    try:
        rec = registry.promote(version)
    except RegistryError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"promoted {rec.version} ({rec.kind}); restart the signal service to load it")
