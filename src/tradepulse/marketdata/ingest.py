"""Ingest a market data file into a tick store: validate every row, then write in one transaction.

Two policies for bad rows:

- ``reject`` (the default): any bad row refuses the whole file; :class:`IngestError` lists every problem
  (file, line, column, value, why) and nothing is written;
- ``skip``: the good rows are written and the bad ones go to a reject file (``<file>.rejects.csv`` unless
  named), each with its line number and reasons, so it can be fixed and ingested on its own.

Either way the write is one transaction, together with a record of the file keyed by its SHA-256: ingesting
the same content again is refused (:class:`AlreadyIngested`) and writes nothing, unless ``record=False``.
"""

from __future__ import annotations

import asyncio
import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tradepulse.marketdata.files import RowError
from tradepulse.marketdata.sinks import AlreadyIngested, IngestRecord, TickSink, file_sha256
from tradepulse.marketdata.validation import LoadOptions, Validated, validate_file

Policy = Literal["reject", "skip"]

__all__ = ["AlreadyIngested", "IngestError", "IngestRecord", "IngestReport", "Policy", "TickSink", "ingest_file"]


class IngestError(Exception):
    """A file was refused because of bad rows; ``errors`` names each. Nothing was written."""

    def __init__(self, path: Path, errors: list[RowError]) -> None:
        self.path = path
        self.errors = errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{path}: {len(errors)} problem(s), nothing written; first: {errors[0]}{more}")


@dataclass
class IngestReport:
    """What an ingest did."""

    path: Path
    kind: str
    rows: int
    written: int
    rejected: int
    seconds: float
    reject_file: Path | None = None
    errors: list[RowError] = field(default_factory=list)


def default_reject_file(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.csv")


async def ingest_file(
    path: str | Path,
    sink: TickSink,
    options: LoadOptions | None = None,
    *,
    policy: Policy = "reject",
    reject_file: str | Path | None = None,
    record: bool = True,
) -> IngestReport:
    """Validate ``path`` and write its rows to ``sink`` in one transaction; see the module docstring."""
    started = time.monotonic()
    p = Path(path)
    opts = options or LoadOptions()
    # parsing and validation are CPU work: keep the event loop free while they run
    validated, sha = await asyncio.to_thread(lambda: (validate_file(p, opts), file_sha256(p)))
    if validated.errors and policy == "reject":
        raise IngestError(p, validated.errors)
    good = len(validated.good)
    entry = IngestRecord(sha, str(p), opts.kind, good, validated.rejected) if record else None
    if validated.ticks is not None:
        written = await sink.write(validated.ticks, ingest=entry)
    else:
        assert validated.bars is not None
        written = await sink.write_bars(validated.bars, ingest=entry)
    rejects: Path | None = None
    if validated.rejected:
        rejects = Path(reject_file) if reject_file is not None else default_reject_file(p)
        await asyncio.to_thread(write_rejects, validated, rejects)
    return IngestReport(
        p, opts.kind, validated.rows, written, validated.rejected, time.monotonic() - started, rejects, validated.errors
    )


def write_rejects(validated: Validated, target: Path) -> None:
    """Write the refused rows, as they were in the file, with their line numbers and reasons."""
    table = validated.table
    names = list(table.columns)
    unit = "_line" if table.unit == "line" else "_row"
    rows: list[tuple[int, list[str]]] = []
    for row, errors in validated.bad_rows.items():
        values = [table.text(n, row) for n in names]
        rows.append((int(table.origin[row]), [*values, str(int(table.origin[row])), _reasons(errors), ""]))
    for error in table.malformed:
        rows.append((error.line, [*([""] * len(names)), str(error.line), error.reason, error.value]))
    rows.sort(key=lambda r: r[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*names, unit, "_errors", "_raw"])
        writer.writerows(r for _, r in rows)


def _reasons(errors: list[RowError]) -> str:
    return "; ".join(f'{e.column}="{e.value}" {e.reason}' if e.column else e.reason for e in errors)
