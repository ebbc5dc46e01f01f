"""Tick store benchmark: ingest ticks/s into PostgreSQL and SQLite, and one-day 1-minute bar query latency.

    python -m benchmarks.marketdata_bench [--ingest-ticks 1000000] [--history-ticks 10000000] [--symbols 100]
        [--days 30] [--batch 100000] [--concurrency 2] [--queries 1000] [--rate 100] [--skip-pg] [--skip-sqlite]
        [--database NAME] [--sqlite-path FILE] [--no-synchronous-commit]

For each store:

1. **ingest**: ``--ingest-ticks`` synthetic ticks of ``--symbols`` symbols (the first days of the history below),
   generated beforehand with numpy (test data for a storage benchmark, not the simulator), are written through
   the store's ``write`` in batches of ``--batch`` ticks, one transaction each, from one process, into an empty
   store; PostgreSQL with ``--concurrency`` transactions in flight on the pool (SQLite has one writer). The
   figure is ticks over the wall time of all the writes (validation, sorting, the 1-minute rollup, the COPY and
   the commits included).
2. **history**: the store is filled up to ``--history-ticks`` ticks spread over ``--days`` days (the ingest's
   ticks are its first part), written the same way.
3. **bars**: one-day 1-minute bars of one symbol (a random symbol and day each time) are queried open-loop at
   ``--rate`` per second: query i is due at ``t0 + i / rate`` and its latency runs from that due time to the
   last bar received, into an HDR histogram (a stall counts against every query it delayed).

PostgreSQL runs in a database of its own, ``tp_bench_<random>`` on the server of ``TRADEPULSE_DATABASE_URL``,
dropped at the end; ``--database NAME`` keeps the history in NAME instead (loaded once, reused by later runs;
the ingest is then measured in a scratch database). SQLite uses a temporary file, or ``--sqlite-path``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import asyncpg
import numpy as np
import uvloop

from benchmarks.common import Metric, console, paced, print_summary, write_results
from tradepulse.config import DatabaseConfig
from tradepulse.domain import TickBatch
from tradepulse.observability.latency import LatencyHistogram
from tradepulse.storage.postgres import create_pool
from tradepulse.storage.ticks import TickStore
from tradepulse.storage.ticks_pg import PostgresTickStore
from tradepulse.storage.ticks_sqlite import SqliteTickStore

DATABASE_URL = os.environ.get("TRADEPULSE_DATABASE_URL", "postgresql://127.0.0.1:5432/postgres")
#: 2024-01-01 00:00:00 UTC in microseconds: the history starts here
START_US = 1_704_067_200_000_000
DAY_US = 86_400_000_000


def synthetic(total: int, symbols: int, days: int, chunk: int, seed: int = 7) -> Iterator[TickBatch]:
    """Yield ``total`` ticks over ``days`` days in time order, ``chunk`` at a time (uniform times and symbols)."""
    rng = np.random.default_rng(seed)
    names = tuple(f"S{i:03d}" for i in range(symbols))
    span = days * DAY_US
    mid = 100.0 + rng.random(symbols) * 100
    for first in range(0, total, chunk):
        n = min(chunk, total - first)
        lo = START_US + span * first // total
        hi = START_US + span * (first + n) // total
        t_us = np.sort(rng.integers(lo, hi, n))
        idx = rng.integers(0, symbols, n).astype(np.int32)
        mid *= np.exp(rng.normal(0, 0.002, symbols))
        price = np.round(mid[idx] * (1 + rng.normal(0, 0.0005, n)), 2)
        half = rng.integers(1, 4, n) * 0.01
        size = rng.integers(1, 50, n) * 100.0
        yield TickBatch(
            names, idx, t_us * 1000, price, size, price - half, price + half, size, size.copy()
        )  # fmt: skip


async def write_all(
    store: TickStore, batches: Iterator[TickBatch] | list[TickBatch], concurrency: int
) -> tuple[int, float]:
    """Write every batch, ``concurrency`` transactions in flight; return (ticks, wall seconds of the writing)."""
    ticks = 0
    in_flight: set[asyncio.Task[int]] = set()
    started = time.perf_counter()
    for batch in batches:
        if len(in_flight) >= concurrency:
            done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            ticks += sum(t.result() for t in done)
        in_flight.add(asyncio.ensure_future(store.write(batch)))
    ticks += sum(await asyncio.gather(*in_flight))
    return ticks, time.perf_counter() - started


async def measure_bars(
    store: TickStore, *, symbols: int, days: int, queries: int, rate: float, seed: int = 11
) -> tuple[LatencyHistogram, int]:
    """Query one-day 1-minute bars open-loop; return the latency histogram and the bars returned in total."""
    rnd = random.Random(seed)
    picks = [(f"S{rnd.randrange(symbols):03d}", rnd.randrange(days)) for _ in range(queries)]
    hist = LatencyHistogram()
    returned = 0
    for symbol, day in picks[:20]:  # warm-up: connections, prepared statements, caches
        await store.bars(symbol, "1m", (START_US + day * DAY_US) * 1000, (START_US + (day + 1) * DAY_US) * 1000)

    async def one(i: int, intended_ns: int) -> None:
        nonlocal returned
        symbol, day = picks[i]
        bars = await store.bars(symbol, "1m", (START_US + day * DAY_US) * 1000, (START_US + (day + 1) * DAY_US) * 1000)
        hist.record_ns(time.time_ns() - intended_ns)
        returned += len(bars)

    await paced(rate, queries, one, precise=True)
    return hist, returned


class Backend:
    """How to get an empty store, and the store holding the history, for one database."""

    name: str

    async def scratch(self) -> TickStore:
        raise NotImplementedError

    async def history(self) -> tuple[TickStore, bool]:
        """Return the history store and whether it is the scratch one (ingest ticks already in it)."""
        raise NotImplementedError

    async def analyze(self, store: TickStore) -> None:
        """Refresh the planner statistics after the bulk load, as after any bulk load."""
        raise NotImplementedError

    async def cleanup(self) -> None:
        raise NotImplementedError


class Postgres(Backend):
    name = "pg"

    def __init__(self, keep: str | None, synchronous_commit: bool) -> None:
        self.keep = keep
        self.sync = synchronous_commit
        self.scratch_db = f"tp_bench_{uuid.uuid4().hex[:10]}"
        self.pools: list[asyncpg.Pool] = []
        self.stores: list[TickStore] = []

    def url(self, database: str) -> str:
        return urlunparse(urlparse(DATABASE_URL)._replace(path=f"/{database}"))

    async def admin(self, sql: str) -> None:
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def open(self, database: str) -> TickStore:
        pool = await create_pool(DatabaseConfig(backend="postgres", url=self.url(database)), min_size=1, max_size=4)
        self.pools.append(pool)
        store = await PostgresTickStore.open(pool, synchronous_commit=self.sync)
        self.stores.append(store)
        return store

    async def scratch(self) -> TickStore:
        await self.admin(f'CREATE DATABASE "{self.scratch_db}"')
        return await self.open(self.scratch_db)

    async def history(self) -> tuple[TickStore, bool]:
        if self.keep is None:
            return self.stores[0], True
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            exists = await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", self.keep)
        finally:
            await conn.close()
        if not exists:
            await self.admin(f'CREATE DATABASE "{self.keep}"')
        return await self.open(self.keep), False

    async def analyze(self, store: TickStore) -> None:
        pool = self.pools[self.stores.index(store)]
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE market_ticks; ANALYZE ohlc_1min; ANALYZE market_latest")

    async def cleanup(self) -> None:
        for store in self.stores:
            await store.close()
        for pool in self.pools:
            await pool.close()
        await self.admin(f'DROP DATABASE IF EXISTS "{self.scratch_db}" WITH (FORCE)')


class Sqlite(Backend):
    name = "sqlite"

    def __init__(self, keep: str | None) -> None:
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="tp-bench-")
        self.stores: list[TickStore] = []

    async def scratch(self) -> TickStore:
        store = await SqliteTickStore.open(Path(self.tmp) / "ingest.db")
        self.stores.append(store)
        return store

    async def history(self) -> tuple[TickStore, bool]:
        if self.keep is None:
            return self.stores[0], True
        store = await SqliteTickStore.open(self.keep)
        self.stores.append(store)
        return store, False

    async def analyze(self, store: TickStore) -> None:
        assert isinstance(store, SqliteTickStore)
        await store.analyze()

    async def cleanup(self) -> None:
        for store in self.stores:
            await store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def run_backend(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    console.print(f"[bold]{backend.name}[/bold]: generating {args.ingest_ticks:,} ticks ...")
    # the first ticks of the history (its first days), so that the ingest sees the history's density
    ingest_batches = list(_first(synthetic(args.history_ticks, args.symbols, args.days, args.batch), args.ingest_ticks))
    out: dict[str, Any] = {}
    try:
        store = await backend.scratch()
        ticks, seconds = await write_all(store, ingest_batches, args.concurrency if backend.name == "pg" else 1)
        out["ingest_ticks_per_s"] = ticks / seconds
        console.print(f"  ingest: {ticks:,} ticks in {seconds:.2f} s = {ticks / seconds:,.0f} ticks/s")
        history, continued = await backend.history()
        have = await history.count()
        if have < args.history_ticks:
            if continued:
                rest: Iterator[TickBatch] = _skip(
                    synthetic(args.history_ticks, args.symbols, args.days, args.batch), args.ingest_ticks
                )
            else:
                rest = _skip(synthetic(args.history_ticks, args.symbols, args.days, args.batch), have)
            console.print(f"  history: filling to {args.history_ticks:,} ticks over {args.days} days ...")
            loaded, spent = await write_all(history, rest, args.concurrency if backend.name == "pg" else 1)
            out["history_load_ticks_per_s"] = loaded / spent if spent else None
            console.print(f"  history: {loaded:,} more ticks in {spent:.1f} s = {loaded / max(spent, 1e-9):,.0f}/s")
        await backend.analyze(history)
        out["history_ticks"] = await history.count()
        console.print(f"  bars: {args.queries:,} one-day 1-minute queries at {args.rate:g}/s ...")
        hist, returned = await measure_bars(
            history, symbols=args.symbols, days=args.days, queries=args.queries, rate=args.rate
        )
        p = hist.percentiles_ms((50, 95, 99, 99.9))
        out["bars"] = p | {"max": hist.max_ms(), "bars_per_query": returned / max(args.queries, 1)}
        console.print(
            f"  bars: p50 {p['p50']:.2f} ms  p95 {p['p95']:.2f} ms  p99 {p['p99']:.2f} ms  max {hist.max_ms():.2f} ms"
            f"  ({returned / max(args.queries, 1):,.0f} bars per query)"
        )
    finally:
        await backend.cleanup()
    return out


def _first(batches: Iterator[TickBatch], ticks: int) -> Iterator[TickBatch]:
    """Keep the first ``ticks`` ticks of a batch stream."""
    for batch in batches:
        if ticks <= 0:
            return
        yield batch if len(batch) <= ticks else batch.take(slice(0, ticks))
        ticks -= len(batch)


def _skip(batches: Iterator[TickBatch], ticks: int) -> Iterator[TickBatch]:
    """Drop the first ``ticks`` ticks of a batch stream (they are already stored)."""
    for batch in batches:
        if ticks >= len(batch):
            ticks -= len(batch)
            continue
        yield batch.take(slice(ticks, None)) if ticks else batch
        ticks = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingest-ticks", type=int, default=1_000_000, help="ticks in the ingest measurement")
    parser.add_argument("--history-ticks", type=int, default=10_000_000, help="ticks stored for the bar queries")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--days", type=int, default=30, help="days the history spans")
    parser.add_argument("--batch", type=int, default=100_000, help="ticks per write (one transaction)")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="PostgreSQL: write transactions in flight (SQLite has one writer)"
    )
    parser.add_argument("--queries", type=int, default=1000, help="bar queries per store")
    parser.add_argument("--rate", type=float, default=100.0, help="bar queries per second (open loop)")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--database", help="keep the PostgreSQL history in this database (reused when full)")
    parser.add_argument("--sqlite-path", help="keep the SQLite history in this file (reused when full)")
    parser.add_argument(
        "--no-synchronous-commit", action="store_true", help="PostgreSQL commits without waiting for the WAL flush"
    )
    args = parser.parse_args()
    args.history_ticks = max(args.history_ticks, args.ingest_ticks)

    results: dict[str, dict[str, Any]] = {}
    runs: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = []
    if not args.skip_pg:
        runs.append(("pg", lambda: run_backend(Postgres(args.database, not args.no_synchronous_commit), args)))
    if not args.skip_sqlite:
        runs.append(("sqlite", lambda: run_backend(Sqlite(args.sqlite_path), args)))
    for name, run in runs:
        results[name] = uvloop.run(run())

    metrics: dict[str, Metric] = {}
    targets = {"pg": (300_000, 10.0), "sqlite": (200_000, None)}
    for name, r in results.items():
        ingest_target, bars_target = targets[name]
        metrics[f"{name}_ingest_ticks_per_s"] = Metric(
            r["ingest_ticks_per_s"], "ticks/s", ingest_target, lower_is_better=False
        )
        metrics[f"{name}_bars_1d_p50_ms"] = Metric(r["bars"]["p50"], "ms")
        metrics[f"{name}_bars_1d_p99_ms"] = Metric(r["bars"]["p99"], "ms", bars_target)
    ok = print_summary("market data benchmark", metrics)
    path = write_results(
        "marketdata",
        {
            "ingest_ticks": args.ingest_ticks,
            "history_ticks": args.history_ticks,
            "symbols": args.symbols,
            "days": args.days,
            "batch": args.batch,
            "pg_concurrency": args.concurrency,
            "queries": args.queries,
            "rate": args.rate,
            "pg_synchronous_commit": not args.no_synchronous_commit,
            "database_server": urlparse(DATABASE_URL).netloc.rsplit("@", 1)[-1],
        },
        metrics,
        extra=results,
    )
    console.print(f"results: {path}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
