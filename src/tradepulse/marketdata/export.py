"""Write ticks to CSV or Parquet, in the layout the loaders read back (``tradepulse data simulate --to FILE``).

Columns: ``time`` (UTC, nanoseconds; ISO 8601 text in CSV), ``symbol``, ``price``, ``size``, ``bid``, ``ask``,
``bid_size``, ``ask_size``. Files are written incrementally, a batch at a time, so a long simulation never
holds all of its ticks in memory.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tradepulse.domain.batch import TICK_FLOAT_FIELDS, TickBatch

SCHEMA = pa.schema(
    [("time", pa.timestamp("ns", tz="UTC")), ("symbol", pa.string())] + [(f, pa.float64()) for f in TICK_FLOAT_FIELDS]
)


def tick_table(batch: TickBatch) -> pa.Table:
    """Return the batch as an Arrow table in :data:`SCHEMA`."""
    columns: list[Any] = [
        pa.array(batch.ts_ns, type=pa.timestamp("ns", tz="UTC")),
        pa.array(batch.symbol_array().tolist(), type=pa.string()),
    ]
    columns += [pa.array(getattr(batch, f)) for f in TICK_FLOAT_FIELDS]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


class TickFileWriter:
    """Append tick batches to a ``.csv`` or ``.parquet`` file; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise ValueError(f"{self.path}: write ticks to a .csv or .parquet file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: Any = (
            pa_csv.CSVWriter(self.path, SCHEMA) if suffix == ".csv" else pq.ParquetWriter(self.path, SCHEMA)
        )
        self.rows = 0

    def write(self, batch: TickBatch) -> None:
        if len(batch):
            self._writer.write_table(tick_table(batch))
            self.rows += len(batch)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> TickFileWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
