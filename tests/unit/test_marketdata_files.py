"""Reading and validating market data files: every bad value is named by file, line, column, value and reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tradepulse.marketdata.files import FileFormatError
from tradepulse.marketdata.validation import LoadOptions, validate_file


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def messages(path: Path, options: LoadOptions | None = None) -> list[str]:
    return [str(e) for e in validate_file(path, options).errors]


def utc_ns(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def test_a_clean_tick_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        "time,symbol,price,size,bid,ask\n"
        "2024-01-02T09:30:00Z,AAPL,185.5,100,185.49,185.51\n"
        "2024-01-02T09:30:00.000001Z,MSFT,375,5,,\n",
    )
    v = validate_file(path)
    assert v.errors == []
    assert v.ticks is not None
    ticks = v.ticks.to_ticks()
    assert [(t.symbol, t.ts_ns, t.price, t.size, t.bid, t.ask) for t in ticks] == [
        ("AAPL", utc_ns(2024, 1, 2, 9, 30), 185.5, 100.0, 185.49, 185.51),
        ("MSFT", utc_ns(2024, 1, 2, 9, 30) + 1000, 375.0, 5.0, 375.0, 375.0),  # no quote: bid = ask = price
    ]


def test_every_kind_of_bad_tick_is_named_precisely(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ticks.csv",
        "time,symbol,price,size,bid,ask\n"
        "2024-01-02T09:30:00Z,AAPL,185.5,100,185.49,185.51\n"
        "2024-01-02T09:30:01Z,AAPL,abc,100,185.49,185.51\n"
        "2024-01-02T09:30:02Z,AAPL,-1,100,185.49,185.51\n"
        "2024-01-02T09:30:03Z,AAPL,185.6,-5,185.49,185.51\n"
        "2024-01-02T09:30:04Z,AAPL,185.6,5,185.52,185.51\n"
        "2024-01-02T09:30:05Z,AAPL,inf,5,185.5,185.51\n"
        "2024-01-02T09:30:06Z,AAPL,,5,185.5,185.51\n"
        "2024-01-02T09:30:07Z,AAPL,185.6,5,185.5,185.51\n"
        "2024-01-02T09:30:07Z,AAPL,185.7,5,185.5,185.51\n"
        "2024-01-02T09:29:59Z,AAPL,185.7,5,185.5,185.51\n"
        "2024-01-02T09:29:59Z,MSFT,375,5,,\n"
        "yesterday,MSFT,375,5,,\n"
        "2024-01-02T09:30:08Z,MS FT,375,5,,\n",
    )
    assert messages(path) == [
        f'{path}:3: column "price": value "abc" is not a number',
        f'{path}:4: column "price": value "-1" must be greater than 0',
        f'{path}:5: column "size": value "-5" must not be negative',
        f'{path}:6: column "bid": value "185.52" is above the ask 185.51 (a crossed quote)',
        f'{path}:7: column "price": value "inf" is not a finite number',
        f'{path}:8: column "price": value "" is missing',
        f'{path}:10: column "time": value "2024-01-02T09:30:07Z" repeats the time of line 9 for AAPL '
        "(a duplicate timestamp)",
        f'{path}:11: column "time": value "2024-01-02T09:29:59Z" is before 2024-01-02T09:30:07Z at line 9 for AAPL '
        "(rows must be sorted by time)",
        f'{path}:13: column "time": value "yesterday" is not a time (expected ISO 8601 such as '
        "2024-01-02T09:30:00Z, or a Unix epoch number)",
        f'{path}:14: column "symbol": value "MS FT" is not a symbol (1-32 characters, no spaces, quotes or commas)',
    ]
    v = validate_file(path)
    assert v.ticks is not None
    assert [int(v.table.origin[i]) for i in v.good] == [2, 9, 12]  # MSFT's own order is independent of AAPL's
    assert v.rejected == 10


def test_every_kind_of_bad_bar_is_named_precisely(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "SPY.csv",
        "date,open,high,low,close,volume,vwap,trades\n"
        "2024-01-02,10,11,9,10.5,1000,10.2,50\n"
        "2024-01-03,10,9,11,10.5,1000,,\n"
        "2024-01-04,12,11,9,10.5,1000,,\n"
        "2024-01-05,10,11,9,8.5,1000,,\n"
        "2024-01-06,10,11,9,10.5,-3,,\n"
        "2024-01-07,10,11,9,10.5,3,12,\n"
        "2024-01-08,10,11,9,10.5,3,,2.5\n"
        "2024-01-09,0,11,9,10.5,3,,\n",
    )
    assert messages(path, LoadOptions(kind="bars")) == [
        f'{path}:3: column "high": value "9" is below the low 11',
        f'{path}:4: column "open": value "12" is outside [low 9, high 11]',
        f'{path}:5: column "close": value "8.5" is outside [low 9, high 11]',
        f'{path}:6: column "volume": value "-3" must not be negative',
        f'{path}:7: column "vwap": value "12" is outside [low 9, high 11]',
        f'{path}:8: column "trades": value "2.5" must be a whole number, not negative',
        f'{path}:9: column "open": value "0" must be greater than 0',
    ]
    v = validate_file(path, LoadOptions(kind="bars", interval="1d"))
    assert v.bars is not None
    (bar,) = v.bars.to_bars()
    assert (bar.symbol, bar.start_ns, bar.interval_s, bar.open, bar.high, bar.low, bar.close) == (
        "SPY",
        utc_ns(2024, 1, 2),
        86400,
        10.0,
        11.0,
        9.0,
        10.5,
    )
    assert (bar.volume, bar.vwap, bar.trades) == (1000.0, 10.2, 50)


def test_malformed_rows_blank_lines_and_quoted_newlines_keep_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "X.csv",
        'time,price,size,note\n1704187800,1,1,"two\nlines"\n\n1704187801,1,1\n1704187802,-1,1,ok\n',
    )
    assert messages(path, LoadOptions(kind="ticks")) == [
        f"{path}:5: expected 4 fields (as in the header), found 3",
        f'{path}:6: column "price": value "-1" must be greater than 0',
    ]
    blank = write(tmp_path, "Y.csv", "time,price,size\n\n1704187800,1,1\n\n1704187801,x,1\n")
    assert messages(blank) == [f'{blank}:5: column "price": value "x" is not a number']


def test_a_far_future_typo_is_named_by_the_row_after_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Z.csv",
        "time,price,size\n2024-01-02T09:30:00Z,1,1\n2099-01-02T09:30:01Z,1,1\n2024-01-02T09:30:02Z,1,1\n",
    )
    assert messages(path) == [
        f'{path}:4: column "time": value "2024-01-02T09:30:02Z" is before 2099-01-02T09:30:01Z at line 3 for Z '
        "(rows must be sorted by time)"
    ]


def test_columns_by_alias_by_mapping_or_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "Q.csv", "Timestamp,Ticker,Last,Qty,px2\n1704187800,AAPL,1.5,10,2.5\n")
    v = validate_file(path)
    assert v.ticks is not None
    assert (v.ticks.symbols, v.ticks.price.tolist(), v.ticks.size.tolist()) == (("AAPL",), [1.5], [10.0])
    mapped = validate_file(path, LoadOptions(columns={"price": "PX2"}))
    assert mapped.ticks is not None
    assert mapped.ticks.price.tolist() == [2.5]
    with pytest.raises(FileFormatError, match='no column "nope" \\(mapped to price\\)'):
        validate_file(path, LoadOptions(columns={"price": "nope"}))
    bare = write(tmp_path, "R.csv", "when,price\n1,2\n")
    with pytest.raises(FileFormatError) as info:
        validate_file(bare)
    assert str(info.value) == (
        f"{bare}: no column for time, size (time: one of time, timestamp, ts, datetime, date, ts_event, t; "
        "size: one of size, qty, quantity, volume, amount, trade_size); map one with --map FIELD=COLUMN "
        "(the columns are when, price)"
    )


def test_the_symbol_comes_from_an_option_a_column_or_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "BRK.B.csv", "time,price,size\n1704187800,1,1\n")
    v = validate_file(path)
    assert v.ticks is not None
    assert v.ticks.symbols == ("BRK",)
    v = validate_file(path, LoadOptions(symbol="BRK.B"))
    assert v.ticks is not None
    assert v.ticks.symbols == ("BRK.B",)
    odd = write(tmp_path, "my ticks.csv", "time,price,size\n1704187800,1,1\n")
    with pytest.raises(FileFormatError, match="no symbol column, and the file name 'my ticks' is not a symbol"):
        validate_file(odd)


def test_times_epochs_offsets_and_local_zones(tmp_path: Path) -> None:
    t0 = utc_ns(2024, 1, 2, 14, 30)
    for text in ("1704205800", "1704205800000", "1704205800000000", "1704205800000000000", "1704205800.0"):
        path = write(tmp_path, "E.csv", f"time,price,size\n{text},1,1\n")
        v = validate_file(path)
        assert v.ticks is not None
        assert v.ticks.ts_ns.tolist() == [t0], text
    ny = write(
        tmp_path,
        "N.csv",
        "time,price,size\n2024-01-02 09:30:00,1,1\n2024-01-02T09:30:00.000000123-05:00,1,1\n2024-01-03,1,1\n",
    )
    v = validate_file(ny, LoadOptions(tz="America/New_York"))
    assert v.ticks is not None
    assert v.ticks.ts_ns.tolist() == [t0, t0 + 123, utc_ns(2024, 1, 3, 5)]
    dst = write(tmp_path, "D.csv", "time,price,size\n2024-03-10 02:30:00,1,1\n2024-11-03 01:30:00,1,1\n")
    assert messages(dst, LoadOptions(tz="America/New_York")) == [
        f'{dst}:2: column "time": value "2024-03-10 02:30:00" does not exist in America/New_York '
        "(a daylight-saving change skips it)",
        f'{dst}:3: column "time": value "2024-11-03 01:30:00" is ambiguous in America/New_York '
        "(a daylight-saving change repeats it): give an offset",
    ]
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        validate_file(dst, LoadOptions(tz="Mars/Base"))


def test_parquet_files_are_typed_and_name_rows(tmp_path: Path) -> None:
    path = tmp_path / "ticks.parquet"
    t0 = utc_ns(2024, 1, 2, 14, 30)
    table = pa.table(
        {
            "time": pa.array([t0, t0 + 1, t0 + 2], type=pa.timestamp("ns", tz="UTC")),
            "symbol": ["A", "A", None],
            "price": pa.array([1.0, None, 2.0]),
            "size": pa.array([1, 2, 3], type=pa.int32()),
        }
    )
    pq.write_table(table, path)
    v = validate_file(path)
    assert [str(e) for e in v.errors] == [
        f'{path}: row 2: column "price": value "" is missing',
        f'{path}: row 3: column "symbol": value "" is missing',
    ]
    assert v.ticks is not None
    assert v.ticks.ts_ns.tolist() == [t0]
    local = tmp_path / "local.parquet"
    pq.write_table(
        pa.table(
            {
                "time": pa.array([np.datetime64("2024-01-02T09:30:00", "us")], type=pa.timestamp("us")),
                "price": [1.5],
                "size": [1.0],
            }
        ),
        local,
    )
    v = validate_file(local, LoadOptions(symbol="X", tz="America/New_York"))
    assert v.ticks is not None
    assert v.ticks.ts_ns.tolist() == [t0]


def test_files_that_cannot_be_used_at_all(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="unknown file type"):
        validate_file(write(tmp_path, "x.txt", "a"))
    with pytest.raises(FileFormatError, match="the file is empty"):
        validate_file(write(tmp_path, "E.csv", ""))
    with pytest.raises(FileFormatError, match='column "Price" appears twice in the header'):
        validate_file(write(tmp_path, "D.csv", "time,price,Price,size\n1,1,1,1\n"))
    binary = tmp_path / "B.csv"
    binary.write_bytes(b"time,price,size\n1,\xff\xfe,1\n")
    with pytest.raises(FileFormatError, match="not UTF-8 text"):
        validate_file(binary)
