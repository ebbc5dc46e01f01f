"""``tradepulse rebalance``: read holdings and targets, print the plan, optionally execute it."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from tradepulse.config import RebalanceConfig, Settings
from tradepulse.portfolio.rebalance import Engine, RebalanceOptions, RebalancePlan, rebalance
from tradepulse.portfolio.rebalance_execute import ExecutionError, ExecutionResult, execute_plan
from tradepulse.portfolio.rebalance_files import RebalanceFileError, load_problem
from tradepulse.portfolio.rebalance_problem import RebalanceInputError

#: shown when --execute is asked for while the bus is in-process: no engine process can be reached
NO_ENGINE = (
    "the bus is in-process (bus.transport = memory), so no engine can be reached; set bus.transport = redis "
    "(TRADEPULSE_BUS_TRANSPORT=redis) and run `tradepulse engine`; nothing was sent"
)


def _fmt(value: Decimal) -> str:
    """Return an exact decimal with thousands separators and no trailing zeros."""
    return format(value.normalize() if value else Decimal(0), ",f")


def _money(value: Decimal) -> str:
    """Return an amount with at least two decimals (more only when it has them)."""
    exponent = value.normalize().as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 2)
    return format(value.quantize(Decimal(1).scaleb(-places)), ",f")


def _pct(value: Decimal) -> str:
    return f"{value * 100:.2f}%"


def options_from(cfg: RebalanceConfig, **flags: Decimal | None) -> RebalanceOptions:
    """Return rebalancer options from the settings, overridden by the command-line flags that were given."""
    values = {name: getattr(cfg, name) for name in RebalanceConfig.__struct_fields__ if name in flags}
    values.update({k: v for k, v in flags.items() if v is not None})
    for name in ("drift_abs", "drift_rel", "max_turnover"):
        if values.get(name) == 0:
            values[name] = None  # 0 turns the band or cap off
    return RebalanceOptions(**values)


def print_plan(plan: RebalancePlan, console: Console, *, all_positions: bool = False) -> None:
    """Print the trades, the positions (changed ones, or all) and the summary."""
    problem = plan.problem
    rows = plan.positions
    trades = Table(title=f"rebalance plan: {len(plan)} orders ({len(plan.sells)} sells, {len(plan.buys)} buys)")
    for column in ("side", "symbol", "quantity", "price", "notional", "fee", "weight", "after", "target"):
        trades.add_column(column, justify="left" if column in ("side", "symbol") else "right")
    for trade in plan.trades:
        row = rows[problem.index(trade.symbol)]
        trades.add_row(
            f"[red]{trade.side}[/red]" if trade.side.value == "SELL" else f"[green]{trade.side}[/green]",
            trade.symbol,
            _fmt(trade.quantity),
            _money(trade.price),
            _money(trade.notional),
            _money(trade.fee),
            _pct(row.weight_before),
            _pct(row.weight_after),
            _pct(row.target_weight),
        )
    console.print(trades)
    held_back = [r for r in rows if r.reason.name in ("MIN_NOTIONAL", "TURNOVER", "FEE", "CASH", "NO_SELL")]
    shown = rows if all_positions else held_back
    if shown:
        table = Table(title="all positions" if all_positions else "held back by a constraint")
        for column in ("symbol", "quantity", "after", "weight", "after", "target", "why"):
            table.add_column(column, justify="left" if column in ("symbol", "why") else "right")
        for r in shown:
            table.add_row(
                r.symbol,
                _fmt(r.quantity_before),
                _fmt(r.quantity_after),
                _pct(r.weight_before),
                _pct(r.weight_after),
                _pct(r.target_weight),
                r.reason.label,
            )
        console.print(table)
    summary = Table(title="summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    o = problem.options
    summary.add_row("value before / after", f"{_money(plan.value_before)} / {_money(plan.value_after)} {o.currency}")
    summary.add_row("cash before / after", f"{_money(plan.cash_before)} / {_money(plan.cash_after)} {o.currency}")
    summary.add_row("cash buffer", f"{_money(o.cash_buffer)} {o.currency}")
    summary.add_row("traded notional", f"{_money(plan.traded_notional)} {o.currency}")
    summary.add_row("turnover", _pct(plan.turnover))
    summary.add_row("estimated cost (fees)", f"{_money(plan.fees)} {o.currency}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.reason.label] = counts.get(r.reason.label, 0) + 1
    summary.add_row("positions", ", ".join(f"{n} {label}" for label, n in sorted(counts.items())))
    console.print(summary)


def _decimal(value: str | None, flag: str) -> Decimal | None:
    if value is None:
        return None
    try:
        result = Decimal(value.strip())
    except ArithmeticError:
        raise RebalanceInputError(None, flag, f"{value!r} is not a number") from None
    if not result.is_finite():
        raise RebalanceInputError(None, flag, f"{value!r} is not a finite number")
    return result


def rebalance_command(
    holdings: Annotated[Path, typer.Option("--holdings", help="Holdings file (.csv or .json, see README).")],
    targets: Annotated[Path, typer.Option("--targets", help="Targets or model portfolio file (.csv or .json).")],
    execute: Annotated[bool, typer.Option("--execute", help="Send the orders through risk and the engine.")] = False,
    drift_abs: Annotated[str | None, typer.Option(help="Absolute drift band (0.02 = 2 points).")] = None,
    drift_rel: Annotated[str | None, typer.Option(help="Relative drift band (0.25 = 25 % of target).")] = None,
    min_notional: Annotated[str | None, typer.Option(help="Smallest trade, in currency.")] = None,
    cash_buffer: Annotated[str | None, typer.Option(help="Cash kept aside, in currency.")] = None,
    max_turnover: Annotated[str | None, typer.Option(help="Most traded notional / total value.")] = None,
    fee_per_order: Annotated[str | None, typer.Option(help="Fixed fee per order.")] = None,
    fee_rate: Annotated[str | None, typer.Option(help="Fee as a fraction of the notional.")] = None,
    buy_only: Annotated[bool, typer.Option("--buy-only", help="Sell nothing; only deploy cash.")] = False,
    all_positions: Annotated[bool, typer.Option("--all", help="Show every position, not only held-back ones.")] = False,
    engine: Annotated[str, typer.Option(help="vectorized (default) or baseline; both give the same plan.")] = (
        "vectorized"
    ),
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.")] = None,
    account: Annotated[str | None, typer.Option(help="Account to trade (default: rebalance.account_id).")] = None,
    rebalance_id: Annotated[
        str | None, typer.Option(help="Name the orders rb-ID-S|B-SYMBOL (default: a hash of the inputs).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each order's final report.")] = 30.0,
) -> None:
    """Print the orders that bring the holdings to the targets (and, with --execute, send them)."""
    from tradepulse.cli import console, err, settings_from

    settings = settings_from(config)
    if engine not in ("vectorized", "baseline"):
        err.print(f"[red]--engine:[/red] {engine!r} is not vectorized or baseline")
        raise typer.Exit(2)
    try:
        options = options_from(
            settings.rebalance,
            drift_abs=_decimal(drift_abs, "--drift-abs"),
            drift_rel=_decimal(drift_rel, "--drift-rel"),
            min_trade_notional=_decimal(min_notional, "--min-notional"),
            cash_buffer=_decimal(cash_buffer, "--cash-buffer"),
            max_turnover=_decimal(max_turnover, "--max-turnover"),
            fee_per_order=_decimal(fee_per_order, "--fee-per-order"),
            fee_rate=_decimal(fee_rate, "--fee-rate"),
            fee_precision=None,
            fractional_step=None,
        )
        if buy_only:
            options = msgspec.structs.replace(options, allow_sells=False)
        problem = load_problem(holdings, targets, options)
    except (RebalanceFileError, RebalanceInputError) as exc:
        err.print(f"[red]invalid input:[/red] {exc}")
        raise typer.Exit(2) from None
    eng: Engine = "baseline" if engine == "baseline" else "vectorized"
    plan = rebalance(problem, engine=eng)
    # tables of up to nine columns: don't squeeze them into 80 columns when the output is a file or a pipe
    out = console if console.is_terminal else Console(width=max(console.width, 140))
    print_plan(plan, out, all_positions=all_positions)
    if execute:
        if settings.bus.transport != "redis":
            err.print(f"[red]cannot execute:[/red] {NO_ENGINE}")
            raise typer.Exit(3)
        code = asyncio.run(
            execute_and_report(
                plan,
                settings,
                out,
                err,
                account_id=account or settings.rebalance.account_id,
                rebalance_id=rebalance_id,
                timeout_s=timeout,
            )
        )
        raise typer.Exit(code)


async def execute_and_report(
    plan: RebalancePlan,
    settings: Settings,
    out: Console,
    err: Console,
    *,
    account_id: str,
    rebalance_id: str | None = None,
    timeout_s: float = 30.0,
) -> int:
    """Send ``plan`` through the engine (sells, their fills awaited, then buys), print each order's outcome and
    the post-trade weights; return the exit code: 0 all filled, 1 some order did not fill, 3 no engine answer."""
    from tradepulse.bus import BusUnavailable, make_transport
    from tradepulse.client import OrderClient, OrderTimeout, fold_order
    from tradepulse.domain import Order, SubmitOrder

    bus = make_transport(settings)
    client = OrderClient(bus, partitions=settings.bus.order_partitions)

    async def submit(cmd: SubmitOrder) -> Order:
        cmd = msgspec.structs.replace(cmd, ts_ns=time.time_ns())
        result = await client.submit(cmd, timeout=timeout_s, until="terminal")
        return fold_order(Order.from_submit(cmd), result.events)

    try:
        await client.start()
        result = await execute_plan(
            plan,
            submit,
            strategy_id=settings.rebalance.strategy_id,
            account_id=account_id,
            key=rebalance_id,
        )
    except (BusUnavailable, OrderTimeout) as exc:
        err.print(f"[red]execution incomplete:[/red] {exc} (is `tradepulse engine` running on this bus?)")
        return 3
    except ExecutionError as exc:
        err.print(f"[red]execution stopped:[/red] {exc}")
        return 1
    finally:
        await client.close()
        await bus.close()
    print_execution(result, out)
    return 1 if result.unfilled else 0


def print_execution(result: ExecutionResult, console: Console) -> None:
    """Print each order's outcome, then the weights after the trades against the targets."""
    table = Table(title=f"executed: {len(result.orders)} orders, {len(result.unfilled)} not filled")
    for column in ("order", "side", "symbol", "quantity", "status", "filled", "avg price", "fees", "reason"):
        table.add_column(
            column, justify="left" if column in ("order", "side", "symbol", "status", "reason") else "right"
        )
    for o in result.orders:
        avg = o.avg_fill_price
        table.add_row(
            o.client_order_id,
            o.side.value,
            o.symbol,
            _fmt(o.quantity),
            o.status.value if o.status.value == "FILLED" else f"[red]{o.status.value}[/red]",
            _fmt(o.filled_quantity),
            "" if avg is None else _money(avg),
            _money(o.fees),
            "" if o.reject_reason is None else f"{o.reject_reason.value} {o.status_message}".strip(),
        )
    console.print(table)
    if result.replanned_buys is not None:
        console.print("the sells raised less cash than planned: the buys were planned again from what they raised")
    after = rebalance(result.after())
    weights = Table(title="after execution: weights against targets")
    for column in ("symbol", "quantity", "weight", "target"):
        weights.add_column(column, justify="left" if column == "symbol" else "right")
    for row in after.positions:
        weights.add_row(row.symbol, _fmt(row.quantity_before), _pct(row.weight_before), _pct(row.target_weight))
    console.print(weights)
    console.print(f"cash after: {_money(result.cash)} {result.plan.problem.options.currency}")


__all__ = ["NO_ENGINE", "execute_and_report", "options_from", "print_execution", "print_plan", "rebalance_command"]
