"""One contract for both tick stores: SQLite (a file in tmp_path) and PostgreSQL (a private schema per test)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.ticks import DAY0_US, bar_tuples, random_ticks, reference_bars
from tradepulse.domain import BarBatch, Tick, TickBatch
from tradepulse.storage.ticks import AlreadyIngested, Checkpoint, IngestRecord, TickStore, entry_key
from tradepulse.storage.ticks_pg import PostgresTickStore
from tradepulse.storage.ticks_sqlite import SqliteTickStore

MINUTE_NS = 60_000_000_000
DAY_NS = 86_400_000_000_000
DAY0_NS = DAY0_US * 1000


def tick(symbol: str, t_us: int, price: float, size: float = 100.0) -> Tick:
    return Tick(symbol=symbol, ts_ns=t_us * 1000, price=price, size=size, bid=price - 0.01, ask=price + 0.01)


def sorted_rows(batch: TickBatch) -> list[tuple[object, ...]]:
    names = batch.symbol_array().tolist()
    return sorted(
        zip(
            names,
            batch.ts_ns.tolist(),
            batch.price.tolist(),
            batch.size.tolist(),
            batch.bid.tolist(),
            batch.ask.tolist(),
            batch.bid_size.tolist(),
            batch.ask_size.tolist(),
            strict=True,
        )
    )


async def test_a_store_implements_the_protocol(tick_store: TickStore) -> None:
    assert isinstance(tick_store, TickStore)
    assert await tick_store.count() == 0
    assert await tick_store.write(TickBatch.empty()) == 0
    assert await tick_store.symbols() == []
    assert await tick_store.latest() == {}


async def test_ticks_round_trip_exactly_in_time_then_arrival_order(tick_store: TickStore) -> None:
    rng = np.random.default_rng(1)
    batch = random_ticks(rng, ["AAPL", "MSFT", "BRK.B"], 3000, sort=False)
    assert await tick_store.write(batch) == 3000
    assert await tick_store.count() == 3000
    assert await tick_store.count("AAPL") == int((batch.symbol_array() == "AAPL").sum())
    assert await tick_store.symbols() == ["AAPL", "BRK.B", "MSFT"]
    parts = [await tick_store.ticks(s, DAY0_NS - DAY_NS, DAY0_NS + DAY_NS) for s in ("AAPL", "MSFT", "BRK.B")]
    for part in parts:
        assert part.seq is not None
        order = np.lexsort((part.seq, part.ts_ns))
        assert (order == np.arange(len(part))).all(), "ticks come back in (time, seq) order"
    assert sorted_rows(TickBatch.concat(parts)) == sorted_rows(batch)


async def test_tick_range_is_half_open_and_limited(tick_store: TickStore) -> None:
    base = DAY0_US
    await tick_store.write(TickBatch.from_ticks([tick("X", base + i * 1_000_000, 10.0 + i) for i in range(10)]))
    got = await tick_store.ticks("X", (base + 2_000_000) * 1000, (base + 5_000_000) * 1000)
    assert got.price.tolist() == [12.0, 13.0, 14.0]
    assert (await tick_store.ticks("X", base * 1000, (base + 10_000_000) * 1000, limit=4)).price.tolist() == [
        10.0,
        11.0,
        12.0,
        13.0,
    ]
    assert len(await tick_store.ticks("Y", base * 1000, (base + 10_000_000) * 1000)) == 0


async def test_time_is_kept_to_the_microsecond(tick_store: TickStore) -> None:
    t = Tick(symbol="X", ts_ns=DAY0_NS + 123_456_789, price=1.5, size=2.0, bid=1.4, ask=1.6)
    await tick_store.write(TickBatch.from_ticks([t]))
    got = await tick_store.ticks("X", DAY0_NS, DAY0_NS + DAY_NS)
    assert got.ts_ns.tolist() == [DAY0_NS + 123_456_000]


async def test_latest_is_the_last_tick_by_time_then_arrival(tick_store: TickStore) -> None:
    base = DAY0_US
    await tick_store.write(TickBatch.from_ticks([tick("A", base + 10, 1.0), tick("B", base + 5, 2.0)]))
    # an older tick arriving later does not replace the latest; one at the same time does (it arrived last)
    await tick_store.write(TickBatch.from_ticks([tick("A", base + 3, 9.0)]))
    await tick_store.write(TickBatch.from_ticks([tick("B", base + 5, 3.0), tick("B", base + 5, 4.0)]))
    latest = await tick_store.latest()
    assert {s: (t.ts_ns, t.price) for s, t in latest.items()} == {
        "A": ((base + 10) * 1000, 1.0),
        "B": ((base + 5) * 1000, 4.0),
    }
    assert set(await tick_store.latest(["B", "Z"])) == {"B"}
    assert latest["A"] == Tick(symbol="A", ts_ns=(base + 10) * 1000, price=1.0, size=100.0, bid=0.99, ask=1.01)


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h", "1d"])
async def test_bars_equal_the_aggregation_of_the_raw_ticks(tick_store: TickStore, interval: str) -> None:
    rng = np.random.default_rng(7)
    batch = random_ticks(rng, ["AAPL", "MSFT"], 4000, start_us=DAY0_US - 3_600_000_000, span_us=2 * 86_400_000_000)
    # several batches, out of order, some touching the same minutes
    for part in np.array_split(rng.permutation(len(batch)), 5):
        await tick_store.write(batch.take(part))
    seconds = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}[interval]
    start, end = DAY0_NS - 2 * DAY_NS, DAY0_NS + 3 * DAY_NS
    raw = await tick_store.ticks("AAPL", start, end)
    expected = reference_bars(raw, "AAPL", seconds)
    got = (await tick_store.bars("AAPL", interval, start, end)).to_bars()
    assert bar_tuples(got) == bar_tuples(expected)
    assert sum(b.trades for b in got) == len(raw)


async def test_bar_range_takes_buckets_starting_inside_it_whole(tick_store: TickStore) -> None:
    base = DAY0_US
    await tick_store.write(
        TickBatch.from_ticks([tick("X", base + m * 60_000_000 + 1, 10.0 + m, size=1.0) for m in range(10)])
    )
    bars = (await tick_store.bars("X", "1m", base * 1000 + 30 * 10**9, (base + 180_000_000) * 1000 + 1)).to_bars()
    assert [(b.start_ns - base * 1000) // MINUTE_NS for b in bars] == [1, 2, 3]
    five = (await tick_store.bars("X", "5m", base * 1000, (base + 600_000_000) * 1000)).to_bars()
    assert [(b.open, b.close, b.volume, b.trades) for b in five] == [(10.0, 14.0, 5.0, 5), (15.0, 19.0, 5.0, 5)]


async def test_vwap_is_turnover_over_volume_and_none_without_volume(tick_store: TickStore) -> None:
    base = DAY0_US
    await tick_store.write(
        TickBatch.from_ticks([tick("X", base, 10.0, 1.0), tick("X", base + 1, 20.0, 3.0), tick("Y", base, 5.0, 0.0)])
    )
    (x,) = (await tick_store.bars("X", "1m", base * 1000, (base + 60_000_000) * 1000)).to_bars()
    assert (x.open, x.high, x.low, x.close, x.volume, x.vwap, x.trades) == (10.0, 20.0, 10.0, 20.0, 4.0, 17.5, 2)
    (y,) = (await tick_store.bars("Y", "1h", base * 1000, (base + 60_000_000) * 1000)).to_bars()
    assert (y.volume, y.vwap, y.trades) == (0.0, None, 1)


async def test_sums_are_exact_whatever_the_batching(tick_store: TickStore) -> None:
    """Float running sums would lose the 1.0s next to 1e16 (its ulp is 2.0); exact sums keep them."""
    base = DAY0_US
    for i, size in enumerate([1e16, 1.0, 1.0]):
        await tick_store.write(TickBatch.from_ticks([tick("X", base + i, 1.0, size)]))
    assert 1e16 + 1.0 + 1.0 == 1e16
    (bar,) = (await tick_store.bars("X", "1m", base * 1000, (base + 60_000_000) * 1000)).to_bars()
    assert bar.volume == 1e16 + 2.0
    (hour,) = (await tick_store.bars("X", "1h", base * 1000, (base + 60_000_000) * 1000)).to_bars()
    assert hour.volume == 1e16 + 2.0


async def test_an_invalid_batch_writes_nothing(tick_store: TickStore) -> None:
    good = tick("X", DAY0_US, 10.0)
    bad = TickBatch.from_columns(["X", "X"], [DAY0_NS, DAY0_NS + 1000], [10.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"tick 1 .*price -1\.0 must be a positive finite number"):
        await tick_store.write(bad)
    await tick_store.write(TickBatch.from_ticks([good]))
    assert await tick_store.count() == 1


async def test_a_file_is_ingested_once_and_a_repeat_writes_nothing(tick_store: TickStore) -> None:
    record = IngestRecord(sha256="ab" * 32, path="data/ticks.csv", kind="ticks", rows=2, rejected=1)
    batch = TickBatch.from_ticks([tick("X", DAY0_US, 10.0), tick("X", DAY0_US + 1, 11.0)])
    assert await tick_store.write(batch, ingest=record) == 2
    repeat = TickBatch.from_ticks([tick("X", DAY0_US + 2, 12.0), tick("NEW", DAY0_US, 1.0)])
    with pytest.raises(AlreadyIngested, match=r"data/ticks\.csv: a file with the same content was already ingested"):
        await tick_store.write(repeat, ingest=record)
    assert await tick_store.count() == 2
    assert await tick_store.symbols() == ["X"]
    assert (await tick_store.latest())["X"].price == 11.0
    (bar,) = (await tick_store.bars("X", "1m", DAY0_NS, DAY0_NS + MINUTE_NS)).to_bars()
    assert bar.trades == 2, "the refused repeat left the bars alone too"
    (done,) = await tick_store.ingested()
    assert (done.sha256, done.path, done.kind, done.rows, done.rejected) == (
        record.sha256,
        "data/ticks.csv",
        "ticks",
        2,
        1,
    )


async def test_imported_bars_round_trip_and_replace(tick_store: TickStore) -> None:
    bars = BarBatch(
        symbols=("SPY",),
        symbol_idx=np.zeros(2, dtype=np.int32),
        start_ns=np.array([DAY0_NS, DAY0_NS + DAY_NS]),
        interval_s=86400,
        open=np.array([470.0, 472.0]),
        high=np.array([475.5, 474.0]),
        low=np.array([469.0, 470.25]),
        close=np.array([472.0, 471.0]),
        volume=np.array([1e6, 2e6]),
        vwap=np.array([472.2, np.nan]),
        trades=np.array([1000, 0]),
    )
    assert await tick_store.write_bars(bars) == 2
    got = (await tick_store.imported_bars("SPY", "1d", DAY0_NS, DAY0_NS + 2 * DAY_NS)).to_bars()
    assert [(b.start_ns, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades) for b in got] == [
        (DAY0_NS, 470.0, 475.5, 469.0, 472.0, 1e6, 472.2, 1000),
        (DAY0_NS + DAY_NS, 472.0, 474.0, 470.25, 471.0, 2e6, None, 0),
    ]
    await tick_store.write_bars(dataclasses.replace(bars.take(np.array([0])), close=np.array([473.0])))
    got = (await tick_store.imported_bars("SPY", "1d", DAY0_NS, DAY0_NS + DAY_NS)).to_bars()
    assert [b.close for b in got] == [473.0]
    assert len(await tick_store.imported_bars("SPY", "1m", DAY0_NS, DAY0_NS + DAY_NS)) == 0


async def test_ticks_before_1970_and_across_days(tick_store: TickStore) -> None:
    ticks = [tick("OLD", -90_000_000_000 + i * 3_600_000_000, 5.0 + i) for i in range(30)]
    await tick_store.write(TickBatch.from_ticks(ticks))
    got = await tick_store.ticks("OLD", -(10**18), 10**18)
    assert got.price.tolist() == [5.0 + i for i in range(30)]
    days = (await tick_store.bars("OLD", "1d", -(10**18), 10**18)).to_bars()
    assert [b.trades for b in days] == [1, 24, 5]
    assert bar_tuples(days) == bar_tuples(reference_bars(got, "OLD", 86400))


async def test_both_stores_give_identical_bars(tmp_path: Path, pg_pool: Any) -> None:
    rng = np.random.default_rng(11)
    batch = random_ticks(rng, ["A", "B"], 2000, span_us=3 * 86_400_000_000)
    lite = await SqliteTickStore.open(tmp_path / "t.db")
    pg = await PostgresTickStore.open(pg_pool)
    try:
        for part in np.array_split(np.arange(len(batch)), 3):
            await lite.write(batch.take(part))
            await pg.write(batch.take(part))
        for interval in ("1m", "5m", "15m", "1h", "1d"):
            for symbol in ("A", "B"):
                a = (await lite.bars(symbol, interval, 0, 2 * 10**18)).to_bars()
                b = (await pg.bars(symbol, interval, 0, 2 * 10**18)).to_bars()
                assert a
                assert bar_tuples(a) == bar_tuples(b)
    finally:
        await lite.close()
        await pg.close()


async def test_a_checkpoint_is_saved_with_its_ticks_or_not_at_all(tick_store: TickStore) -> None:
    assert await tick_store.checkpoint("ticks", "g") is None
    await tick_store.write(TickBatch.from_ticks([tick("X", DAY0_US, 1.0)]), checkpoint=Checkpoint("ticks", "g", "5-0"))
    assert await tick_store.checkpoint("ticks", "g") == "5-0"
    record = IngestRecord(sha256="cd" * 32, path="f.csv", kind="ticks", rows=1)
    await tick_store.write(TickBatch.empty(), ingest=record)
    with pytest.raises(AlreadyIngested):
        await tick_store.write(
            TickBatch.from_ticks([tick("X", DAY0_US + 1, 1.0)]),
            ingest=record,
            checkpoint=Checkpoint("ticks", "g", "9-0"),
        )
    assert await tick_store.checkpoint("ticks", "g") == "5-0"
    assert await tick_store.checkpoint("ticks", "other") is None
    assert entry_key("1700000000000-12") > entry_key("1700000000000-9") > entry_key("999-0")
