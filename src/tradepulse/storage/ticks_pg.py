"""The PostgreSQL tick store (asyncpg): binary COPY in, incremental 1-minute bars, day partitions on demand.

A write is one transaction: ``COPY`` the ticks in binary (numpy-encoded, see :mod:`tradepulse.storage.pg_copy`),
``COPY`` the batch's partial 1-minute bars into a temporary table and merge them into ``ohlc_1min`` in one
statement (see :mod:`tradepulse.storage.ticks_pg_sql`), merge its last tick per symbol into ``market_latest``,
then save the stream checkpoint and the ingested file's record, if any (last, so that refusing a repeated file
rolls all of it back). Before it, the day partitions the batch needs are created in their own short transaction
(an empty partition left by a failed write is harmless), so the write transaction never holds DDL locks. On a
TimescaleDB layout the continuous aggregate maintains ``ohlc_1min`` and partitions are chunks, so both steps are
skipped.

Ticks within a batch are sorted by (symbol, time) before the COPY: index inserts then touch each symbol's part
of the (symbol, time DESC) index in one run instead of at random, which measured about 20 % faster. Several
writes may run at once on the pool (the benchmark keeps two in flight): the COPYs run in parallel, the rollup
merges one at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from tradepulse.domain import Tick
from tradepulse.domain.batch import TICK_FLOAT_FIELDS, BarBatch, TickBatch
from tradepulse.marketdata.bars import US_PER_DAY, MinutePartials, SortedBatch, minute_partials, sort_batch, vwaps
from tradepulse.marketdata.exact import ExactSums
from tradepulse.storage import ticks_pg_sql as sql
from tradepulse.storage.migrations import migrate_postgres
from tradepulse.storage.pg_copy import (
    TICK_COPY_COLUMNS,
    Column,
    copy_stream,
    decode_rows,
    decode_tick_rows,
    sql_literal,
    tick_columns,
)
from tradepulse.storage.schema.marketdata import SEQ_BLOCK
from tradepulse.storage.ticks import AlreadyIngested, Checkpoint, IngestedFile, IngestRecord, bar_range


def _exact_floats(cols: dict[str, npt.NDArray[Any]], x: str) -> npt.NDArray[np.float64]:
    """Round exact sums m * 2**e to floats: int64 -> float64 and numeric -> float8 both round to nearest, and
    scaling by a power of two is exact."""
    big = cols[f"{x}_big"]
    mantissa = np.where(np.isnan(big), cols[f"{x}_m"].astype(np.float64), big)
    return np.ldexp(mantissa, cols[f"{x}_e"].astype(np.int32))


async def _aiter(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class PostgresTickStore:
    """A :class:`~tradepulse.storage.ticks.TickStore` on PostgreSQL. Open it with :meth:`open`."""

    backend = "postgres"

    def __init__(
        self, pool: asyncpg.Pool, layout: str, *, own_pool: bool = False, synchronous_commit: bool = True
    ) -> None:
        self._pool = pool
        self.layout = layout
        self._own_pool = own_pool
        self._synchronous_commit = synchronous_commit
        self._days: set[int] | None = None

    @classmethod
    async def open(
        cls, pool: asyncpg.Pool, *, migrate: bool = True, own_pool: bool = False, synchronous_commit: bool = True
    ) -> PostgresTickStore:
        """Return a store on ``pool`` (migrating the schema first with ``migrate``).

        ``synchronous_commit=False`` lets a write return before its WAL is flushed: a server crash may lose the
        last fraction of a second of ticks (never corrupt anything); the bulk loader can afford that.
        """
        async with pool.acquire() as conn:
            if migrate:
                await migrate_postgres(conn)
            layout = await conn.fetchval("SELECT value FROM market_store_info WHERE key = 'layout'")
        return cls(pool, str(layout), own_pool=own_pool, synchronous_commit=synchronous_commit)

    @property
    def native(self) -> bool:
        return self.layout == "native"

    async def close(self) -> None:
        if self._own_pool:
            await self._pool.close()

    # -- writes -------------------------------------------------------------------------------------------

    async def write(
        self, batch: TickBatch, *, ingest: IngestRecord | None = None, checkpoint: Checkpoint | None = None
    ) -> int:
        n = len(batch)
        if n == 0 and ingest is None and checkpoint is None:
            return 0
        batch.check()
        async with self._pool.acquire() as conn:
            if n and self.native:
                await self._ensure_partitions(conn, batch)
            block_count = -(-max(n, 1) // SEQ_BLOCK)
            blocks = [
                r[0]
                for r in await conn.fetch(
                    "SELECT nextval('market_tick_seq_blocks') FROM generate_series(1, $1)", block_count
                )
            ]
            i = np.arange(n, dtype=np.int64)
            seq = np.asarray(blocks, dtype=np.int64)[i // SEQ_BLOCK] * SEQ_BLOCK + i % SEQ_BLOCK
            sorted_ = sort_batch(batch.with_seq(seq))
            async with conn.transaction():
                if not self._synchronous_commit:
                    await conn.execute("SET LOCAL synchronous_commit = off")
                if n:
                    await self._write_rows(conn, sorted_)
                # recorded last, so that refusing a repeat rolls back all the work above (atomicity is
                # exercised every time, not only on a rare failure in the middle)
                if checkpoint is not None:
                    await conn.execute(
                        """INSERT INTO market_tick_checkpoints (stream, grp, entry_id) VALUES ($1, $2, $3)
                           ON CONFLICT (stream, grp) DO UPDATE SET entry_id = EXCLUDED.entry_id""",
                        checkpoint.stream,
                        checkpoint.group,
                        checkpoint.entry_id,
                    )
                if ingest is not None:
                    await self._record_ingest(conn, ingest)
        return n

    async def checkpoint(self, stream: str, group: str) -> str | None:
        async with self._pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT entry_id FROM market_tick_checkpoints WHERE stream = $1 AND grp = $2", stream, group
            )
        return None if value is None else str(value)

    async def _write_rows(self, conn: asyncpg.Connection, sorted_: SortedBatch) -> None:
        await conn.copy_to_table(
            "market_ticks", source=_aiter(copy_stream(tick_columns(sorted_))), columns=TICK_COPY_COLUMNS,
            format="binary",
        )  # fmt: skip
        if self.native:
            await self._merge_partials(conn, minute_partials(sorted_))
        last = sorted_.last_of_symbol
        sb = sorted_.batch
        await conn.execute(
            sql.UPSERT_LATEST,
            sb.symbol_array()[last].tolist(),
            sorted_.time_us[last].tolist(),
            *(getattr(sb, f)[last].tolist() for f in TICK_FLOAT_FIELDS),
            sorted_.seq[last].tolist(),
        )

    async def _merge_partials(self, conn: asyncpg.Connection, p: MinutePartials) -> None:
        await conn.execute(sql.ROLLUP_LOCK)
        present = np.unique(p.symbol_idx)
        latest = dict(await conn.fetch(sql.LATEST_MINUTES, [p.symbols[i] for i in present.tolist()]))
        # per partial, the latest stored minute of its symbol (-inf: no ticks yet)
        floor = np.array([latest.get(name, np.iinfo(np.int64).min) for name in p.symbols], dtype=np.int64)
        v_small, v_ok = p.volume.small()
        t_small, t_ok = p.turnover.small()
        fresh = (p.bucket_us > floor[p.symbol_idx]) & v_ok & t_ok
        if fresh.any():
            rows = np.flatnonzero(fresh)
            direct = [
                Column("symbol", "text", p.symbol_idx[rows], p.symbols),
                Column("bucket", "timestamptz", p.bucket_us[rows]),
                Column("open", "float8", p.open[rows]),
                Column("high", "float8", p.high[rows]),
                Column("low", "float8", p.low[rows]),
                Column("close", "float8", p.close[rows]),
                Column("volume_m", "int8", v_small[rows]),
                Column("volume_e", "int4", p.volume.e[rows]),
                Column("turnover_m", "int8", t_small[rows]),
                Column("turnover_e", "int4", p.turnover.e[rows]),
                Column("trades", "int8", p.trades[rows]),
                Column("first_time", "timestamptz", p.first_us[rows]),
                Column("first_seq", "int8", p.first_seq[rows]),
                Column("last_time", "timestamptz", p.last_us[rows]),
                Column("last_seq", "int8", p.last_seq[rows]),
            ]
            await conn.copy_to_table(
                "ohlc_1min", source=_aiter(copy_stream(direct)), columns=sql.OHLC_COPY_COLUMNS, format="binary"
            )
        if fresh.all():
            return
        rows = np.flatnonzero(~fresh)
        staged = [
            Column("symbol", "text", p.symbol_idx[rows], p.symbols),
            Column("bucket", "timestamptz", p.bucket_us[rows]),
            Column("open", "float8", p.open[rows]),
            Column("high", "float8", p.high[rows]),
            Column("low", "float8", p.low[rows]),
            Column("close", "float8", p.close[rows]),
            *_sum_columns("v", p.volume, rows),
            *_sum_columns("t", p.turnover, rows),
            Column("trades", "int8", p.trades[rows]),
            Column("first_time", "timestamptz", p.first_us[rows]),
            Column("first_seq", "int8", p.first_seq[rows]),
            Column("last_time", "timestamptz", p.last_us[rows]),
            Column("last_seq", "int8", p.last_seq[rows]),
        ]
        await conn.execute(sql.STAGE)
        await conn.copy_to_table(
            "tp_ohlc_stage", source=_aiter(copy_stream(staged)), columns=[c.name for c in staged], format="binary"
        )
        await conn.execute(sql.MERGE_STAGE)

    async def _record_ingest(self, conn: asyncpg.Connection, ingest: IngestRecord) -> None:
        status = await conn.execute(
            sql.INSERT_INGEST, ingest.sha256, ingest.path, ingest.kind, ingest.rows, ingest.rejected
        )
        if status.endswith(" 0"):
            raise AlreadyIngested(f"{ingest.path}: a file with the same content was already ingested")

    async def _ensure_partitions(self, conn: asyncpg.Connection, batch: TickBatch) -> None:
        if self._days is None:
            names = await conn.fetch(
                """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'market_ticks'::regclass"""
            )
            self._days = {d for d in (_partition_day(r["relname"]) for r in names) if d is not None}
        days = np.unique(np.floor_divide(np.floor_divide(batch.ts_ns, 1000), US_PER_DAY)).tolist()
        missing = [d for d in days if d not in self._days]
        if missing:
            epoch = dt.date(1970, 1, 1)
            await conn.fetchval(
                "SELECT tp_ensure_tick_partitions($1::date[])", [epoch + dt.timedelta(days=d) for d in missing]
            )
            self._days.update(missing)

    async def write_bars(self, bars: BarBatch, *, ingest: IngestRecord | None = None) -> int:
        names = np.asarray(bars.symbols, dtype=object)
        async with self._pool.acquire() as conn, conn.transaction():
            if ingest is not None:
                await self._record_ingest(conn, ingest)
            if len(bars):
                await conn.execute(
                    sql.UPSERT_BARS,
                    names[bars.symbol_idx].tolist(),
                    bars.interval_s,
                    np.floor_divide(bars.start_ns, 1000).tolist(),
                    bars.open.tolist(),
                    bars.high.tolist(),
                    bars.low.tolist(),
                    bars.close.tolist(),
                    bars.volume.tolist(),
                    [None if w != w else w for w in bars.vwap.tolist()],
                    bars.trades.tolist(),
                )
        return len(bars)

    # -- reads --------------------------------------------------------------------------------------------

    async def latest(self, symbols: list[str] | None = None) -> dict[str, Tick]:
        query = f"SELECT symbol, {sql.us('time')} AS t, price, size, bid, ask, bid_size, ask_size FROM market_latest"
        async with self._pool.acquire() as conn:
            if symbols is None:
                rows = await conn.fetch(query)
            else:
                rows = await conn.fetch(query + " WHERE symbol = ANY($1::text[])", symbols)
        return {
            r["symbol"]: Tick(
                symbol=r["symbol"],
                ts_ns=r["t"] * 1000,
                **{f: r[f] for f in TICK_FLOAT_FIELDS},
            )
            for r in rows
        }

    async def _copy_out(self, query: str) -> bytes:
        chunks: list[bytes] = []

        async def sink(data: bytes) -> None:
            chunks.append(data)

        async with self._pool.acquire() as conn:
            await conn.copy_from_query(query, output=sink, format="binary")
        return b"".join(chunks)

    async def ticks(self, symbol: str, start_ns: int, end_ns: int, *, limit: int | None = None) -> TickBatch:
        query = sql.TICKS_QUERY.format(symbol=sql_literal(symbol), start=-(-start_ns // 1000), end=-(-end_ns // 1000))
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        cols = decode_tick_rows(await self._copy_out(query))
        n = len(cols["seq"])
        return TickBatch.from_fields(
            (symbol,) if n else (),
            np.zeros(n, dtype=np.int32),
            cols["time_us"] * 1000,
            {f: cols[f] for f in TICK_FLOAT_FIELDS},
            seq=cols["seq"],
        )

    async def bars(self, symbol: str, interval: str | int, start_ns: int, end_ns: int) -> BarBatch:
        seconds, start_us, end_us = bar_range(interval, start_ns, end_ns)
        if seconds == 60:
            query = (sql.BARS_1M if self.native else sql.BARS_1M_TIMESCALE).format(
                symbol=sql_literal(symbol), start=start_us, end=end_us
            )
            cols = decode_rows(await self._copy_out(query), sql.BAR_1M_FIELDS if self.native else sql.BAR_FIELDS)
            order = np.argsort(cols["start_us"], kind="stable")  # cheaper here than a sort in the server
            cols = {k: v[order] for k, v in cols.items()}
            if self.native:
                cols["volume"], cols["turnover"] = _exact_floats(cols, "volume"), _exact_floats(cols, "turnover")
        else:
            statement = sql.BARS_ROLLUP_NATIVE if self.native else sql.BARS_ROLLUP_TIMESCALE
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(statement, symbol, start_us, end_us, dt.timedelta(seconds=seconds))
            columns = list(zip(*rows, strict=True)) if rows else [()] * len(sql.BAR_FIELDS)
            cols = {name: np.array(c) for (name, _), c in zip(sql.BAR_FIELDS, columns, strict=True)}
        volume = np.asarray(cols["volume"], dtype=np.float64)
        return BarBatch.of_symbol(
            symbol,
            seconds,
            np.asarray(cols["start_us"], dtype=np.int64) * 1000,
            cols["open"],
            cols["high"],
            cols["low"],
            cols["close"],
            volume,
            vwaps(volume, np.asarray(cols["turnover"], dtype=np.float64)),
            cols["trades"],
        )

    async def imported_bars(self, symbol: str, interval: str | int, start_ns: int, end_ns: int) -> BarBatch:
        seconds, start_us, end_us = bar_range(interval, start_ns, end_ns)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql.IMPORTED_BARS, symbol, seconds, start_us, end_us)
        c = list(zip(*rows, strict=True)) if rows else [()] * 8
        return BarBatch.of_symbol(
            symbol, seconds, np.array(c[0], dtype=np.int64) * 1000, c[1], c[2], c[3], c[4], c[5], c[6], c[7]
        )

    async def count(self, symbol: str | None = None) -> int:
        async with self._pool.acquire() as conn:
            if symbol is None:
                return int(await conn.fetchval("SELECT count(*) FROM market_ticks"))
            return int(await conn.fetchval("SELECT count(*) FROM market_ticks WHERE symbol = $1", symbol))

    async def symbols(self) -> list[str]:
        async with self._pool.acquire() as conn:
            return [r[0] for r in await conn.fetch("SELECT symbol FROM market_latest ORDER BY symbol")]

    async def ingested(self) -> list[IngestedFile]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT sha256, path, kind, rows, rejected, {sql.us("ingested_at")} FROM market_ingests
                    ORDER BY ingested_at, sha256"""
            )
        return [IngestedFile(*r) for r in rows]


def _sum_columns(prefix: str, sums: ExactSums, rows: npt.NDArray[np.intp]) -> list[Column]:
    """Exact sums of ``rows`` as staging columns: the mantissa as int8, or (beyond 64 bits) as text; the exponent."""
    small, ok = sums.small()
    small, ok = small[rows], ok[rows]
    big = np.flatnonzero(~ok)
    index = np.full(len(rows), -1, dtype=np.int64)
    index[big] = np.arange(len(big))
    return [
        Column(f"{prefix}m", "int8", small),
        Column(f"{prefix}big", "text", index, tuple(str(sums.mantissa(int(rows[g]))) for g in big)),
        Column(f"{prefix}e", "int4", sums.e[rows]),
    ]


def _partition_day(name: str) -> int | None:
    """Return the day number (since 1970-01-01) of a ``market_ticks_YYYYMMDD`` partition, else None."""
    suffix = name.removeprefix("market_ticks_")
    if len(suffix) != 8 or not suffix.isdigit():
        return None
    day = dt.date(int(suffix[:4]), int(suffix[4:6]), int(suffix[6:]))
    return (day - dt.date(1970, 1, 1)).days
