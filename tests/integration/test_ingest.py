"""File ingest into both stores: a bad file writes nothing; skipped rows land in a reject file; once per file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tradepulse.marketdata.ingest import AlreadyIngested, IngestError, ingest_file
from tradepulse.marketdata.validation import LoadOptions
from tradepulse.storage.ticks import TickStore

GOOD = (
    "time,symbol,price,size\n"
    "2024-01-02T09:30:00Z,AAPL,185.5,100\n"
    "2024-01-02T09:30:01Z,AAPL,185.6,200\n"
    "2024-01-02T09:30:00Z,MSFT,375.0,10\n"
)
BAD = GOOD + "2024-01-02T09:30:02Z,AAPL,-1,100\n2024-01-02T09:30:03Z,AAPL,185.7\n2024-01-02T09:30:01Z,AAPL,185.8,1\n"
DAY = 1_704_153_600_000_000_000


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def test_a_good_file_is_written_whole(tick_store: TickStore, tmp_path: Path) -> None:
    report = await ingest_file(write(tmp_path, "good.csv", GOOD), tick_store)
    assert (report.rows, report.written, report.rejected, report.reject_file) == (3, 3, 0, None)
    assert await tick_store.count() == 3
    (bar,) = (await tick_store.bars("AAPL", "1m", DAY, DAY + 86_400 * 10**9)).to_bars()
    assert (bar.open, bar.close, bar.volume, bar.trades) == (185.5, 185.6, 300.0, 2)


async def test_a_bad_file_is_refused_whole_naming_every_problem(tick_store: TickStore, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", BAD)
    with pytest.raises(IngestError) as info:
        await ingest_file(path, tick_store)
    assert [str(e) for e in info.value.errors] == [
        f'{path}:5: column "price": value "-1" must be greater than 0',
        f"{path}:6: expected 4 fields (as in the header), found 3",
        f'{path}:7: column "time": value "2024-01-02T09:30:01Z" repeats the time of line 3 for AAPL '
        "(a duplicate timestamp)",
    ]
    assert str(info.value).startswith(f"{path}: 3 problem(s), nothing written; first: {path}:5:")
    assert await tick_store.count() == 0
    assert await tick_store.ingested() == []
    assert not (tmp_path / "bad.csv.rejects.csv").exists()


async def test_skipping_writes_the_good_rows_and_a_reject_file(tick_store: TickStore, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", BAD)
    report = await ingest_file(path, tick_store, policy="skip")
    assert (report.rows, report.written, report.rejected) == (6, 3, 3)
    assert report.reject_file == tmp_path / "bad.csv.rejects.csv"
    rows = list(csv.reader(report.reject_file.read_text().splitlines()))
    assert rows == [
        ["time", "symbol", "price", "size", "_line", "_errors", "_raw"],
        ["2024-01-02T09:30:02Z", "AAPL", "-1", "100", "5", 'price="-1" must be greater than 0', ""],
        ["", "", "", "", "6", "expected 4 fields (as in the header), found 3", "2024-01-02T09:30:03Z,AAPL,185.7"],
        [
            "2024-01-02T09:30:01Z",
            "AAPL",
            "185.8",
            "1",
            "7",
            'time="2024-01-02T09:30:01Z" repeats the time of line 3 for AAPL (a duplicate timestamp)',
            "",
        ],
    ]
    assert await tick_store.count() == 3
    (done,) = await tick_store.ingested()
    assert (done.path, done.rows, done.rejected) == (str(path), 3, 3)


async def test_the_same_content_is_ingested_once(tick_store: TickStore, tmp_path: Path) -> None:
    await ingest_file(write(tmp_path, "a.csv", GOOD), tick_store)
    with pytest.raises(AlreadyIngested):
        await ingest_file(write(tmp_path, "copy.csv", GOOD), tick_store)
    assert await tick_store.count() == 3
    await ingest_file(tmp_path / "copy.csv", tick_store, record=False)
    assert await tick_store.count() == 6


async def test_bars_files_go_to_imported_bars(tick_store: TickStore, tmp_path: Path) -> None:
    path = write(tmp_path, "SPY.csv", "date,open,high,low,close,volume\n2024-01-02,10,11,9,10.5,1000\n")
    report = await ingest_file(path, tick_store, LoadOptions(kind="bars", interval="1d"))
    assert report.written == 1
    (bar,) = (await tick_store.imported_bars("SPY", "1d", DAY, DAY + 86_400 * 10**9)).to_bars()
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap) == (10.0, 11.0, 9.0, 10.5, 1000.0, None)
    assert await tick_store.count() == 0
