"""Signals, market data, models and risk routes over the real Redis bus and PostgreSQL stores."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.integration.api.conftest import MakeKey
from tradepulse.api.auth import Scope
from tradepulse.api.services import Services
from tradepulse.bus.streams import SIGNALS
from tradepulse.config import load_settings
from tradepulse.domain import Signal, SignalAction, Tick
from tradepulse.domain.batch import TickBatch
from tradepulse.ml.registry import ModelRegistry

MINUTE_NS = 60 * 1_000_000_000


def _symbol() -> str:
    return f"T{uuid.uuid4().hex[:8].upper()}"


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def _signal(symbol: str, action: SignalAction, ts_ns: int, price: str = "101.25") -> Signal:
    return Signal(
        symbol=symbol,
        action=action,
        confidence=0.75,
        model_version="v0001",
        ts_ns=ts_ns,
        price=Decimal(price),
        probabilities=(0.1, 0.15, 0.75),
    )


async def test_latest_signals_follow_the_stream_and_invalidate_the_cache(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services
) -> None:
    token = await make_key(Scope.READ)
    headers = {"X-API-Key": token}
    a, b = _symbol(), _symbol()
    board = api_services.signals
    await api_services.bus.publish_many(
        SIGNALS, [_signal(a, SignalAction.BUY, 1_000), _signal(b, SignalAction.SELL, 2_000)]
    )
    await _until(lambda: a in board.latest and b in board.latest)

    first = await app_client.get("/api/signals", headers=headers)
    assert first.status_code == 200
    mine = {s["symbol"]: s for s in first.json()["signals"] if s["symbol"] in (a, b)}
    assert mine[a] == {
        "symbol": a,
        "action": "BUY",
        "confidence": 0.75,
        "model_version": "v0001",
        "ts_ns": 1_000,
        "price": "101.25",
        "probabilities": [0.1, 0.15, 0.75],
    }
    assert mine[b]["action"] == "SELL"
    # the encoded body is cached: the same bytes object until something changes
    assert board.latest_json() is board.latest_json()
    cached = board.latest_json()
    # a new signal invalidates the cache at once (not after signals_cache_s)
    await api_services.bus.publish(SIGNALS, _signal(a, SignalAction.HOLD, 3_000, "99.5"))
    await _until(lambda: board.latest[a].ts_ns == 3_000)
    assert board.latest_json() is not cached
    second = await app_client.get("/api/v1/signals", headers=headers)
    latest_a = next(s for s in second.json()["signals"] if s["symbol"] == a)
    assert (latest_a["action"], latest_a["price"], latest_a["ts_ns"]) == ("HOLD", "99.5", 3_000)

    history = await app_client.get(f"/api/v1/signals/{a}/history?limit=10", headers=headers)
    assert [s["ts_ns"] for s in history.json()["signals"]] == [3_000, 1_000]
    one = await app_client.get(f"/api/v1/signals/{a}/history?limit=1", headers=headers)
    assert [s["ts_ns"] for s in one.json()["signals"]] == [3_000]
    empty = await app_client.get(f"/api/v1/signals/{_symbol()}/history", headers=headers)
    assert empty.json() == {"signals": []}


async def test_a_new_worker_backfills_recent_signals(api_services: Services, api_settings: object) -> None:
    from tradepulse.api.signal_board import SignalBoard

    sym = _symbol()
    await api_services.bus.publish_many(SIGNALS, [_signal(sym, SignalAction.BUY, t) for t in (10, 20, 30)])
    board = SignalBoard(api_services.bus, history=5, backfill=1_000)
    await board.start()
    try:
        assert board.latest[sym].ts_ns == 30
        assert [s.ts_ns for s in board.recent(sym, 5)] == [30, 20, 10]
    finally:
        await board.close()


def _ticks(symbol: str, start_ns: int, n: int) -> TickBatch:
    return TickBatch.from_ticks(
        [
            Tick(
                symbol=symbol,
                ts_ns=start_ns + i * 1_000_000_000,
                price=100.0 + i,
                size=10.0,
                bid=99.5 + i,
                ask=100.5 + i,
                bid_size=5.0,
                ask_size=6.0,
            )
            for i in range(n)
        ]
    )


async def test_market_quote_ticks_and_bars(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services
) -> None:
    headers = {"X-API-Key": await make_key(Scope.READ)}
    sym = _symbol()
    t0 = (time.time_ns() // MINUTE_NS - 10) * MINUTE_NS  # a minute boundary, 10 minutes ago
    await api_services.ticks.write(_ticks(sym, t0, 90))  # 90 ticks, one per second: minutes 0 (60) and 1 (30)

    q = await app_client.get(f"/api/v1/market/{sym}/quote", headers=headers)
    assert q.status_code == 200
    assert q.json() == {
        "symbol": sym,
        "ts_ns": t0 + 89 * 1_000_000_000,
        "price": 189.0,
        "size": 10.0,
        "bid": 188.5,
        "ask": 189.5,
        "bid_size": 5.0,
        "ask_size": 6.0,
    }
    quotes = await app_client.get("/api/v1/market/quotes", headers=headers)
    assert any(x["symbol"] == sym for x in quotes.json()["quotes"])
    missing = await app_client.get(f"/api/v1/market/{_symbol()}/quote", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    r = await app_client.get(
        f"/api/v1/market/{sym}/ticks",
        params={"start_ns": t0 + 5 * 1_000_000_000, "end_ns": t0 + 50 * 1_000_000_000, "limit": 3},
        headers=headers,
    )
    assert r.status_code == 200
    body = r.json()
    assert [t["ts_ns"] for t in body["ticks"]] == [t0 + s * 1_000_000_000 for s in (5, 6, 7)]
    assert body["ticks"][0]["price"] == 105.0
    default_range = await app_client.get(f"/api/v1/market/{sym}/ticks", headers=headers)
    assert len(default_range.json()["ticks"]) == 90
    backwards = await app_client.get(
        f"/api/v1/market/{sym}/ticks", params={"start_ns": t0 + 10, "end_ns": t0}, headers=headers
    )
    assert backwards.status_code == 200  # [start, end) with start >= end is empty
    assert backwards.json()["ticks"] == []

    bars = await app_client.get(
        f"/api/v1/market/{sym}/bars",
        params={"interval": "1m", "start_ns": t0, "end_ns": t0 + 2 * MINUTE_NS},
        headers=headers,
    )
    assert bars.status_code == 200
    got = bars.json()
    assert got["interval"] == "1m"
    assert [
        (b["start_ns"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["trades"]) for b in got["bars"]
    ] == [
        (t0, 100.0, 159.0, 100.0, 159.0, 600.0, 60),
        (t0 + MINUTE_NS, 160.0, 189.0, 160.0, 189.0, 300.0, 30),
    ]
    last = await app_client.get(
        f"/api/v1/market/{sym}/bars", params={"interval": "1m", "start_ns": 0, "limit": 1}, headers=headers
    )
    assert [b["start_ns"] for b in last.json()["bars"]] == [t0 + MINUTE_NS]
    bad_interval = await app_client.get(f"/api/v1/market/{sym}/bars", params={"interval": "2m"}, headers=headers)
    assert bad_interval.status_code == 422
    assert bad_interval.json()["error"]["field"] == "query.interval"


@pytest.fixture(scope="module")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tradepulse.ml.trainer import run_training

    root = tmp_path_factory.mktemp("models")
    settings = load_settings(env={}, overrides={"ml.registry_dir": str(root)})
    run_training(settings, kind="xgboost", samples=1_500, params={"n_estimators": 20})
    return root


async def test_models_promoted_and_by_version(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services, trained_registry: Path
) -> None:
    headers = {"X-API-Key": await make_key(Scope.READ)}
    none = await app_client.get("/api/v1/models/promoted", headers=headers)
    assert none.status_code == 404
    assert (await app_client.get("/api/v1/models", headers=headers)).json() == {"promoted": None, "models": []}

    api_services.registry = ModelRegistry(trained_registry)
    listing = (await app_client.get("/api/v1/models", headers=headers)).json()
    assert listing["promoted"] == "v0001"
    assert [(m["version"], m["kind"], m["promoted"]) for m in listing["models"]] == [("v0001", "xgboost", True)]
    promoted = (await app_client.get("/api/v1/models/promoted", headers=headers)).json()
    meta = api_services.registry.get("v0001").meta
    assert promoted["version"] == "v0001"
    assert promoted["metrics"]["walk_forward"]["accuracy"] == meta["metrics"]["walk_forward"]["accuracy"]
    assert promoted["params"] == meta["params"]
    assert (await app_client.get("/api/v1/models/v0001", headers=headers)).json() == promoted
    assert (await app_client.get("/api/v1/models/v0009", headers=headers)).status_code == 404
    assert (await app_client.get("/api/v1/models/..%2Fetc", headers=headers)).status_code in (404, 422)


async def test_risk_limits_and_kill_switch(
    app_client: httpx.AsyncClient, make_key: MakeKey, api_services: Services
) -> None:
    read = {"X-API-Key": await make_key(Scope.READ)}
    admin_token = await make_key(Scope.ADMIN, name="ops")
    admin = {"X-API-Key": admin_token}
    limits = (await app_client.get("/api/v1/risk/limits", headers=read)).json()
    risk = api_services.settings.risk
    assert limits["max_order_notional"] == str(risk.max_order_notional)
    assert limits["accounts"] == list(risk.accounts)

    state = (await app_client.get("/api/v1/risk/state", headers=read)).json()
    assert state["state"] == "ACTIVE"
    r = await app_client.put("/api/v1/risk/state", json={"state": "HALTED", "reason": "drill"}, headers=admin)
    assert r.status_code == 200
    key_id = admin_token.split("_")[1]
    assert r.json()["state"] == "HALTED"
    assert r.json()["changed_by"] == f"api:ops ({key_id})"
    row = await api_services.ledger.trading_state()
    assert (row.state, row.reason) == ("HALTED", "drill")
    assert (await app_client.get("/api/v1/risk/state", headers=read)).json()["state"] == "HALTED"
    back = await app_client.put("/api/v1/risk/state", json={"state": "ACTIVE", "reason": "done"}, headers=admin)
    assert back.json()["state"] == "ACTIVE"


async def test_options_lists_every_method_of_the_path(app_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    token = await make_key(Scope.ADMIN)
    # GET and PUT come from two handlers on one path; Litestar's OPTIONS handler knew only the first
    r = await app_client.options("/api/v1/risk/state", headers={"X-API-Key": token})
    assert r.status_code == 204
    assert r.headers["allow"] == "GET, OPTIONS, PUT"
    r = await app_client.options("/api/v1/orders", headers={"X-API-Key": token})
    assert r.headers["allow"] == "GET, OPTIONS, POST"
