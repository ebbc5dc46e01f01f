"""What file ingest needs from a store, and the record of an ingested file (no I/O libraries imported here).

The stores (:mod:`tradepulse.storage.ticks`) implement :class:`TickSink`; the record and :class:`AlreadyIngested`
live here so that ingest does not depend on storage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tradepulse.domain.batch import BarBatch, TickBatch


class AlreadyIngested(Exception):
    """A file with the same content was ingested before; nothing was written."""


@dataclass(frozen=True)
class IngestRecord:
    """A file being ingested: recorded in the same transaction as its rows, keyed by content hash."""

    sha256: str
    path: str
    kind: str
    rows: int
    rejected: int = 0


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TickSink(Protocol):
    """Where ingested data goes (a :class:`~tradepulse.storage.ticks.TickStore` is one)."""

    async def write(self, batch: TickBatch, *, ingest: IngestRecord | None = None) -> int: ...

    async def write_bars(self, bars: BarBatch, *, ingest: IngestRecord | None = None) -> int: ...
