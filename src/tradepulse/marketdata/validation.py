"""Validate a market data file's rows into ticks or OHLCV bars, naming every bad value precisely.

A row is refused, with one :class:`~tradepulse.marketdata.files.RowError` per problem (file, line, column,
value, reason), when a value is missing or not a number, a price is not positive, high is below low, open or
close is outside [low, high], a volume or size is negative, a quote is crossed (bid above ask), or its time
is not after the previous row's time for the same symbol (a duplicate timestamp, or unsorted data). The
order check only compares rows that are otherwise valid, and always against the latest time seen so far, so
one far-future typo is reported at the row after it, naming the typo's line.

Columns are found by name (case-insensitive, with the usual aliases: ``timestamp`` for time, ``last`` for
price, ``volume`` or ``qty`` for size, ...) or mapped explicitly; the symbol comes from ``options.symbol``, a
symbol column, or the file name (``AAPL.csv`` holds AAPL).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradepulse.domain.batch import BarBatch, TickBatch, interval_seconds
from tradepulse.marketdata.files import FileFormatError, RawTable, RowError, read_table
from tradepulse.marketdata.parsing import (
    Issues,
    TimeUnit,
    iso,
    parse_numbers,
    parse_symbols,
    parse_times,
    valid_symbol,
    zone,
)

Kind = Literal["ticks", "bars"]

ALIASES: dict[str, tuple[str, ...]] = {
    "time": ("time", "timestamp", "ts", "datetime", "date", "ts_event", "t"),
    "symbol": ("symbol", "ticker", "sym", "instrument"),
    "price": ("price", "last", "trade_price", "px"),
    "size": ("size", "qty", "quantity", "volume", "amount", "trade_size"),
    "bid": ("bid", "bid_price", "bid_px"),
    "ask": ("ask", "ask_price", "ask_px", "offer"),
    "bid_size": ("bid_size", "bidsize", "bid_qty"),
    "ask_size": ("ask_size", "asksize", "ask_qty", "offer_size"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "adj_close"),
    "volume": ("volume", "v", "vol"),
    "vwap": ("vwap", "vw"),
    "trades": ("trades", "trade_count", "count", "n"),
}

FIELDS: dict[Kind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (required, optional)
    "ticks": (("time", "price", "size"), ("symbol", "bid", "ask", "bid_size", "ask_size")),
    "bars": (("time", "open", "high", "low", "close", "volume"), ("symbol", "vwap", "trades")),
}


@dataclass(frozen=True)
class LoadOptions:
    """How to read a file: what it holds and how its columns and times are to be understood."""

    kind: Kind = "ticks"
    #: field -> column name in the file, for columns the aliases do not find
    columns: Mapping[str, str] = field(default_factory=dict)
    #: the symbol of every row (otherwise a symbol column, otherwise the file name)
    symbol: str | None = None
    #: time zone of times written without an offset
    tz: str = "UTC"
    #: unit of epoch-number times
    time_unit: TimeUnit = "auto"
    #: bar length (bars files do not say)
    interval: str = "1d"


@dataclass
class Validated:
    """A file's valid rows as a batch, and its refused rows with their errors."""

    path: Path
    kind: Kind
    table: RawTable
    #: valid rows (indices into ``table``)
    good: npt.NDArray[np.int64]
    errors: list[RowError]
    bad_rows: dict[int, list[RowError]]
    ticks: TickBatch | None = None
    bars: BarBatch | None = None

    @property
    def rows(self) -> int:
        """Data rows in the file (malformed ones included)."""
        return len(self.table) + len(self.table.malformed)

    @property
    def rejected(self) -> int:
        return len(self.bad_rows) + len(self.table.malformed)


def resolve_columns(table: RawTable, options: LoadOptions) -> dict[str, str]:
    """Return field -> column for the fields present, or raise FileFormatError naming what is missing."""
    by_lower = {name.lower(): name for name in table.columns}
    required, optional = FIELDS[options.kind]
    unknown = sorted(set(options.columns) - set(required) - set(optional))
    if unknown:
        raise FileFormatError(
            f"{table.path}: cannot map {', '.join(unknown)}: a {options.kind} file has the fields "
            f"{', '.join(required + optional)}"
        )
    found: dict[str, str] = {}
    for name in required + optional:
        if name in options.columns:
            column = by_lower.get(options.columns[name].lower())
            if column is None:
                raise FileFormatError(
                    f'{table.path}: no column "{options.columns[name]}" (mapped to {name}); '
                    f"the columns are {', '.join(table.columns)}"
                )
            found[name] = column
            continue
        taken = set(found.values())
        for alias in ALIASES[name]:
            column = by_lower.get(alias)
            if column is not None and column not in taken:
                found[name] = column
                break
    missing = [name for name in required if name not in found]
    if missing:
        hints = "; ".join(f"{m}: one of {', '.join(ALIASES[m])}" for m in missing)
        raise FileFormatError(
            f"{table.path}: no column for {', '.join(missing)} ({hints}); map one with --map FIELD=COLUMN "
            f"(the columns are {', '.join(table.columns)})"
        )
    return found


def validate_file(path: str | Path, options: LoadOptions | None = None) -> Validated:
    """Read and validate ``path``; raise FileFormatError when the file as a whole cannot be used."""
    return validate_table(read_table(path), options or LoadOptions())


def validate_table(table: RawTable, options: LoadOptions) -> Validated:
    zone(options.tz)
    seconds = interval_seconds(options.interval) if options.kind == "bars" else 0
    cols = resolve_columns(table, options)
    issues = Issues(table)
    n = len(table)
    ok = np.ones(n, dtype=bool)

    if options.symbol is not None:
        if not valid_symbol(options.symbol):
            raise FileFormatError(f"symbol {options.symbol!r} is not a symbol (1-32 characters, no spaces)")
        symbols = np.full(n, options.symbol, dtype=object)
    elif "symbol" in cols:
        symbols, good = parse_symbols(issues, cols["symbol"])
        ok &= good
    else:
        stem = table.path.name.split(".")[0]
        if not valid_symbol(stem):
            raise FileFormatError(
                f"{table.path}: no symbol column, and the file name {stem!r} is not a symbol; give one with --symbol"
            )
        symbols = np.full(n, stem, dtype=object)

    times, good = parse_times(issues, cols["time"], options.tz, options.time_unit)
    ok &= good
    values: dict[str, npt.NDArray[np.float64]] = {}
    if options.kind == "ticks":
        ok &= _tick_checks(issues, cols, values)
    else:
        ok &= _bar_checks(issues, cols, values)
    ok &= ~issues.bad_mask()
    _order_checks(issues, cols["time"], symbols, times, ok)
    ok &= ~issues.bad_mask()

    good_rows = np.flatnonzero(ok).astype(np.int64)
    result = Validated(table.path, options.kind, table, good_rows, issues.all(), issues.by_row)
    if options.kind == "ticks":
        result.ticks = TickBatch.from_columns(
            symbols[good_rows],
            times[good_rows],
            *(values[f][good_rows] for f in ("price", "size", "bid", "ask", "bid_size", "ask_size")),
        )
    else:
        names, inverse = np.unique(symbols[good_rows].astype(str), return_inverse=True)
        result.bars = BarBatch(
            symbols=tuple(str(s) for s in names),
            symbol_idx=inverse.astype(np.int32).reshape(-1),
            start_ns=times[good_rows],
            interval_s=seconds,
            open=values["open"][good_rows],
            high=values["high"][good_rows],
            low=values["low"][good_rows],
            close=values["close"][good_rows],
            volume=values["volume"][good_rows],
            vwap=values["vwap"][good_rows],
            trades=values["trades"][good_rows].astype(np.int64),
        )
    return result


def _text(issues: Issues, column: str, row: int, parsed: npt.NDArray[np.float64]) -> str:
    """Return another column's value as written in the file (or as parsed, for a value that was filled in)."""
    written = issues.table.text(column, row)
    return written if written else repr(float(parsed[row]))


def _positive(issues: Issues, column: str, v: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_]) -> None:
    """Report parsed values that are not > 0, and clear them from ``ok``."""
    bad = ok & ~(v > 0)
    issues.add(np.flatnonzero(bad), column, lambda r: "must be greater than 0")
    ok &= ~bad


def _not_negative(issues: Issues, column: str, v: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_]) -> None:
    """Report parsed values below 0, and clear them from ``ok``."""
    bad = ok & (v < 0)
    issues.add(np.flatnonzero(bad), column, lambda r: "must not be negative")
    ok &= ~bad


def _tick_checks(
    issues: Issues, cols: dict[str, str], values: dict[str, npt.NDArray[np.float64]]
) -> npt.NDArray[np.bool_]:
    price, ok_p = parse_numbers(issues, cols["price"], required=True)
    size, ok_s = parse_numbers(issues, cols["size"], required=True)
    _positive(issues, cols["price"], price, ok_p)
    _not_negative(issues, cols["size"], size, ok_s)
    ok = ok_p & ok_s
    values["price"], values["size"] = price, size
    for name, default in (("bid", price), ("ask", price), ("bid_size", 0.0), ("ask_size", 0.0)):
        if name in cols:
            v, good = parse_numbers(issues, cols[name], required=False, default=default)
            (_positive if name in ("bid", "ask") else _not_negative)(issues, cols[name], v, good)
            ok &= good
        else:
            v = price.copy() if name in ("bid", "ask") else np.zeros(len(price))
        values[name] = v
    bid, ask = values["bid"], values["ask"]
    crossed = np.flatnonzero(ok & (bid > ask))
    ask_column = cols.get("ask", cols["price"])
    issues.add(
        crossed,
        cols.get("bid", cols["price"]),
        lambda r: f"is above the ask {_text(issues, ask_column, r, ask)} (a crossed quote)",
    )
    return ok


def _bar_checks(
    issues: Issues, cols: dict[str, str], values: dict[str, npt.NDArray[np.float64]]
) -> npt.NDArray[np.bool_]:
    ok = np.ones(len(issues.table), dtype=bool)
    for name in ("open", "high", "low", "close"):
        v, good = parse_numbers(issues, cols[name], required=True)
        _positive(issues, cols[name], v, good)
        values[name] = v
        ok &= good
    volume, good = parse_numbers(issues, cols["volume"], required=True)
    _not_negative(issues, cols["volume"], volume, good)
    values["volume"] = volume
    ok &= good
    o, h, lo, c = values["open"], values["high"], values["low"], values["close"]
    issues.add(
        np.flatnonzero(ok & (h < lo)), cols["high"], lambda r: f"is below the low {_text(issues, cols['low'], r, lo)}"
    )
    within = ok & (h >= lo)

    def outside(r: int) -> str:
        return f"is outside [low {_text(issues, cols['low'], r, lo)}, high {_text(issues, cols['high'], r, h)}]"

    for name, v in (("open", o), ("close", c)):
        issues.add(np.flatnonzero(within & ((v < lo) | (v > h))), cols[name], outside)
    if "vwap" in cols:
        vwap, good = parse_numbers(issues, cols["vwap"], required=False)
        known = good & ~np.isnan(vwap)
        bad = np.flatnonzero(within & known & ((vwap < lo) | (vwap > h)))
        issues.add(bad, cols["vwap"], outside)
        ok &= good
        values["vwap"] = vwap
    else:
        values["vwap"] = np.full(len(o), math.nan)
    if "trades" in cols:
        trades, good = parse_numbers(issues, cols["trades"], required=False, default=0.0)
        bad = np.flatnonzero(good & ((trades < 0) | (trades != np.floor(trades))))
        issues.add(bad, cols["trades"], lambda r: "must be a whole number, not negative")
        ok &= good
        values["trades"] = trades
    else:
        values["trades"] = np.zeros(len(o))
    return ok


def _order_checks(
    issues: Issues,
    column: str,
    symbols: npt.NDArray[np.object_],
    times: npt.NDArray[np.int64],
    ok: npt.NDArray[np.bool_],
) -> None:
    """Refuse rows whose time is not after every earlier valid row's time for the same symbol."""
    rows = np.flatnonzero(ok)
    if len(rows) < 2:
        return
    names, codes = np.unique(symbols[rows].astype(str), return_inverse=True)
    codes = codes.reshape(-1)
    by_symbol = np.argsort(codes, kind="stable")  # each symbol's rows, in file order
    bounds = np.flatnonzero(np.r_[True, codes[by_symbol][1:] != codes[by_symbol][:-1], True])
    origin = issues.table.origin
    where = "line" if issues.table.unit == "line" else "row"
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        seg = rows[by_symbol[start:stop]]
        t = times[seg]
        running = np.maximum.accumulate(t)
        prev = running[:-1]
        # the row that set the running maximum (its first occurrence), for the message
        setter = np.maximum.accumulate(np.where(np.r_[True, t[1:] > running[:-1]], np.arange(len(t)), 0))[:-1]
        follower = t[1:]
        symbol = str(names[codes[by_symbol[start]]])
        earlier = dict(zip(seg[1:].tolist(), seg[setter].tolist(), strict=True))
        dup = seg[1:][follower == prev]
        back = seg[1:][follower < prev]
        issues.add(dup, column, _order_reason("dup", earlier, times, origin, where, symbol))
        issues.add(back, column, _order_reason("back", earlier, times, origin, where, symbol))


def _order_reason(
    kind: str,
    earlier: dict[int, int],
    times: npt.NDArray[np.int64],
    origin: npt.NDArray[np.int64],
    where: str,
    symbol: str,
) -> Callable[[int], str]:
    def reason(row: int) -> str:
        e = earlier[row]
        if kind == "dup":
            return f"repeats the time of {where} {int(origin[e])} for {symbol} (a duplicate timestamp)"
        return f"is before {iso(int(times[e]))} at {where} {int(origin[e])} for {symbol} (rows must be sorted by time)"

    return reason
