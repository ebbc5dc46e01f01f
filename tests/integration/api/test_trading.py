"""Orders, fills, positions, account and rebalance routes over the app, with a real engine behind them."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.api.trading_fixtures import TradingApi, trading_api, wait_marks
from tradepulse.api.auth import Scope
from tradepulse.portfolio.ledger import verify

__all__ = ["trading_api"]
D = Decimal


def order_body(coid: str, qty: str = "10", **kw: Any) -> dict[str, Any]:
    return {"client_order_id": coid, "symbol": "AAA", "side": "BUY", "quantity": qty, **kw}


async def ledger_orders(api: TradingApi) -> list[str]:
    return [r.order.client_order_id for r in await api.services.ledger.orders()]


async def test_scopes_are_enforced(trading_api: TradingApi) -> None:
    api = trading_api
    assert (await api.http.post("/api/v1/orders", json=order_body("s-1"))).status_code == 401
    read = await api.key(Scope.READ)
    r = await api.http.post("/api/v1/orders", json=order_body("s-1"), headers=read)
    assert r.status_code == 403
    assert (await api.http.get("/api/v1/orders", headers=read)).status_code == 200
    r = await api.http.post("/api/v1/rebalance/execute", json={"targets": {}, "rebalance_id": "x"}, headers=read)
    assert r.status_code == 403
    assert await ledger_orders(api) == []


async def test_submit_twice_is_one_execution_and_other_accounts_see_nothing(trading_api: TradingApi) -> None:
    api = trading_api
    a, b = await api.key(Scope.TRADE), await api.key(Scope.TRADE, account="acct-b")
    first = await api.http.post("/api/v1/orders", json=order_body("i-1"), headers=a)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["outcome"] == "created"
    assert body["order"]["status"] == "FILLED"
    assert body["order"]["filled_quantity"] == "10"
    assert body["order"]["avg_fill_price"] == "100.01"
    assert len(body["fills"]) == 1
    again = await api.http.post("/api/v1/orders", json=order_body("i-1"), headers=a)
    assert again.status_code == 200
    assert again.json()["outcome"] == "existing"
    assert again.json()["order"]["status"] == "FILLED"
    taken = await api.http.post("/api/v1/orders", json=order_body("i-1"), headers=b)
    assert taken.status_code == 409
    assert taken.json()["error"]["field"] == "body.client_order_id"
    await api.harness.quiet()
    assert api.harness.venue is not None
    assert api.harness.venue.fills == 1
    assert len(await api.services.ledger.fills(client_order_ids=["i-1"])) == 1
    got = await api.http.get("/api/v1/orders/i-1", headers=a)
    assert got.status_code == 200
    assert got.json()["order"]["status"] == "FILLED"
    assert [f["fill_id"] for f in got.json()["fills"]] == [f["fill_id"] for f in body["fills"]]
    assert (await api.http.get("/api/v1/orders/i-1", headers=b)).status_code == 404
    assert (await api.http.get("/api/v1/orders/i-1/fills", headers=b)).status_code == 404
    assert (await api.http.delete("/api/v1/orders/i-1", headers=b)).status_code == 404
    assert (await api.http.get("/api/v1/orders", headers=b)).json() == {"orders": [], "next": None}
    assert (await api.http.get("/api/v1/fills", headers=b)).json() == {"fills": [], "next": None}
    by_id = await api.http.get("/api/v1/orders", params={"client_order_id": "i-1"}, headers=a)
    assert [o["order_id"] for o in by_id.json()["orders"]] == ["i-1"]
    # an admin key may look at another account; a trade key may not ask to
    admin = await api.key(Scope.ADMIN, account="ops")
    assert (await api.http.get("/api/v1/orders/i-1", params={"account": "default"}, headers=admin)).status_code == 200
    assert (await api.http.get("/api/v1/orders", params={"account": "default"}, headers=b)).status_code == 403


HUGE = "1" * 2_000_000


Q = "body.quantity"


@pytest.mark.parametrize(
    ("raw", "statuses", "field"),
    [
        (json.dumps(order_body("h-1", qty="NaN")), {422}, Q),
        (json.dumps(order_body("h-1", qty="Infinity")), {422}, Q),
        (json.dumps(order_body("h-1", qty="-Infinity")), {422}, Q),
        ('{"client_order_id": "h-1", "symbol": "AAA", "side": "BUY", "quantity": NaN}', {400}, None),
        ('{"client_order_id": "h-1", "symbol": "AAA", "side": "BUY", "quantity": Infinity}', {400}, None),
        ('{"client_order_id": "h-1", "symbol": "AAA", "side": "BUY", "quantity": 1e308}', {422}, Q),
        (json.dumps(order_body("h-1", qty="1e308")), {422}, Q),
        (json.dumps(order_body("h-1", qty="1234567890123456789012345678901234567890")), {422}, Q),
        (json.dumps(order_body("h-1", qty="1.000000000000000000000000000000000000001")), {422}, Q),
        (json.dumps(order_body("h-1", qty="-5")), {422}, Q),
        (json.dumps(order_body("h-1", qty="0")), {422}, Q),
        (json.dumps(order_body("h-1", qty="1.5")), {422}, Q),
        (json.dumps(order_body("h-1", order_type="LIMIT", limit_price="100.001")), {422}, "body.limit_price"),
        (json.dumps(order_body("h-1", order_type="LIMIT", limit_price="1e308")), {422}, "body.limit_price"),
        ('{"client_order_id": "h-1", "symbol": "AAA", "side": "BUY", "quantity": "1", "quantity": "10"}', {422}, Q),
        (json.dumps(order_body("h-1", qty=True)), {422}, Q),
        (json.dumps(order_body("h-1", qty=[1])), {422}, Q),
        (json.dumps({**order_body("h-1"), "side": "HOLD"}), {422}, "body.side"),
        (json.dumps({**order_body("h-1"), "symbol": 7}), {422}, "body.symbol"),
        (json.dumps({**order_body("h-1"), "symbol": "ZZZ"}), {422}, "body.symbol"),
        (json.dumps({**order_body("h-1"), "client_order_id": "x" * 65}), {422}, "body.client_order_id"),
        (json.dumps({**order_body("h-1"), "account_id": "acct-b"}), {422}, "body.account_id"),
        (json.dumps({"symbol": "AAA", "side": "BUY", "quantity": "1"}), {422}, "body.client_order_id"),
        (json.dumps([order_body("h-1")]), {422}, None),
        (json.dumps({**order_body("h-1"), "strategy_id": "a\u0000b"}), {422}, "body.strategy_id"),
        ("not json", {400}, None),
        (json.dumps({**order_body("h-1"), "strategy_id": HUGE}), {413}, None),
    ],
)
async def test_hostile_order_bodies_are_4xx_and_leave_no_order(
    trading_api: TradingApi, raw: str, statuses: set[int], field: str | None
) -> None:
    api = trading_api
    headers = {**(await api.key(Scope.TRADE)), "Content-Type": "application/json"}
    r = await api.http.post("/api/v1/orders", content=raw.encode(), headers=headers)
    assert r.status_code in statuses, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert "Traceback" not in r.text
    assert error["field"] == field
    await api.harness.quiet()
    assert await ledger_orders(api) == []


async def test_pagination_walks_every_order_exactly_once(trading_api: TradingApi) -> None:
    api = trading_api
    a = await api.key(Scope.TRADE)
    ids = [f"pg-{i:02d}" for i in range(17)]
    for i, coid in enumerate(ids):
        r = await api.http.post(
            "/api/v1/orders", json=order_body(coid, qty="1", side="BUY" if i % 2 else "SELL"), headers=a
        )
        assert r.status_code == 201
    await api.harness.quiet()
    for direction in ("asc", "desc"):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 5, "order": direction}
        while True:
            page = (await api.http.get("/api/v1/orders", params=params, headers=a)).json()
            seen.extend(o["order_id"] for o in page["orders"])
            if page["next"] is None:
                break
            params["cursor"] = page["next"]
        assert sorted(seen) == ids
        assert len(seen) == len(ids)
    sells = (await api.http.get("/api/v1/orders", params={"side": "SELL", "status": "FILLED"}, headers=a)).json()
    assert sorted(o["order_id"] for o in sells["orders"]) == ids[0::2]
    fills: list[str] = []
    params = {"limit": 4}
    while True:
        page = (await api.http.get("/api/v1/fills", params=params, headers=a)).json()
        fills.extend(f["order_id"] for f in page["fills"])
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert sorted(fills) == ids
    big = base64.urlsafe_b64encode(json.dumps([2**70, "pg-01"]).encode()).decode()
    nul = base64.urlsafe_b64encode(json.dumps([1, "pg\u000001"]).encode()).decode()
    for bad in (
        {"limit": 0},
        {"limit": 501},
        {"cursor": "!!"},
        {"cursor": big},
        {"cursor": nul},
        {"status": "DONE"},
        {"since_ns": -1},
        {"symbol": "AA\x00A"},
        {"client_order_id": "a b"},
    ):
        r = await api.http.get("/api/v1/orders", params=bad, headers=a)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["field"].startswith("query.")


async def test_cancel_a_resting_order(trading_api: TradingApi) -> None:
    api = trading_api
    a = await api.key(Scope.TRADE)
    body = order_body("c-1", order_type="LIMIT", limit_price="95.00", time_in_force="GTC")
    r = await api.http.post("/api/v1/orders", json=body, headers=a)
    assert r.status_code == 201
    assert r.json()["order"]["status"] == "ACCEPTED"
    assert (await api.http.delete("/api/v1/orders/c-1", headers=await api.key(Scope.READ))).status_code == 403
    r = await api.http.delete("/api/v1/orders/c-1", headers=a)
    assert r.status_code == 200
    assert r.json()["order"]["status"] == "CANCELED"
    await api.harness.quiet()
    r = await api.http.delete("/api/v1/orders/c-1", headers=a)
    assert r.status_code == 409
    assert (await api.http.delete("/api/v1/orders/nope", headers=a)).status_code == 404


async def test_positions_account_and_fills(trading_api: TradingApi) -> None:
    api = trading_api
    a = await api.key(Scope.TRADE)
    await api.http.post("/api/v1/orders", json=order_body("f-1", qty="7"), headers=a)
    await api.harness.quiet()
    await wait_marks(api.services.ledger)  # type: ignore[arg-type]
    marks = await api.services.ledger.marks()
    positions = (await api.http.get("/api/v1/positions", headers=a)).json()
    (aaa,) = positions
    assert aaa["symbol"] == "AAA"
    assert aaa["quantity"] == "7"
    assert D(aaa["market_value"]) == 7 * marks["AAA"]
    one = (await api.http.get("/api/v1/positions/AAA", headers=a)).json()
    assert one == aaa
    assert (await api.http.get("/api/v1/positions/ZZZ", headers=a)).status_code == 404
    account = (await api.http.get("/api/v1/account", headers=a)).json()
    (fill,) = await api.services.ledger.fills(account_id="default")
    assert D(account["cash"]) == D(1_000_000) - fill.price * fill.quantity - fill.fee
    assert D(account["fees"]) == fill.fee
    assert D(account["equity"]) == D(account["cash"]) + D(aaa["market_value"])
    assert D(account["unrealized_pnl"]) == D(aaa["unrealized_pnl"])
    assert all(isinstance(account[k], str) for k in ("cash", "equity", "fees", "realized_pnl", "unrealized_pnl"))
    fills = (await api.http.get("/api/v1/fills", params={"symbol": "AAA"}, headers=a)).json()
    assert [f["fill_id"] for f in fills["fills"]] == [fill.fill_id]
    assert (await api.http.get("/api/v1/orders/f-1/fills", headers=a)).json()[0]["fill_id"] == fill.fill_id


async def test_rebalance_preview_execute_and_replay(trading_api: TradingApi) -> None:
    api = trading_api
    a = await api.key(Scope.TRADE)
    await api.http.post("/api/v1/orders", json=order_body("rb-seed", qty="100"), headers=a)
    await api.harness.quiet()
    await wait_marks(api.services.ledger)  # type: ignore[arg-type]
    request = {"targets": {"AAA": "0.005", "BBB": "0.01"}, "rebalance_id": "web1"}
    preview = await api.http.post("/api/v1/rebalance/preview", json=request, headers=await api.key(Scope.READ))
    assert preview.status_code == 200, preview.text
    planned = {o["client_order_id"]: o["side"] for o in preview.json()["orders"]}
    assert planned == {"rb-web1-S-AAA": "SELL", "rb-web1-B-BBB": "BUY"}
    done = await api.http.post("/api/v1/rebalance/execute", json=request, headers=a)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "executed"
    assert {o["order_id"]: o["status"] for o in done.json()["orders"]} == {
        "rb-web1-S-AAA": "FILLED",
        "rb-web1-B-BBB": "FILLED",
    }
    await api.harness.quiet()
    assert api.harness.venue is not None
    fills = api.harness.venue.fills
    again = await api.http.post("/api/v1/rebalance/execute", json=request, headers=a)
    assert again.status_code == 200
    assert again.json()["outcome"] == "replayed"
    await api.harness.quiet()
    assert api.harness.venue.fills == fills
    unknown = {"targets": {"ZZ\u0000Z": "0.1"}, "rebalance_id": "web2"}
    r = await api.http.post("/api/v1/rebalance/execute", json=unknown, headers=a)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body.targets.ZZ\u0000Z"
    bad = await api.http.post("/api/v1/rebalance/preview", json={"targets": {"AAA": "NaN"}}, headers=a)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "body.targets.AAA"
    assert await verify(api.services.ledger, "default") == []
