"""``tradepulse data ...`` end to end: simulate, ingest, bars, latest, replay; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from tradepulse.bus.codec import DEFAULT_CODEC
from tradepulse.bus.redis_streams import FIELD
from tradepulse.cli import app
from tradepulse.domain import Tick

runner = CliRunner()
START = "2024-01-02T14:30:00Z"


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"TRADEPULSE_DATABASE_BACKEND": "sqlite", "TRADEPULSE_DATABASE_SQLITE_PATH": str(tmp_path / "t.db")}


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    result = runner.invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_simulate_to_a_file_then_ingest_and_query(tmp_path: Path, sqlite_env: dict[str, str], suffix: str) -> None:
    path = tmp_path / f"sim.{suffix}"
    code, out, _ = invoke(
        ["data", "simulate", "--to", str(path), "--seconds", "120", "--symbols", "A,B", "--start", START], sqlite_env
    )
    assert code == 0, out
    assert f"4,800 ticks of 2 symbols to {path}" in out  # 120 s x 20 ticks/s x 2 symbols
    code, out, _ = invoke(["data", "ingest", str(path)], sqlite_env)
    assert code == 0, out
    assert f"{path}: 4,800 ticks written of 4,800 rows" in out
    code, out, _ = invoke(["data", "bars", "A", "--interval", "1m", "--start", START, "-f", "csv"], sqlite_env)
    assert code == 0, out
    rows = list(csv.DictReader(out.splitlines()))
    assert [r["start"] for r in rows] == ["2024-01-02T14:30:00Z", "2024-01-02T14:31:00Z"]
    assert [int(r["trades"]) for r in rows] == [1200, 1200]
    code, out, _ = invoke(["data", "bars", "A", "--interval", "1h", "--start", "2024-01-02", "-f", "json"], sqlite_env)
    (hour,) = json.loads(out)
    assert (hour["start"], hour["trades"]) == ("2024-01-02T14:00:00Z", 2400)
    assert hour["low"] <= hour["vwap"] <= hour["high"]
    code, out, _ = invoke(["data", "latest", "-f", "json"], sqlite_env)
    assert [r["symbol"] for r in json.loads(out)] == ["A", "B"]
    assert json.loads(out)[0]["time"] == "2024-01-02T14:31:59.95Z"


def test_simulate_into_the_store_n_samples(sqlite_env: dict[str, str]) -> None:
    code, out, _ = invoke(["data", "simulate", "--count", "1000", "--symbols", "X,Y,Z", "--start", START], sqlite_env)
    assert code == 0, out
    assert "1,002 ticks of 3 symbols to the sqlite tick store" in out  # whole steps: 334 x 3
    code, out, _ = invoke(["data", "bars", "X", "--start", START, "-f", "json"], sqlite_env)
    assert sum(b["trades"] for b in json.loads(out)) == 334


def test_a_bad_file_is_refused_with_its_errors_and_nothing_is_written(
    tmp_path: Path, sqlite_env: dict[str, str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,symbol,price,size\n2024-01-02T14:30:00Z,A,1,1\n2024-01-02T14:30:01Z,A,x,1\n")
    code, out, errors = invoke(["data", "ingest", str(path)], sqlite_env)
    assert code == 1
    assert errors.splitlines() == [
        f"{path}: refused, nothing written (1 problem(s)):",
        f'  {path}:3: column "price": value "x" is not a number',
        "Fix them, or ingest the good rows with --on-error skip.",
    ]
    code, out, _ = invoke(["data", "latest", "-f", "json"], sqlite_env)
    assert json.loads(out) == []
    code, out, _ = invoke(["data", "ingest", str(path), "--on-error", "skip"], sqlite_env)
    assert code == 0
    assert f"1 rejected, see {path}.rejects.csv" in out


def test_bad_options_are_named(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    assert "--interval must be one of 1m, 5m, 15m, 1h, 1d, not '2m'" in invoke(
        ["data", "bars", "A", "--interval", "2m"], sqlite_env
    )[2].replace("\n", " ")
    assert "--start: 'soon' is not a time" in invoke(["data", "bars", "A", "--start", "soon"], sqlite_env)[2]
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    code, _, errors = invoke(["data", "ingest", str(path), "--map", "price"], sqlite_env)
    assert code == 2
    assert "--map 'price': expected FIELD=COLUMN" in errors


def test_imported_bars(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    path = tmp_path / "SPY.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,470,475,469,472,1000000\n")
    code, out, _ = invoke(["data", "ingest", str(path), "--kind", "bars", "--interval", "1d"], sqlite_env)
    assert code == 0, out
    code, out, _ = invoke(
        ["data", "bars", "SPY", "--interval", "1d", "--source", "imported", "--start", "2024-01-01", "-f", "json"],
        sqlite_env,
    )
    assert json.loads(out) == [
        {
            "symbol": "SPY",
            "start": "2024-01-02T00:00:00Z",
            "open": 470.0,
            "high": 475.0,
            "low": 469.0,
            "close": 472.0,
            "volume": 1000000.0,
            "vwap": None,
            "trades": 0,
        }
    ]


def test_ingest_into_postgres(tmp_path: Path, pg_database: str) -> None:
    env = {"TRADEPULSE_DATABASE_BACKEND": "postgres", "TRADEPULSE_DATABASE_URL": pg_database}
    symbol = f"P{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{symbol}.csv"
    path.write_text("time,price,size\n2024-01-02T14:30:00Z,10,1\n2024-01-02T14:30:30Z,12,3\n")
    code, out, _ = invoke(["data", "ingest", str(path)], env)
    assert code == 0, out
    assert "(postgres)" in out
    code, out, _ = invoke(["data", "bars", symbol, "--start", START, "-f", "json"], env)
    (bar,) = json.loads(out)
    assert (bar["open"], bar["close"], bar["volume"], bar["vwap"], bar["trades"]) == (10.0, 12.0, 4.0, 11.5, 2)


def test_simulate_and_replay_onto_the_bus(tmp_path: Path, redis_url: str) -> None:
    stream = f"test:ticks:{uuid.uuid4().hex[:8]}"
    env = {"TRADEPULSE_REDIS_URL": redis_url}
    client = redis.Redis.from_url(redis_url)
    try:
        code, out, _ = invoke(["data", "simulate", "--to", "bus", "--stream", stream, "--count", "100"], env)
        assert code == 0, out
        assert client.xlen(stream) == 100
        path = tmp_path / "R.csv"
        path.write_text("time,price,size\n2024-01-02T14:30:00Z,10,1\n2024-01-02T14:30:00.002Z,11,1\n")
        code, out, errors = invoke(["data", "replay", str(path), "--stream", stream, "--speed", "1"], env)
        assert code == 0, out + errors
        entries = client.xrange(stream, count=200)
        assert len(entries) == 102
        last = DEFAULT_CODEC.decode(entries[-1][1][FIELD.encode() if isinstance(FIELD, str) else FIELD])
        assert isinstance(last, Tick)
        assert (last.symbol, last.price) == ("R", 11.0)
    finally:
        client.delete(stream)
        client.close()


def test_the_embedded_runtime_stores_the_ticks_it_publishes(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    env = {**sqlite_env, "TRADEPULSE_MARKET_TICK_RATE": "50", "TRADEPULSE_SIGNALS_ENABLED": "false"}
    result = runner.invoke(app, ["run", "--duration", "1.5", "--no-panel"], env=env)
    assert result.exit_code == 0, result.output
    assert "ticks stored" in result.stdout
    code, out, _ = invoke(["data", "latest", "-f", "json"], sqlite_env)
    assert code == 0
    assert {r["symbol"] for r in json.loads(out)} == {"AAPL", "MSFT", "GOOG", "AMZN", "NVDA"}
