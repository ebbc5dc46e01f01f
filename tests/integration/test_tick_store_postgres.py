"""What only the PostgreSQL tick store does: day partitions on demand, the default partition, concurrent writers."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import numpy as np

from tests.support.ticks import DAY0_US, bar_tuples, random_ticks, reference_bars
from tradepulse.domain import TickBatch
from tradepulse.storage.ticks_pg import PostgresTickStore

DAY_US = 86_400_000_000


async def partitions(pool: Any) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT c.relname, (SELECT count(*) FROM market_ticks t WHERE t.tableoid = c.oid) AS n
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'market_ticks'::regclass"""
        )
    return {r["relname"]: r["n"] for r in rows}


async def test_the_native_layout_is_used_without_timescaledb(pg_pool: Any) -> None:
    store = await PostgresTickStore.open(pg_pool)
    async with pg_pool.acquire() as conn:
        has_timescale = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
    assert store.layout == ("timescaledb" if has_timescale else "native")


async def test_each_utc_day_gets_its_own_partition(pg_pool: Any) -> None:
    store = await PostgresTickStore.open(pg_pool)
    rng = np.random.default_rng(3)
    await store.write(random_ticks(rng, ["A"], 300, start_us=DAY0_US - DAY_US, span_us=3 * DAY_US))
    parts = await partitions(pg_pool)
    assert parts == {
        "market_ticks_default": 0,
        "market_ticks_20240101": parts["market_ticks_20240101"],
        "market_ticks_20240102": parts["market_ticks_20240102"],
        "market_ticks_20240103": parts["market_ticks_20240103"],
    }
    assert sum(parts.values()) == 300
    assert min(parts.values()) == 0  # only the default one is empty
    assert sorted(parts.values())[1] > 0


async def test_rows_in_the_default_partition_move_when_their_day_is_created(pg_pool: Any) -> None:
    store = await PostgresTickStore.open(pg_pool)
    async with pg_pool.acquire() as conn:  # another writer, bypassing the store, lands in the default partition
        await conn.execute(
            """INSERT INTO market_ticks (time, symbol, price, size, bid, ask, bid_size, ask_size, seq)
               VALUES ('2030-05-05 10:00+00', 'OTHER', 1, 1, 1, 1, 0, 0, -1)"""
        )
    assert (await partitions(pg_pool))["market_ticks_default"] == 1
    may5 = int(dt.datetime(2030, 5, 5, tzinfo=dt.UTC).timestamp()) * 1_000_000
    await store.write(TickBatch.from_columns("A", [(may5 + 3_600_000_000) * 1000], [2.0], [1.0]))
    parts = await partitions(pg_pool)
    assert parts["market_ticks_default"] == 0
    assert parts["market_ticks_20300505"] == 2


async def test_concurrent_writers_to_the_same_minutes_neither_deadlock_nor_lose_anything(pg_pool: Any) -> None:
    """Four writers at once on a new day, the same minutes, symbols of different lengths (COPY groups rows by
    symbol length, so only the merge's ORDER BY keeps the lock order the same for everyone)."""
    stores = [await PostgresTickStore.open(pg_pool) for _ in range(4)]
    rng = np.random.default_rng(5)
    symbols = ["A", "BRK.B", "MSFT", "Z"]
    for _ in range(3):
        batches = [random_ticks(rng, symbols, 500, start_us=DAY0_US + 10 * DAY_US, span_us=600_000_000) for _ in stores]
        await asyncio.gather(*(s.write(b) for s, b in zip(stores, batches, strict=True)))
    assert await stores[0].count() == 6000
    all_ticks = TickBatch.concat([await stores[0].ticks(s, 0, 2 * 10**18) for s in symbols])
    assert all_ticks.seq is not None
    assert len(set(all_ticks.seq.tolist())) == 6000, "seq numbers are unique across writers"
    for symbol in symbols:
        raw = await stores[0].ticks(symbol, 0, 2 * 10**18)
        got = (await stores[1].bars(symbol, "1m", 0, 2 * 10**18)).to_bars()
        assert bar_tuples(got) == bar_tuples(reference_bars(raw, symbol, 60))
