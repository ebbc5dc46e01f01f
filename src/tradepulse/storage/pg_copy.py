"""PostgreSQL binary COPY, encoded and decoded with numpy (no Python object per row).

The binary COPY format is a header, then per row an int16 field count and, per field, an int32 length and the
value in network byte order, then an int16 -1 trailer. When every field of a row has a fixed width, a whole
batch is one numpy structured array with big-endian fields, filled column by column. The one variable-width
field we send, the symbol, is fixed within the rows whose symbol has the same byte length, so a batch is encoded
as one such array per distinct symbol length (usually one or two). Decoding a query whose columns are all
fixed-width is a single ``np.frombuffer``.

``timestamptz`` travels as int64 microseconds since 2000-01-01 UTC; ``float8`` as IEEE-754 big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tradepulse.domain.batch import TICK_FLOAT_FIELDS
from tradepulse.marketdata.bars import SortedBatch

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
#: microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC)
PG_EPOCH_US = 946_684_800_000_000

Kind = Literal["int8", "int4", "float8", "timestamptz", "text"]
_WIRE = {"int8": ">i8", "int4": ">i4", "float8": ">f8", "timestamptz": ">i8"}


@dataclass(frozen=True)
class Column:
    """One column of a COPY: its kind and values (Unix microseconds for timestamptz).

    A ``text`` column is dictionary-encoded: ``values`` holds indices into ``dictionary``, -1 for NULL.
    """

    name: str
    kind: Kind
    values: npt.NDArray[Any]
    dictionary: tuple[str, ...] = ()


def encode_rows(columns: Sequence[Column], start: int = 0, stop: int | None = None) -> bytes:
    """Return rows ``start:stop`` as binary COPY data rows (no header or trailer).

    Rows are grouped by the byte lengths of their text values (each group is one structured array), so the
    output is in row order only within a group: a statement that needs an order must sort (ORDER BY).
    """
    n = len(columns[0].values)
    stop = n if stop is None else stop
    texts: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.bytes_]]] = {}
    key = np.zeros(stop - start, dtype=np.int64)
    for i, c in enumerate(columns):
        if c.kind != "text":
            continue
        encoded = [s.encode() for s in c.dictionary]
        lengths = np.array([len(e) for e in encoded] + [-1], dtype=np.int64)  # index -1 -> NULL
        widest = np.array([*encoded, b""], dtype=f"S{max([len(e) for e in encoded] + [1])}")
        texts[i] = (lengths, widest)
        key = key * (int(lengths.max()) + 2) + lengths[c.values[start:stop]] + 1  # one int per length combination
    groups: list[tuple[list[int], npt.NDArray[np.int64]]] = []
    for k in np.unique(key).tolist():
        rows = np.flatnonzero(key == k) + start
        first = int(rows[0])
        groups.append(([int(texts[i][0][columns[i].values[first]]) for i in texts], rows))
    parts: list[bytes] = []
    for text_lengths, rows in groups:
        length_of = dict(zip(texts, text_lengths, strict=True))
        fields: list[tuple[str, str]] = [("n", ">i2")]
        for i, c in enumerate(columns):
            fields.append((f"l{i}", ">i4"))
            if c.kind == "text":
                if length_of[i] > 0:
                    fields.append((f"v{i}", f"S{length_of[i]}"))
            else:
                fields.append((f"v{i}", _WIRE[c.kind]))
        out = np.empty(len(rows), dtype=np.dtype(fields))
        out["n"] = len(columns)
        for i, c in enumerate(columns):
            if c.kind == "text":
                out[f"l{i}"] = length_of[i]
                if length_of[i] > 0:
                    out[f"v{i}"] = texts[i][1][c.values[rows]]
                continue
            out[f"l{i}"] = 8 if c.kind != "int4" else 4
            values = c.values[rows]
            out[f"v{i}"] = values - PG_EPOCH_US if c.kind == "timestamptz" else values
        parts.append(out.tobytes())
    return b"".join(parts)


def copy_stream(columns: Sequence[Column], rows_per_chunk: int = 50_000) -> Iterator[bytes]:
    """Yield a complete binary COPY stream of ``columns``, a chunk at a time."""
    n = len(columns[0].values)
    yield HEADER
    for start in range(0, n, rows_per_chunk):
        yield encode_rows(columns, start, min(n, start + rows_per_chunk))
    yield TRAILER


#: market_ticks columns in the order the tick COPY writes them
TICK_COPY_COLUMNS: tuple[str, ...] = ("time", "symbol", *TICK_FLOAT_FIELDS, "seq")


def tick_columns(sorted_: SortedBatch) -> list[Column]:
    """Return a sorted batch as the columns of :data:`TICK_COPY_COLUMNS`."""
    b = sorted_.batch
    return [
        Column("time", "timestamptz", sorted_.time_us),
        Column("symbol", "text", b.symbol_idx, b.symbols),
        *(Column(f, "float8", getattr(b, f)) for f in TICK_FLOAT_FIELDS),
        Column("seq", "int8", sorted_.seq),
    ]


#: the fixed-width columns a tick query returns, in this order
TICK_QUERY_COLUMNS: tuple[str, ...] = ("time", *TICK_FLOAT_FIELDS, "seq")


class CopyFormatError(ValueError):
    """A binary COPY stream did not have the expected layout."""


def decode_rows(data: bytes, fields: Sequence[tuple[str, Kind]]) -> dict[str, npt.NDArray[Any]]:
    """Decode a binary COPY whose columns are all fixed-width and never NULL into numpy columns.

    timestamptz columns come back as Unix microseconds.
    """
    if not data.startswith(SIGNATURE):
        raise CopyFormatError("not a binary COPY stream")
    (ext_len,) = struct.unpack_from("!i", data, len(SIGNATURE) + 4)
    body = memoryview(data)[len(SIGNATURE) + 8 + ext_len :]
    if bytes(body[-2:]) != TRAILER:
        raise CopyFormatError("binary COPY stream has no trailer")
    body = body[:-2]
    layout: list[tuple[str, str]] = [("n", ">i2")]
    for name, kind in fields:
        layout += [(f"{name}_len", ">i4"), (name, _WIRE[kind])]
    row = np.dtype(layout)
    if len(body) % row.itemsize:
        raise CopyFormatError(f"binary COPY body of {len(body)} bytes is not whole rows of {row.itemsize}")
    rows = np.frombuffer(body, dtype=row)
    if len(rows) and (rows["n"] != len(fields)).any():
        raise CopyFormatError("binary COPY rows do not have the expected number of fields")
    out: dict[str, npt.NDArray[Any]] = {}
    for name, kind in fields:
        width = 4 if kind == "int4" else 8
        if len(rows) and (rows[f"{name}_len"] != width).any():
            raise CopyFormatError(f"binary COPY column {name} is NULL or not {kind}")
        native = rows[name].astype(_WIRE[kind].replace(">", "="))
        out[name] = native + PG_EPOCH_US if kind == "timestamptz" else native
    return out


def decode_tick_rows(data: bytes) -> dict[str, npt.NDArray[Any]]:
    """Decode a binary COPY of :data:`TICK_QUERY_COLUMNS`: ``time_us`` (Unix microseconds), floats, ``seq``."""
    fields: list[tuple[str, Kind]] = [("time_us", "timestamptz")]
    fields += [(f, "float8") for f in TICK_FLOAT_FIELDS]
    fields.append(("seq", "int8"))
    return decode_rows(data, fields)


def sql_literal(text: str) -> str:
    """Return ``text`` as a PostgreSQL string literal (for COPY (query), which takes no parameters)."""
    if "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"
