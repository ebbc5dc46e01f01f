"""The tick store: one protocol for market ticks and bars, implemented on PostgreSQL and SQLite.

Both implementations keep the same data and give the same answers (one contract test suite runs against both):

- ``market_ticks``: every tick (time, symbol, price, size, bid, ask, bid_size, ask_size, seq), time at
  microsecond resolution (PostgreSQL's), ``seq`` the store's arrival order;
- ``ohlc_1min``: 1-minute bars maintained incrementally on every write (see :mod:`tradepulse.marketdata.bars`),
  equal to aggregating the raw ticks; coarser bars (5m, 15m, 1h, 1d) roll up from it;
- ``market_latest``: the latest tick of each symbol by (time, seq);
- ``market_bars``: OHLCV bars imported from files (they are not derived from ticks, so they live apart);
- ``market_ingests``: the files ingested, by content hash, so the same file is never ingested twice.

Prices and sizes are ``float8`` / ``REAL``: they are market observations, measured and averaged, never money
(see :mod:`tradepulse.domain.market`); eight-byte floats hold every exchange price exactly enough to round
back to its tick, are what the feature code computes with, and keep a tick row small (a ``NUMERIC`` price
would cost more space and a decimal conversion per value on every read and write). The bar sums that must
not drift with batch boundaries, volume and turnover, are exact (``NUMERIC`` / decimal text).

Every write is one transaction: a failure (bad data, a lost connection) writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tradepulse.domain import Tick
from tradepulse.domain.batch import BarBatch, TickBatch, interval_seconds
from tradepulse.marketdata.sinks import AlreadyIngested, IngestRecord

if TYPE_CHECKING:
    from tradepulse.config import DatabaseConfig


@dataclass(frozen=True)
class Checkpoint:
    """How far a stream writer got: saved atomically with the ticks it wrote, so redeliveries are skipped."""

    stream: str
    group: str
    entry_id: str


def entry_key(entry_id: str) -> tuple[int, int]:
    """Return a bus entry id ("<ms>-<seq>", both transports) as a sortable key."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class IngestedFile:
    sha256: str
    path: str
    kind: str
    rows: int
    rejected: int
    ingested_at_us: int


def bar_range(interval: str | int, start_ns: int, end_ns: int) -> tuple[int, int, int]:
    """Return (interval seconds, first bucket start, end), in microseconds, for a bar query.

    A query returns the bars whose bucket starts in ``[start_ns, end_ns)``, each over its whole bucket, so both
    ends are aligned up to the interval (bucket starts are whole microseconds).
    """
    seconds = interval_seconds(interval)
    iv_us = seconds * 1_000_000
    start_us = _ceil_div(_ceil_div(start_ns, 1000), iv_us) * iv_us
    return seconds, start_us, _ceil_div(_ceil_div(end_ns, 1000), iv_us) * iv_us


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@runtime_checkable
class TickStore(Protocol):
    """Where ticks and bars live. See the module docstring for what every implementation keeps."""

    backend: str

    async def write(
        self, batch: TickBatch, *, ingest: IngestRecord | None = None, checkpoint: Checkpoint | None = None
    ) -> int:
        """Store every tick of ``batch`` in one transaction and update the 1-minute bars; return the count.

        With ``ingest``, the file is recorded in the same transaction; :class:`AlreadyIngested` if its hash is
        known (nothing is written). With ``checkpoint``, the stream position is saved in the same transaction.
        """
        ...

    async def checkpoint(self, stream: str, group: str) -> str | None:
        """Return the last bus entry id written with a :class:`Checkpoint` for (stream, group), if any."""
        ...

    async def write_bars(self, bars: BarBatch, *, ingest: IngestRecord | None = None) -> int:
        """Store imported bars in one transaction (a bar with the same symbol, interval and start is replaced)."""
        ...

    async def latest(self, symbols: list[str] | None = None) -> dict[str, Tick]:
        """Return the latest tick (by time, then arrival) of each symbol, or of ``symbols``."""
        ...

    async def ticks(self, symbol: str, start_ns: int, end_ns: int, *, limit: int | None = None) -> TickBatch:
        """Return the ticks of ``symbol`` with ``start_ns <= time < end_ns`` in (time, arrival) order, with seq."""
        ...

    async def bars(self, symbol: str, interval: str | int, start_ns: int, end_ns: int) -> BarBatch:
        """Return the bars of ``symbol`` built from its ticks, for buckets starting in ``[start_ns, end_ns)``.

        Columns, in time order (``.to_bars()`` gives Bar messages); VWAP is NaN where nothing traded.
        """
        ...

    async def imported_bars(self, symbol: str, interval: str | int, start_ns: int, end_ns: int) -> BarBatch:
        """Return imported bars of ``symbol`` and ``interval`` starting in ``[start_ns, end_ns)``."""
        ...

    async def count(self, symbol: str | None = None) -> int:
        """Return the number of stored ticks (of ``symbol``)."""
        ...

    async def symbols(self) -> list[str]:
        """Return the symbols that have ticks, sorted."""
        ...

    async def ingested(self) -> list[IngestedFile]:
        """Return the files ingested so far, oldest first."""
        ...

    async def close(self) -> None:
        """Release connections (a pool passed in by the caller is left open)."""
        ...


async def open_tick_store(
    config: DatabaseConfig, *, migrate: bool = True, synchronous_commit: bool = True
) -> TickStore:
    """Open the store ``config.backend`` names (SQLite at ``config.sqlite_path``, or PostgreSQL at ``config.url``).

    With ``migrate`` the schema is brought up to date first. ``synchronous_commit=False`` (PostgreSQL) lets a
    commit return before its WAL is on disk: a server crash may lose the last moments of ticks, never corrupt.
    """
    if config.backend == "postgres":
        from tradepulse.storage.postgres import create_pool
        from tradepulse.storage.ticks_pg import PostgresTickStore

        pool = await create_pool(config, schema=config.schema or None)
        try:
            return await PostgresTickStore.open(
                pool, migrate=migrate, own_pool=True, synchronous_commit=synchronous_commit
            )
        except BaseException:
            await pool.close()
            raise
    from tradepulse.storage.ticks_sqlite import SqliteTickStore

    return await SqliteTickStore.open(config.sqlite_path, migrate=migrate)


__all__ = [
    "AlreadyIngested",
    "Checkpoint",
    "IngestRecord",
    "IngestedFile",
    "TickStore",
    "bar_range",
    "entry_key",
    "open_tick_store",
]
