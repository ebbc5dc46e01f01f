"""Turn raw file columns into numbers and times, vectorised, finding exactly which values fail and why.

The fast path hands a whole column to pyarrow (``cast``, ``assume_timezone``); only when that fails does a
column go value by value in Python, to name each bad value with its reason. Every parser returns the parsed
numpy array and a mask of the values that parsed, and reports the rest to an :class:`Issues` collector.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tradepulse.marketdata.files import RawTable, RowError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

TimeUnit = Literal["auto", "s", "ms", "us", "ns"]
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX = np.iinfo(np.int64).max
_SYMBOL = re.compile(r"^[^\s\x00-\x1f\x7f,\"']{1,32}$")


@dataclass
class Issues:
    """Row errors found so far, by row index; a row with any error is rejected as a whole."""

    table: RawTable
    by_row: dict[int, list[RowError]] = field(default_factory=dict)

    def add(self, rows: npt.NDArray[np.integer] | list[int], column: str | None, reason: Callable[[int], str]) -> None:
        """Record an error for each of ``rows`` (indices into the table); ``reason(row)`` says why."""
        for r in np.asarray(rows, dtype=np.int64).tolist():
            value = self.table.text(column, r) if column is not None else ""
            self.by_row.setdefault(r, []).append(self.table.error(r, column, value, reason(r)))

    def bad_mask(self) -> Mask:
        mask = np.zeros(len(self.table), dtype=bool)
        if self.by_row:
            mask[np.fromiter(self.by_row, dtype=np.int64, count=len(self.by_row))] = True
        return mask

    def all(self) -> list[RowError]:
        """Every error, malformed rows included, in file order."""
        errors = [e for row in sorted(self.by_row) for e in self.by_row[row]]
        return sorted([*self.table.malformed, *errors], key=lambda e: e.line)


def _trimmed(arr: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(arr) if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else arr


def _missing(arr: pa.Array) -> Mask:
    """Return where a value is absent: null, or empty text."""
    missing = np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        empty = pc.fill_null(pc.equal(arr, ""), True)
        missing |= np.asarray(empty.to_numpy(zero_copy_only=False), dtype=bool)
    return missing


def parse_numbers(issues: Issues, column: str, *, required: bool, default: F64 | float = math.nan) -> tuple[F64, Mask]:
    """Parse ``column`` as finite floats; return (values, parsed). Missing optional values take ``default``."""
    arr = _trimmed(issues.table.columns[column])
    n = len(arr)
    missing = _missing(arr)
    values = np.full(n, math.nan)
    present = ~missing
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        idx = np.flatnonzero(present)
        try:
            values[idx] = pc.cast(arr.take(pa.array(idx, type=pa.int64())), pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            texts = arr.to_pylist()
            for i in idx.tolist():
                values[i] = _float_or_nan(texts[i])
            unparsable = idx[np.isnan(values[idx]) & ~_is_nan_text(texts, idx)]
            issues.add(unparsable, column, lambda r: "is not a number")
            present[unparsable] = False
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        values = np.array(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        values[missing] = math.nan
    else:
        issues.add(np.flatnonzero(present), column, lambda r: f"is not a number (the column holds {arr.type})")
        present[:] = False
    infinite = np.flatnonzero(present & ~np.isfinite(values))
    issues.add(infinite, column, lambda r: "is not a finite number")
    present[infinite] = False
    if required:
        issues.add(np.flatnonzero(missing), column, lambda r: "is missing")
    else:
        values[missing] = default if np.isscalar(default) else np.asarray(default)[missing]
        present |= missing
    return values, present


def _float_or_nan(text: str) -> float:
    if "_" in text:  # Python's float() accepts "1_000"; no market data file means that
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def _is_nan_text(texts: list[str], idx: npt.NDArray[np.int64]) -> Mask:
    return np.array([texts[i].lower() in ("nan", "+nan", "-nan") for i in idx.tolist()], dtype=bool)


def parse_symbols(issues: Issues, column: str) -> tuple[npt.NDArray[np.object_], Mask]:
    """Parse a symbol column (1-32 characters, no spaces, quotes, commas or control characters)."""
    arr = _trimmed(issues.table.columns[column])
    missing = _missing(arr)
    issues.add(np.flatnonzero(missing), column, lambda r: "is missing")
    values = np.asarray(arr.cast(pa.string()).to_pylist(), dtype=object)
    ok = ~missing
    for i in np.flatnonzero(ok).tolist():
        if not _SYMBOL.match(values[i]):
            issues.add([i], column, lambda r: "is not a symbol (1-32 characters, no spaces, quotes or commas)")
            ok[i] = False
    return values, ok


def valid_symbol(name: str) -> bool:
    return bool(_SYMBOL.match(name))


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone ``name`` (``UTC``, ``America/New_York``), or raise ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as UTC or America/New_York)") from None


def parse_times(issues: Issues, column: str, tz: str, unit: TimeUnit) -> tuple[I64, Mask]:
    """Parse ``column`` into Unix nanoseconds (UTC).

    Accepted: ISO 8601 text with an offset or ``Z`` (absolute), without one (local time in ``tz``), a date
    alone (midnight in ``tz``), Unix epoch numbers (``unit``; "auto" picks s/ms/us/ns by magnitude), and Parquet
    timestamp/date columns (naive ones are in ``tz``). Local times that a daylight-saving change makes
    ambiguous or skips are errors, not guesses.
    """
    zone(tz)
    arr = _trimmed(issues.table.columns[column])
    n = len(arr)
    missing = _missing(arr)
    issues.add(np.flatnonzero(missing), column, lambda r: "is missing")
    out = np.zeros(n, dtype=np.int64)
    ok = ~missing
    idx = np.flatnonzero(ok)
    sub = arr.take(pa.array(idx, type=pa.int64()))
    t = sub.type
    parsed: I64 | None = None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        parsed = _from_timestamps(sub, tz)
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        values = np.asarray(sub.to_numpy(zero_copy_only=False))
        good, ns = _from_epoch(values, unit)
        issues.add(idx[~good], column, lambda r: "is outside the supported time range (1677-2262)")
        ok[idx[~good]] = False
        out[idx[good]] = ns[good]
        return out, ok
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        parsed = _from_text_fast(sub, tz, unit)
    else:
        issues.add(idx, column, lambda r: f"is not a time (the column holds {t})")
        ok[idx] = False
        return out, ok
    if parsed is not None:
        out[idx] = parsed
        return out, ok
    # the fast path failed somewhere: go value by value to find and explain the bad ones
    texts = sub.cast(pa.string()).to_pylist()
    epoch_unit = unit if unit != "auto" else _guess_unit_from_texts(texts)
    zinfo = zone(tz)
    for k, text in enumerate(texts):
        value, reason = _parse_one_time(text, zinfo, tz, epoch_unit)
        if reason is None:
            out[idx[k]] = value
        else:
            issues.add([int(idx[k])], column, _constant(reason))
            ok[idx[k]] = False
    return out, ok


def _constant(text: str) -> Callable[[int], str]:
    return lambda _row: text


def _from_timestamps(arr: pa.Array, tz: str) -> I64 | None:
    t = arr.type
    if pa.types.is_date(t):
        arr = pc.cast(arr, pa.timestamp("s"))
        t = arr.type
    if t.tz is None:
        try:
            arr = pc.assume_timezone(arr, tz, ambiguous="raise", nonexistent="raise") if tz != "UTC" else arr
        except pa.ArrowInvalid:
            return None
    return np.asarray(pc.cast(pc.cast(arr, pa.timestamp("ns", tz="UTC")), pa.int64()).to_numpy(), dtype=np.int64)


def _from_epoch(values: npt.NDArray[np.generic], unit: TimeUnit) -> tuple[Mask, I64]:
    """Return (in range, nanoseconds) for epoch numbers in ``unit``."""
    v = values.astype(np.float64) if values.dtype.kind == "f" else values.astype(np.int64)
    chosen = unit if unit != "auto" else _guess_unit(float(np.max(np.abs(v))) if len(v) else 0.0)
    mult = _UNIT_NS[chosen]
    limit = _INT64_MAX // mult
    if v.dtype.kind == "f":
        good = np.isfinite(v) & (np.abs(v) < limit)
        ns = np.zeros(len(v), dtype=np.int64)
        ns[good] = np.rint(v[good] * mult).astype(np.int64)
        return good, ns
    good = np.abs(v) < limit
    return good, np.where(good, v, 0) * mult


def _guess_unit(magnitude: float) -> TimeUnit:
    """Seconds up to ~5138 AD, then milliseconds, microseconds, nanoseconds."""
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    if magnitude < 1e17:
        return "us"
    return "ns"


def _guess_unit_from_texts(texts: list[str]) -> TimeUnit:
    biggest = 0.0
    for text in texts:
        value = _float_or_nan(text)
        if math.isfinite(value):
            biggest = max(biggest, abs(value))
    return _guess_unit(biggest)


def _from_text_fast(arr: pa.Array, tz: str, unit: TimeUnit) -> I64 | None:
    """Parse a text column in one pass when it is uniform (all epoch numbers, all absolute or all local times)."""
    for number_type in (pa.int64(), pa.float64()):
        try:
            values = pc.cast(arr, number_type).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            continue
        good, ns = _from_epoch(np.asarray(values), unit)
        return ns if good.all() else None
    try:
        return np.asarray(pc.cast(pc.cast(arr, pa.timestamp("ns", tz="UTC")), pa.int64()).to_numpy(), dtype=np.int64)
    except pa.ArrowInvalid:
        pass
    try:
        return _from_timestamps(pc.cast(arr, pa.timestamp("ns")), tz)
    except pa.ArrowInvalid:
        return None


_FRACTION = re.compile(r"^(.*?[T ]\d{2}:\d{2}:\d{2})\.(\d+)(.*)$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _parse_one_time(text: str, zinfo: ZoneInfo, tz: str, unit: TimeUnit) -> tuple[int, str | None]:
    """Parse one time value; return (nanoseconds, None) or (0, why it is not a time)."""
    number = _float_or_nan(text)
    if math.isfinite(number):
        good, ns = _from_epoch(np.array([int(text)] if text.lstrip("+-").isdigit() else [number]), unit)
        return (int(ns[0]), None) if good[0] else (0, "is outside the supported time range (1677-2262)")
    extra_ns = 0
    m = _FRACTION.match(text)
    candidate = text
    if m and len(m.group(2)) > 6:  # datetime keeps microseconds; carry the nanoseconds separately
        digits = m.group(2)[:9].ljust(9, "0")
        candidate = f"{m.group(1)}.{digits[:6]}{m.group(3)}"
        extra_ns = int(digits[6:])
    try:
        value = dt.datetime.fromisoformat(candidate)
    except ValueError:
        return 0, "is not a time (expected ISO 8601 such as 2024-01-02T09:30:00Z, or a Unix epoch number)"
    if value.tzinfo is None:
        early = value.replace(tzinfo=zinfo, fold=0)
        late = value.replace(tzinfo=zinfo, fold=1)
        if early.astimezone(dt.UTC).astimezone(zinfo).replace(tzinfo=None) != value:
            return 0, f"does not exist in {tz} (a daylight-saving change skips it)"
        if early.utcoffset() != late.utcoffset():
            return 0, f"is ambiguous in {tz} (a daylight-saving change repeats it): give an offset"
        value = early
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + extra_ns, None


def iso(ns: int) -> str:
    """Return a Unix nanosecond time as ISO 8601 UTC text (for messages)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    text = (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if rest:
        text += f".{rest:09d}".rstrip("0")
    return text + "Z"


def parse_time(text: str, tz: str = "UTC") -> int:
    """Parse one time as the files do (ISO 8601, a date, or a Unix epoch number) into Unix nanoseconds."""
    value, reason = _parse_one_time(text.strip(), zone(tz), tz, "auto")
    if reason is not None:
        raise ValueError(f"{text!r} {reason}")
    return value
