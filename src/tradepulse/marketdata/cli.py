"""``tradepulse data ...``: simulate, ingest, replay and query market data."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from tradepulse.config import Settings
    from tradepulse.domain import Bar, Tick
    from tradepulse.storage.ticks import TickStore

data_app = typer.Typer(help="Market data: simulate, ingest files, replay, query bars.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (also TRADEPULSE_CONFIG).", show_default=False),
]
BackendOption = Annotated[
    str | None,
    typer.Option("--backend", help="Tick store: sqlite or postgres (default: database.backend).", show_default=False),
]
Format = Literal["table", "csv", "json"]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="Output: table, csv or json.")]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    from tradepulse.cli import settings_from

    return settings_from(config, **overrides)


def _run(coro: Any) -> Any:
    from tradepulse.cli import run_async

    return run_async(coro)


def _say(text: str, *, to: Console = console) -> None:
    """Print a plain line: no markup, no highlighting, never wrapped (scripts parse these)."""
    to.print(text, markup=False, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _say(f"error: {message}", to=err)
    return typer.Exit(code)


def _format(value: str) -> Format:
    if value not in ("table", "csv", "json"):
        raise _fail(f"--format must be table, csv or json, not {value!r}")
    return value  # type: ignore[return-value]


async def _open_store(settings: Settings) -> TickStore:
    from tradepulse.storage.ticks import open_tick_store

    try:
        return await open_tick_store(settings.database, synchronous_commit=settings.tickstore.synchronous_commit)
    except Exception as exc:
        raise _fail(f"cannot open the tick store: {exc}", 1) from None


def _time(text: str | None, default_ns: int, tz: str, flag: str) -> int:
    from tradepulse.marketdata.parsing import parse_time

    if text is None:
        return default_ns
    try:
        return parse_time(text, tz)
    except ValueError as exc:
        raise _fail(f"{flag}: {exc}") from None


@data_app.command("simulate")
def simulate(
    to: Annotated[
        str, typer.Option("--to", help="Where ticks go: store, bus (Redis), or a .csv/.parquet file path.")
    ] = "store",
    count: Annotated[
        int | None, typer.Option(help="Stop after about this many ticks (N samples).", show_default=False)
    ] = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this much simulated time.")] = None,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per real second: 1 real time, 10 ten times faster, 0 flat out.")
    ] = 0.0,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols (default: market.symbols).", show_default=False)
    ] = None,
    tick_rate: Annotated[
        float | None, typer.Option(help="Ticks per simulated second per symbol.", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: market.seed).", show_default=False)] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="regime or random_walk (default: market.mode; see the simulator).", show_default=False),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Simulated start time (ISO 8601; default: now).", show_default=False)
    ] = None,
    stream: Annotated[str, typer.Option(help="The stream --to bus publishes on.")] = "ticks",
    backend: BackendOption = None,
    config: ConfigOption = None,
) -> None:
    """Generate simulated ticks into the tick store, onto the bus, or into a CSV/Parquet file."""
    from tradepulse.marketdata.simulator import MarketSimulator
    from tradepulse.marketdata.streaming import simulate as run_simulation

    overrides: dict[str, Any] = {
        "market.symbols": symbols.split(",") if symbols else None,
        "market.tick_rate": tick_rate,
        "market.seed": seed,
        "market.mode": mode,
        "database.backend": backend,
    }
    if to == "bus":
        overrides["bus.transport"] = "redis"
    settings = _settings(config, **overrides)
    market = settings.market
    if count is None and seconds is None:
        seconds = 60.0
    steps_by_count = None if count is None else -(-count // len(market.symbols))
    steps_by_time = None if seconds is None else max(1, round(seconds * market.tick_rate))
    steps = min(s for s in (steps_by_count, steps_by_time) if s is not None)
    start_ns = _time(start, time.time_ns(), "UTC", "--start")
    sim = MarketSimulator(
        market.symbols, seed=market.seed, start_price=market.start_price, volatility=market.volatility, mode=market.mode
    )

    async def main() -> tuple[int, str]:
        from tradepulse.domain import TickBatch

        chunk_steps = max(1, 20_000 // len(market.symbols)) if speed == 0 else 1
        if to == "store":
            store = await _open_store(settings)
            try:

                async def to_store(ticks: Sequence[Tick]) -> None:
                    await store.write(TickBatch.from_ticks(ticks))

                n = await run_simulation(
                    sim, to_store, tick_rate=market.tick_rate, start_ns=start_ns, speed=speed, steps=steps,
                    chunk_steps=chunk_steps,
                )  # fmt: skip
                return n, f"the {store.backend} tick store"
            finally:
                await store.close()
        if to == "bus":
            from tradepulse.bus import make_transport
            from tradepulse.domain import stamp

            bus = make_transport(settings)
            try:

                async def to_bus(ticks: Sequence[Tick]) -> None:
                    # through a batch and back: plain floats for the codec whatever the simulator made them
                    now = time.time_ns()
                    plain = TickBatch.from_ticks(ticks).to_ticks()
                    await bus.publish_many(stream, [stamp(t, "market", now) for t in plain])

                n = await run_simulation(
                    sim, to_bus, tick_rate=market.tick_rate, start_ns=start_ns, speed=speed, steps=steps,
                    chunk_steps=max(1, 1000 // len(market.symbols)) if speed == 0 else 1,
                )  # fmt: skip
                return n, f"the {stream!r} stream"
            finally:
                await bus.close()
        from tradepulse.marketdata.export import TickFileWriter

        try:
            writer = TickFileWriter(to)
        except ValueError as exc:
            raise _fail(f"--to: {exc} (or 'store' / 'bus')") from None
        with writer:

            async def to_file(ticks: Sequence[Tick]) -> None:
                writer.write(TickBatch.from_ticks(ticks))

            n = await run_simulation(
                sim, to_file, tick_rate=market.tick_rate, start_ns=start_ns, speed=speed, steps=steps,
                chunk_steps=chunk_steps,
            )  # fmt: skip
        return n, str(writer.path)

    began = time.monotonic()
    n, where = _run(main())
    elapsed = time.monotonic() - began
    _say(
        f"{n:,} ticks of {len(market.symbols)} symbols to {where} in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f}/s)"
    )


@data_app.command("ingest")
def ingest(
    file: Annotated[Path, typer.Argument(help="A .csv, .csv.gz or .parquet file of ticks or bars.", exists=True)],
    kind: Annotated[str, typer.Option(help="What the file holds: ticks or bars.")] = "ticks",
    symbol: Annotated[
        str | None, typer.Option(help="Symbol of every row (else a symbol column, else the file name).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN for a column the usual names miss (repeatable).", show_default=False),
    ] = None,
    tz: Annotated[str, typer.Option(help="Time zone of times written without an offset (IANA name).")] = "UTC",
    time_unit: Annotated[str, typer.Option(help="Unit of epoch-number times: auto, s, ms, us or ns.")] = "auto",
    interval: Annotated[str, typer.Option(help="Bar length of a bars file: 1m, 5m, 15m, 1h or 1d.")] = "1d",
    on_error: Annotated[
        str, typer.Option(help="reject: refuse the file if any row is bad; skip: write the good rows.")
    ] = "reject",
    rejects: Annotated[
        Path | None, typer.Option(help="Reject file for skipped rows (default FILE.rejects.csv).", show_default=False)
    ] = None,
    force: Annotated[bool, typer.Option(help="Ingest even if the same content was ingested before.")] = False,
    backend: BackendOption = None,
    config: ConfigOption = None,
) -> None:
    """Validate a file of ticks or OHLCV bars and write it to the tick store in one transaction."""
    from tradepulse.marketdata.files import FileFormatError
    from tradepulse.marketdata.ingest import AlreadyIngested, IngestError, ingest_file
    from tradepulse.marketdata.validation import LoadOptions

    if kind not in ("ticks", "bars"):
        raise _fail(f"--kind must be ticks or bars, not {kind!r}")
    if on_error not in ("reject", "skip"):
        raise _fail(f"--on-error must be reject or skip, not {on_error!r}")
    if time_unit not in ("auto", "s", "ms", "us", "ns"):
        raise _fail(f"--time-unit must be auto, s, ms, us or ns, not {time_unit!r}")
    columns: dict[str, str] = {}
    for item in mapping or []:
        field_name, sep, column = item.partition("=")
        if not sep or not field_name or not column:
            raise _fail(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map price=last_px")
        columns[field_name.strip().lower()] = column.strip()
    settings = _settings(config, **{"database.backend": backend})
    options = LoadOptions(
        kind=kind,  # type: ignore[arg-type]
        columns=columns,
        symbol=symbol,
        tz=tz,
        time_unit=time_unit,  # type: ignore[arg-type]
        interval=interval,
    )

    async def main() -> Any:
        store = await _open_store(settings)
        try:
            return await ingest_file(
                file,
                store,
                options,
                policy=on_error,  # type: ignore[arg-type]
                reject_file=rejects,
                record=not force,
            )
        finally:
            await store.close()

    try:
        report = _run(main())
    except IngestError as exc:
        _say(f"{exc.path}: refused, nothing written ({len(exc.errors)} problem(s)):", to=err)
        for e in exc.errors[:20]:
            _say(f"  {e}", to=err)
        if len(exc.errors) > 20:
            _say(f"  ... and {len(exc.errors) - 20} more", to=err)
        _say("Fix them, or ingest the good rows with --on-error skip.", to=err)
        raise typer.Exit(1) from None
    except (FileFormatError, ValueError) as exc:
        raise _fail(str(exc), 1) from None
    except AlreadyIngested as exc:
        _say(f"{exc}; nothing written (--force ingests it again)")
        return
    line = (
        f"{report.path}: {report.written:,} {report.kind} written of {report.rows:,} rows "
        f"in {report.seconds:.2f} s ({settings.database.backend})"
    )
    if report.rejected:
        line += f"; {report.rejected:,} rejected, see {report.reject_file}"
    _say(line)


@data_app.command("replay")
def replay(
    file: Annotated[Path, typer.Argument(help="A .csv or .parquet file of ticks.", exists=True)],
    speed: Annotated[float, typer.Option(help="Market seconds per real second; 0 as fast as possible.")] = 1.0,
    symbol: Annotated[str | None, typer.Option(help="Symbol of every row (if the file has none).")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of times without an offset.")] = "UTC",
    stream: Annotated[str, typer.Option(help="The stream to publish on.")] = "ticks",
    config: ConfigOption = None,
) -> None:
    """Publish a file's ticks on the bus's ticks stream (Redis), paced by their timestamps."""
    from tradepulse.bus import make_transport
    from tradepulse.domain import stamp
    from tradepulse.marketdata.files import FileFormatError
    from tradepulse.marketdata.ingest import IngestError
    from tradepulse.marketdata.streaming import replay as run_replay
    from tradepulse.marketdata.validation import LoadOptions, validate_file

    settings = _settings(config, **{"bus.transport": "redis"})
    try:
        validated = validate_file(file, LoadOptions(symbol=symbol, tz=tz))
        if validated.errors:
            raise IngestError(file, validated.errors)
    except IngestError as exc:
        raise _fail(str(exc), 1) from None
    except (FileFormatError, ValueError) as exc:
        raise _fail(str(exc), 1) from None
    assert validated.ticks is not None
    batch = validated.ticks

    async def main() -> int:
        bus = make_transport(settings)
        try:

            async def emit(ticks: Sequence[Tick]) -> None:
                now = time.time_ns()
                await bus.publish_many(stream, [stamp(t, "market", now) for t in ticks])

            return await run_replay(batch, emit, speed=speed)
        finally:
            await bus.close()

    began = time.monotonic()
    n = _run(main())
    _say(f"{n:,} ticks from {file} published in {time.monotonic() - began:.1f} s")


def _bar_rows(bars: Sequence[Bar]) -> list[dict[str, Any]]:
    from tradepulse.marketdata.parsing import iso

    return [
        {
            "symbol": b.symbol,
            "start": iso(b.start_ns),
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
            "vwap": b.vwap,
            "trades": b.trades,
        }
        for b in bars
    ]


def _emit(rows: list[dict[str, Any]], fmt: Format, title: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=None) + "\n")
        return
    if fmt == "csv":
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
        sys.stdout.write(buffer.getvalue())
        return
    table = Table(title=title)
    if not rows:
        _say(f"{title}: none")
        return
    for column in rows[0]:
        table.add_column(column, justify="left" if column in ("symbol", "start", "time") else "right")
    for r in rows:
        table.add_row(*("" if v is None else (f"{v:,.6g}" if isinstance(v, float) else str(v)) for v in r.values()))
    console.print(table)


@data_app.command("bars")
def bars(
    symbol: Annotated[str, typer.Argument(help="The symbol.")],
    interval: Annotated[str, typer.Option(help="1m, 5m, 15m, 1h or 1d.")] = "1m",
    start: Annotated[
        str | None, typer.Option(help="First bar start (ISO 8601 or date; default: end - 1 day).", show_default=False)
    ] = None,
    end: Annotated[str | None, typer.Option(help="End, exclusive (default: now).", show_default=False)] = None,
    tz: Annotated[str, typer.Option(help="Time zone of --start/--end written without an offset.")] = "UTC",
    source: Annotated[
        str, typer.Option(help="ticks (bars built from stored ticks) or imported (bar files).")
    ] = "ticks",
    fmt: FormatOption = "table",
    backend: BackendOption = None,
    config: ConfigOption = None,
) -> None:
    """Print OHLCV bars of a symbol (open/high/low/close, volume, VWAP, trade count)."""
    from tradepulse.domain import BAR_INTERVALS

    output = _format(fmt)
    if interval not in BAR_INTERVALS:
        raise _fail(f"--interval must be one of {', '.join(BAR_INTERVALS)}, not {interval!r}")
    if source not in ("ticks", "imported"):
        raise _fail(f"--source must be ticks or imported, not {source!r}")
    end_ns = _time(end, time.time_ns(), tz, "--end")
    start_ns = _time(start, end_ns - 86_400 * 10**9, tz, "--start")
    settings = _settings(config, **{"database.backend": backend})

    async def main() -> list[Bar]:
        store = await _open_store(settings)
        try:
            if source == "ticks":
                return (await store.bars(symbol, interval, start_ns, end_ns)).to_bars()
            return (await store.imported_bars(symbol, interval, start_ns, end_ns)).to_bars()
        finally:
            await store.close()

    _emit(_bar_rows(_run(main())), output, f"{symbol} {interval} bars")


@data_app.command("latest")
def latest(
    symbols: Annotated[list[str] | None, typer.Argument(help="Symbols (default: all).", show_default=False)] = None,
    fmt: FormatOption = "table",
    backend: BackendOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the latest stored tick of each symbol."""
    from tradepulse.marketdata.parsing import iso

    output = _format(fmt)
    settings = _settings(config, **{"database.backend": backend})

    async def main() -> dict[str, Tick]:
        store = await _open_store(settings)
        try:
            return await store.latest(symbols or None)
        finally:
            await store.close()

    rows = [
        {"symbol": s, "time": iso(t.ts_ns), "price": t.price, "size": t.size, "bid": t.bid, "ask": t.ask}
        for s, t in sorted(_run(main()).items())
    ]
    _emit(rows, output, "latest ticks")
