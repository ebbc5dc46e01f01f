"""Read market data files (CSV, Parquet) into raw columns that remember where each row came from.

Validation (:mod:`tradepulse.marketdata.validation`) must name the line of every bad value, so a row's origin
is kept next to its values: the physical line in a CSV file (the header is line 1), the 1-based row number in
a Parquet file. CSV values are kept as text, exactly as written, so an error can quote them.

CSV files are read by pyarrow's multithreaded reader with every column as text, one physical line per row
(``newlines_in_values`` off, empty lines kept as empty rows), which keeps the line arithmetic exact. A file that
reader refuses (a row with the wrong number of fields, a quoted newline) is read again by Python's ``csv``
module, which tracks line numbers itself and reports each malformed row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

I64 = npt.NDArray[np.int64]


class FileFormatError(ValueError):
    """A file cannot be read at all (unknown format, not UTF-8, no header, duplicate column names)."""


@dataclass(frozen=True)
class RowError:
    """One bad value (or row): where it is, what it is, and why it is refused."""

    file: str
    line: int
    column: str | None
    value: str
    reason: str
    #: "line" for text files (physical line, header = 1), "row" for Parquet (1-based)
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file}: row {self.line}"
        if self.column is None:
            return f"{where}: {self.reason}"
        return f'{where}: column "{self.column}": value "{self.value}" {self.reason}'


@dataclass
class RawTable:
    """The columns of a file, and per row where it came from (``origin``: line or row number)."""

    path: Path
    columns: dict[str, pa.Array]
    origin: I64
    unit: str
    #: rows that could not even be split into fields (CSV only); they are not in ``columns``
    malformed: list[RowError] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path)

    def __len__(self) -> int:
        return len(self.origin)

    def error(self, row: int, column: str | None, value: str, reason: str) -> RowError:
        return RowError(self.name, int(self.origin[row]), column, value, reason, self.unit)

    def text(self, column: str, row: int) -> str:
        """Return the value at (``column``, ``row``) as it appears in the file (Parquet values as text)."""
        value = self.columns[column][row].as_py()
        return "" if value is None else str(value)

    def take(self, rows: npt.NDArray[np.integer]) -> RawTable:
        index = pa.array(rows, type=pa.int64())
        return RawTable(
            self.path, {k: v.take(index) for k, v in self.columns.items()}, self.origin[rows], self.unit, []
        )


def read_table(path: str | Path) -> RawTable:
    """Read a ``.csv`` (optionally ``.csv.gz``) or ``.parquet`` file."""
    p = Path(path)
    suffixes = "".join(p.suffixes[-2:]).lower()
    if p.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(p)
    if p.suffix.lower() == ".csv" or suffixes in (".csv.gz", ".csv.bz2"):
        return _read_csv(p)
    raise FileFormatError(f"{p}: unknown file type (expected .csv, .csv.gz or .parquet)")


def _check_names(path: Path, names: list[str]) -> None:
    if not names or all(not n.strip() for n in names):
        raise FileFormatError(f"{path}: no header line (the first line must name the columns)")
    seen: set[str] = set()
    for n in names:
        if n.lower() in seen:
            raise FileFormatError(f'{path}: column "{n}" appears twice in the header')
        seen.add(n.lower())


def _read_csv(path: Path) -> RawTable:
    try:
        with pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=1 << 20)) as probe:
            names = list(probe.schema.names)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise FileFormatError(f"{path}: the file is empty (no header line)") from None
        return _read_csv_python(path)
    _check_names(path, names)
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=8 << 20),
            parse_options=pa_csv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False, null_values=[]
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return _read_csv_python(path)
    columns = {n: table.column(n).combine_chunks() for n in names}
    if table.num_rows and columns:
        # pyarrow reads an empty line as a row of empty values, like a line of bare commas; only the csv
        # module tells the two apart (the first is skipped, the second is a row of missing values)
        empty = np.ones(table.num_rows, dtype=bool)
        for column in columns.values():
            empty &= np.asarray(pc.equal(column, "").to_numpy(zero_copy_only=False), dtype=bool)
        if empty.any():
            return _read_csv_python(path)
    return RawTable(path, columns, np.arange(2, table.num_rows + 2, dtype=np.int64), "line")


def _open_text(path: Path) -> Iterable[str]:
    if path.suffix.lower() == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    if path.suffix.lower() == ".bz2":
        import bz2

        return bz2.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _read_csv_python(path: Path) -> RawTable:
    """Read a CSV file with the ``csv`` module: slower, but it knows the line of every row it splits."""
    rows: list[list[str]] = []
    origin: list[int] = []
    malformed: list[RowError] = []
    try:
        with _open_text(path) as f:  # type: ignore[attr-defined]
            reader = csv.reader(f)
            try:
                names = next(reader)
            except StopIteration:
                raise FileFormatError(f"{path}: the file is empty (no header line)") from None
            _check_names(path, names)
            width = len(names)
            last = reader.line_num
            for row in reader:
                start = last + 1
                last = reader.line_num
                if not row:
                    continue
                if len(row) != width:
                    malformed.append(
                        RowError(
                            str(path),
                            start,
                            None,
                            ",".join(row),
                            f"expected {width} fields (as in the header), found {len(row)}",
                        )
                    )
                    continue
                rows.append(row)
                origin.append(start)
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise FileFormatError(f"{path}:{reader.line_num}: {exc}") from None
    columns = {n: pa.array([r[j] for r in rows], type=pa.string()) for j, n in enumerate(names)}
    return RawTable(path, columns, np.asarray(origin, dtype=np.int64), "line", malformed)


def _read_parquet(path: Path) -> RawTable:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileFormatError(f"{path}: not a readable Parquet file ({exc})") from None
    names = list(table.schema.names)
    _check_names(path, names)
    columns = {n: table.column(n).combine_chunks() for n in names}
    return RawTable(path, columns, np.arange(1, table.num_rows + 1, dtype=np.int64), "row")
