"""PostgreSQL binary COPY for ticks, encoded and decoded with numpy (no Python object per row).

The binary COPY format is a header, then per row an int16 field count and, per field, an int32 length and the
value in network byte order, then an int16 -1 trailer. When every field of a row has a fixed width, a whole
batch is one numpy structured array with big-endian fields, filled column by column; the only variable-width
field, the symbol, is fixed within the group of rows whose symbol has the same byte length, so a batch is
encoded as one such array per distinct symbol length (usually one or two). Decoding a query whose columns are
all fixed-width is a single ``np.frombuffer``.

``timestamptz`` travels as int64 microseconds since 2000-01-01 UTC; ``float8`` as IEEE-754 big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from tradepulse.domain.batch import I64, TICK_FLOAT_FIELDS
from tradepulse.marketdata.bars import SortedBatch

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
#: microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC)
PG_EPOCH_US = 946_684_800_000_000

#: market_ticks columns in the order the encoder writes them
TICK_COPY_COLUMNS: tuple[str, ...] = ("time", "symbol", *TICK_FLOAT_FIELDS, "seq")


def encode_ticks(sorted_: SortedBatch, start: int = 0, stop: int | None = None) -> bytes:
    """Return rows ``start:stop`` of a sorted batch as binary COPY data rows (no header or trailer)."""
    b = sorted_.batch
    stop = len(b) if stop is None else stop
    idx = b.symbol_idx[start:stop]
    encoded = [s.encode() for s in b.symbols]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    row_len = lengths[idx] if len(idx) else np.empty(0, dtype=np.int64)
    parts: list[bytes] = []
    for length in np.unique(row_len).tolist():
        rows = np.flatnonzero(row_len == length) + start
        fields: list[tuple[str, str]] = [("n", ">i2"), ("tl", ">i4"), ("t", ">i8"), ("sl", ">i4")]
        if length:
            fields.append(("s", f"S{length}"))
        for name in TICK_FLOAT_FIELDS:
            fields += [(name + "_l", ">i4"), (name, ">f8")]
        fields += [("ql", ">i4"), ("q", ">i8")]
        out = np.empty(len(rows), dtype=np.dtype(fields))
        out["n"] = len(TICK_COPY_COLUMNS)
        out["tl"] = 8
        out["t"] = sorted_.time_us[rows] - PG_EPOCH_US
        out["sl"] = length
        if length:
            out["s"] = np.array(encoded, dtype=f"S{max(int(lengths.max()), 1)}")[b.symbol_idx[rows]]
        for name in TICK_FLOAT_FIELDS:
            out[name + "_l"] = 8
            out[name] = getattr(b, name)[rows]
        out["ql"] = 8
        out["q"] = sorted_.seq[rows]
        parts.append(out.tobytes())
    return b"".join(parts)


def copy_chunks(sorted_: SortedBatch, rows_per_chunk: int = 50_000) -> Iterator[bytes]:
    """Yield a complete binary COPY stream for the batch, a chunk at a time."""
    n = len(sorted_.batch)
    yield HEADER
    for start in range(0, n, rows_per_chunk):
        yield encode_ticks(sorted_, start, min(n, start + rows_per_chunk))
    yield TRAILER


#: the fixed-width columns a tick query returns, in this order
TICK_QUERY_COLUMNS: tuple[str, ...] = ("time", *TICK_FLOAT_FIELDS, "seq")

_QUERY_ROW = np.dtype(
    [("n", ">i2"), ("tl", ">i4"), ("t", ">i8")]
    + [item for name in TICK_FLOAT_FIELDS for item in ((name + "_l", ">i4"), (name, ">f8"))]
    + [("ql", ">i4"), ("q", ">i8")]
)


class CopyFormatError(ValueError):
    """A binary COPY stream did not have the expected layout."""


def decode_tick_rows(data: bytes) -> dict[str, I64 | np.ndarray]:
    """Decode a binary COPY of :data:`TICK_QUERY_COLUMNS` (no NULLs) into numpy columns.

    Returns ``time_us`` (Unix microseconds), the float fields and ``seq``.
    """
    if not data.startswith(SIGNATURE):
        raise CopyFormatError("not a binary COPY stream")
    (ext_len,) = struct.unpack_from("!i", data, len(SIGNATURE) + 4)
    body = memoryview(data)[len(SIGNATURE) + 8 + ext_len :]
    if bytes(body[-2:]) != TRAILER:
        raise CopyFormatError("binary COPY stream has no trailer")
    body = body[:-2]
    if len(body) % _QUERY_ROW.itemsize:
        raise CopyFormatError(f"binary COPY body of {len(body)} bytes is not whole rows of {_QUERY_ROW.itemsize}")
    rows = np.frombuffer(body, dtype=_QUERY_ROW)
    if len(rows) and (
        (rows["n"] != len(TICK_QUERY_COLUMNS)).any() or (rows["tl"] != 8).any() or (rows["ql"] != 8).any()
    ):
        raise CopyFormatError("binary COPY rows do not have the expected fields")
    out: dict[str, I64 | np.ndarray] = {"time_us": rows["t"].astype(np.int64) + PG_EPOCH_US}
    for name in TICK_FLOAT_FIELDS:
        out[name] = rows[name].astype(np.float64)
    out["seq"] = rows["q"].astype(np.int64)
    return out
