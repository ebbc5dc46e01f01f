"""The SQLite tick store: the embedded default, same tables and same answers as the PostgreSQL store.

SQLite calls block, so the store runs them on one dedicated thread (which also serialises them, as one SQLite
connection requires); the sqlite3 module releases the GIL while SQLite works, so the event loop keeps running.
A write is one ``BEGIN IMMEDIATE`` transaction: take a range of seq numbers, insert the ticks (sorted by
symbol and time, the clustering of the ``WITHOUT ROWID`` table), merge the partial 1-minute bars and the
latest ticks. Exact volume and turnover sums are ``m * 2**e`` (see :mod:`tradepulse.marketdata.exact`), the
mantissa an INTEGER or, beyond 64 bits, decimal TEXT, merged by ``tp_exact_add``, a Python function registered
on the connection. Coarser bars are folded from the 1-minute rows in Python, with the same (time, seq) rule for open
and close as the PostgreSQL query.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from tradepulse.domain import Tick
from tradepulse.domain.batch import TICK_FLOAT_FIELDS, BarBatch, TickBatch
from tradepulse.marketdata.bars import minute_partials, sort_batch, vwaps
from tradepulse.marketdata.exact import dyadic_add, dyadic_float, sqlite_exact_add
from tradepulse.storage.migrations import migrate_sqlite
from tradepulse.storage.sqlite import connect
from tradepulse.storage.ticks import AlreadyIngested, Checkpoint, IngestedFile, IngestRecord, bar_range

T = TypeVar("T")

_INSERT_TICKS = """INSERT INTO market_ticks (symbol, time, seq, price, size, bid, ask, bid_size, ask_size)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""

_UPSERT_OHLC = """
INSERT INTO ohlc_1min (symbol, bucket, open, high, low, close, volume_m, volume_e, turnover_m, turnover_e, trades,
                       first_time, first_seq, last_time, last_seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, bucket) DO UPDATE SET
    open = CASE WHEN (excluded.first_time, excluded.first_seq) < (first_time, first_seq)
                THEN excluded.open ELSE open END,
    first_time = CASE WHEN (excluded.first_time, excluded.first_seq) < (first_time, first_seq)
                      THEN excluded.first_time ELSE first_time END,
    first_seq = CASE WHEN (excluded.first_time, excluded.first_seq) < (first_time, first_seq)
                     THEN excluded.first_seq ELSE first_seq END,
    close = CASE WHEN (excluded.last_time, excluded.last_seq) > (last_time, last_seq)
                 THEN excluded.close ELSE close END,
    last_time = CASE WHEN (excluded.last_time, excluded.last_seq) > (last_time, last_seq)
                     THEN excluded.last_time ELSE last_time END,
    last_seq = CASE WHEN (excluded.last_time, excluded.last_seq) > (last_time, last_seq)
                    THEN excluded.last_seq ELSE last_seq END,
    high = max(high, excluded.high),
    low = min(low, excluded.low),
    volume_m = tp_exact_add(volume_m, volume_e, excluded.volume_m, excluded.volume_e),
    volume_e = min(volume_e, excluded.volume_e),
    turnover_m = tp_exact_add(turnover_m, turnover_e, excluded.turnover_m, excluded.turnover_e),
    turnover_e = min(turnover_e, excluded.turnover_e),
    trades = trades + excluded.trades
"""

_UPSERT_LATEST = """
INSERT INTO market_latest (symbol, time, price, size, bid, ask, bid_size, ask_size, seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol) DO UPDATE SET
    time = excluded.time, price = excluded.price, size = excluded.size, bid = excluded.bid, ask = excluded.ask,
    bid_size = excluded.bid_size, ask_size = excluded.ask_size, seq = excluded.seq
WHERE (excluded.time, excluded.seq) > (time, seq)
"""

_UPSERT_BARS = """
INSERT INTO market_bars (symbol, interval_s, start, open, high, low, close, volume, vwap, trades)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, interval_s, start) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, vwap = excluded.vwap, trades = excluded.trades
"""


class SqliteTickStore:
    """A :class:`~tradepulse.storage.ticks.TickStore` on a SQLite file. Open it with :meth:`open`."""

    backend = "sqlite"

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, path: str) -> None:
        self._conn = conn
        self._executor = executor
        self.path = path

    @classmethod
    async def open(cls, path: str | Path, *, migrate: bool = True) -> SqliteTickStore:
        """Open (creating) the database at ``path`` (``:memory:`` works too), migrating it with ``migrate``."""
        executor = ThreadPoolExecutor(1, thread_name_prefix="tick-store-sqlite")

        def _open() -> sqlite3.Connection:
            conn = connect(path)
            conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache: the tick b-tree's hot pages
            conn.create_function("tp_exact_add", 4, sqlite_exact_add, deterministic=True)
            if migrate:
                migrate_sqlite(conn)
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _open)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor, str(path))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def analyze(self) -> None:
        """Refresh SQLite's query planner statistics (after a bulk load)."""
        await self._run(self._conn.execute, "ANALYZE")

    async def close(self) -> None:
        await self._run(self._conn.close)
        self._executor.shutdown(wait=True)

    # -- writes -------------------------------------------------------------------------------------------

    async def write(
        self, batch: TickBatch, *, ingest: IngestRecord | None = None, checkpoint: Checkpoint | None = None
    ) -> int:
        if len(batch) == 0 and ingest is None and checkpoint is None:
            return 0
        batch.check()
        return await self._run(self._write, batch, ingest, checkpoint)

    async def checkpoint(self, stream: str, group: str) -> str | None:
        rows = await self._run(
            self._fetch, "SELECT entry_id FROM market_tick_checkpoints WHERE stream = ? AND grp = ?", (stream, group)
        )
        return str(rows[0][0]) if rows else None

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _record_ingest(self, conn: sqlite3.Connection, ingest: IngestRecord) -> None:
        cur = conn.execute(
            """INSERT INTO market_ingests (sha256, path, kind, rows, rejected, ingested_at)
               VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING""",
            (ingest.sha256, ingest.path, ingest.kind, ingest.rows, ingest.rejected, time.time_ns() // 1000),
        )
        if cur.rowcount == 0:
            raise AlreadyIngested(f"{ingest.path}: a file with the same content was already ingested")

    def _write(self, batch: TickBatch, ingest: IngestRecord | None, checkpoint: Checkpoint | None) -> int:
        n = len(batch)

        def body(conn: sqlite3.Connection) -> int:
            if n:
                self._write_rows(conn, batch)
            if checkpoint is not None:
                conn.execute(
                    """INSERT INTO market_tick_checkpoints (stream, grp, entry_id) VALUES (?, ?, ?)
                       ON CONFLICT (stream, grp) DO UPDATE SET entry_id = excluded.entry_id""",
                    (checkpoint.stream, checkpoint.group, checkpoint.entry_id),
                )
            if ingest is not None:  # last, as in the PostgreSQL store: a refused repeat rolls back everything
                self._record_ingest(conn, ingest)
            return n

        return self._transaction(body)

    def _write_rows(self, conn: sqlite3.Connection, batch: TickBatch) -> None:
        n = len(batch)
        (first,) = conn.execute(
            "UPDATE market_tick_seq SET next = next + ? WHERE id = 1 RETURNING next - ?", (n, n)
        ).fetchone()
        sorted_ = sort_batch(batch.with_seq(first + np.arange(n, dtype=np.int64)))
        sb = sorted_.batch
        symbols = sb.symbol_array().tolist()
        floats = [getattr(sb, f).tolist() for f in TICK_FLOAT_FIELDS]
        conn.executemany(
            _INSERT_TICKS,
            zip(symbols, sorted_.time_us.tolist(), sorted_.seq.tolist(), *floats, strict=True),
        )
        conn.executemany(_UPSERT_OHLC, minute_partials(sorted_).rows())
        last = sorted_.last_of_symbol.tolist()
        conn.executemany(
            _UPSERT_LATEST,
            [(symbols[i], int(sorted_.time_us[i]), *(col[i] for col in floats), int(sorted_.seq[i])) for i in last],
        )

    async def write_bars(self, bars: BarBatch, *, ingest: IngestRecord | None = None) -> int:
        names = np.asarray(bars.symbols, dtype=object)

        def body(conn: sqlite3.Connection) -> int:
            conn.executemany(
                _UPSERT_BARS,
                zip(
                    names[bars.symbol_idx].tolist() if len(bars) else [],
                    [bars.interval_s] * len(bars),
                    np.floor_divide(bars.start_ns, 1000).tolist(),
                    bars.open.tolist(),
                    bars.high.tolist(),
                    bars.low.tolist(),
                    bars.close.tolist(),
                    bars.volume.tolist(),
                    [None if w != w else w for w in bars.vwap.tolist()],
                    bars.trades.tolist(),
                    strict=True,
                ),
            )
            if ingest is not None:
                self._record_ingest(conn, ingest)
            return len(bars)

        return await self._run(self._transaction, body)

    # -- reads --------------------------------------------------------------------------------------------

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    async def latest(self, symbols: list[str] | None = None) -> dict[str, Tick]:
        sql = "SELECT symbol, time, price, size, bid, ask, bid_size, ask_size FROM market_latest"
        rows = await self._run(self._fetch, sql)
        wanted = None if symbols is None else set(symbols)
        return {
            r[0]: Tick(symbol=r[0], ts_ns=r[1] * 1000, **dict(zip(TICK_FLOAT_FIELDS, r[2:], strict=True)))
            for r in rows
            if wanted is None or r[0] in wanted
        }

    async def ticks(self, symbol: str, start_ns: int, end_ns: int, *, limit: int | None = None) -> TickBatch:
        sql = f"""SELECT time, {", ".join(TICK_FLOAT_FIELDS)}, seq FROM market_ticks
                  WHERE symbol = ? AND time >= ? AND time < ? ORDER BY time, seq
                  {"LIMIT " + str(int(limit)) if limit is not None else ""}"""
        rows = await self._run(self._fetch, sql, (symbol, -(-start_ns // 1000), -(-end_ns // 1000)))
        n = len(rows)
        cols = list(zip(*rows, strict=True)) if n else [()] * (2 + len(TICK_FLOAT_FIELDS))
        return TickBatch.from_fields(
            (symbol,) if n else (),
            np.zeros(n, dtype=np.int32),
            np.array(cols[0], dtype=np.int64) * 1000,
            {f: np.array(c, dtype=np.float64) for f, c in zip(TICK_FLOAT_FIELDS, cols[1:-1], strict=True)},
            seq=np.array(cols[-1], dtype=np.int64),
        )

    async def bars(self, symbol: str, interval: str | int, start_ns: int, end_ns: int) -> BarBatch:
        seconds, start_us, end_us = bar_range(interval, start_ns, end_ns)
        columns = "bucket, open, high, low, close, volume_m, volume_e, turnover_m, turnover_e, trades"
        if seconds != 60:
            columns += ", first_time, first_seq, last_time, last_seq"
        rows = await self._run(
            self._fetch,
            f"SELECT {columns} FROM ohlc_1min WHERE symbol = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
            (symbol, start_us, end_us),
        )
        if seconds != 60:
            rows = _fold(seconds, rows)
        c = list(zip(*rows, strict=True)) if rows else [()] * 10
        volume, turnover = _exact_floats(c[5], c[6]), _exact_floats(c[7], c[8])
        return BarBatch.of_symbol(
            symbol,
            seconds,
            np.array(c[0], dtype=np.int64) * 1000,
            c[1],
            c[2],
            c[3],
            c[4],
            volume,
            vwaps(volume, turnover),
            np.array(c[9], dtype=np.int64),
        )

    async def imported_bars(self, symbol: str, interval: str | int, start_ns: int, end_ns: int) -> BarBatch:
        seconds, start_us, end_us = bar_range(interval, start_ns, end_ns)
        rows = await self._run(
            self._fetch,
            """SELECT start, open, high, low, close, volume, coalesce(vwap, 'NaN'), trades FROM market_bars
               WHERE symbol = ? AND interval_s = ? AND start >= ? AND start < ? ORDER BY start""",
            (symbol, seconds, start_us, end_us),
        )
        c = list(zip(*rows, strict=True)) if rows else [()] * 8
        vwap = np.array(c[6], dtype=object)
        return BarBatch.of_symbol(
            symbol,
            seconds,
            np.array(c[0], dtype=np.int64) * 1000,
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            np.array([float(v) for v in vwap], dtype=np.float64),
            np.array(c[7], dtype=np.int64),
        )

    async def count(self, symbol: str | None = None) -> int:
        if symbol is None:
            rows = await self._run(self._fetch, "SELECT count(*) FROM market_ticks")
        else:
            rows = await self._run(self._fetch, "SELECT count(*) FROM market_ticks WHERE symbol = ?", (symbol,))
        return int(rows[0][0])

    async def symbols(self) -> list[str]:
        return [r[0] for r in await self._run(self._fetch, "SELECT symbol FROM market_latest ORDER BY symbol")]

    async def ingested(self) -> list[IngestedFile]:
        rows = await self._run(
            self._fetch,
            "SELECT sha256, path, kind, rows, rejected, ingested_at FROM market_ingests ORDER BY ingested_at, sha256",
        )
        return [IngestedFile(*r) for r in rows]


def _exact_floats(mantissas: tuple[Any, ...], exponents: tuple[Any, ...]) -> npt.NDArray[np.float64]:
    """Round exact sums m * 2**e to floats, vectorised (int64 mantissas) with the rare big one done alone."""
    if all(type(m) is int and -(2**63) <= m < 2**63 for m in mantissas):
        # int64 -> float64 rounds to nearest; scaling by a power of two is exact
        return np.ldexp(np.array(mantissas, dtype=np.int64).astype(np.float64), np.array(exponents, dtype=np.int64))
    return np.array([dyadic_float(int(m), e) for m, e in zip(mantissas, exponents, strict=True)], dtype=np.float64)


def _fold(seconds: int, rows: list[Any]) -> list[tuple[Any, ...]]:
    """Roll 1-minute rows (ordered by bucket) up to ``seconds`` buckets, in the same row layout.

    Open and close go by (time, seq) as in the PostgreSQL query; volume and turnover stay exact (m, e) sums.
    """
    iv_us = seconds * 1_000_000
    out: list[tuple[Any, ...]] = []
    acc: list[Any] | None = None
    for bucket, o, h, lo, c, vm, ve, tm, te, trades, ft, fs, lt, ls in rows:
        start = bucket - bucket % iv_us
        if acc is None or acc[0] != start:
            if acc is not None:
                out.append(tuple(acc))
            acc = [start, o, h, lo, c, int(vm), ve, int(tm), te, trades, ft, fs, lt, ls]
            continue
        if (ft, fs) < (acc[10], acc[11]):
            acc[1], acc[10], acc[11] = o, ft, fs
        if (lt, ls) > (acc[12], acc[13]):
            acc[4], acc[12], acc[13] = c, lt, ls
        acc[2] = max(acc[2], h)
        acc[3] = min(acc[3], lo)
        acc[5], acc[6] = dyadic_add(acc[5], acc[6], int(vm), ve)
        acc[7], acc[8] = dyadic_add(acc[7], acc[8], int(tm), te)
        acc[9] += trades
    if acc is not None:
        out.append(tuple(acc))
    return out
