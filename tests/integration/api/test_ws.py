"""WebSocket /api/v1/ws on a real uvicorn server (in this test's event loop) over the real Redis bus and
PostgreSQL, with a real engine executing on the simulated exchange; clients are aiohttp WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from tests.integration.api.conftest import api_settings_for
from tests.integration.bus_fixtures import make_redis
from tests.support.engine import EngineHarness, settings_for, tick, until
from tests.support.servers import free_port, redis_server
from tradepulse.api.app import create_app
from tradepulse.api.feed import LiveFeed
from tradepulse.api.routes.ws import MAX_ERRORS
from tradepulse.api.services import Services, open_services
from tradepulse.bus.streams import SIGNALS, TICKS
from tradepulse.config import DatabaseConfig
from tradepulse.domain import Side, Signal, SignalAction, SubmitOrder, TimeInForce

pytestmark = pytest.mark.integration

Connect = Callable[..., Awaitable[aiohttp.ClientWebSocketResponse]]


@pytest.fixture
async def private_redis() -> AsyncIterator[str]:
    with redis_server() as server:
        yield server.url


@pytest.fixture
def ws_api() -> dict[str, Any]:
    """Settings overrides for the API under test (tests change them before ``server`` starts)."""
    return {"ws_heartbeat_s": 30.0, "ws_queue_max": 1_000}


@pytest.fixture
async def services(
    tmp_path: Path, private_redis: str, pg_database: str, pg_schema: str, ws_api: dict[str, Any]
) -> AsyncIterator[Services]:
    settings = api_settings_for(tmp_path, private_redis, pg_database, pg_schema, **ws_api)
    async with open_services(settings) as opened:
        yield opened


@pytest.fixture
async def server(services: Services) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(services), host="127.0.0.1", port=port, lifespan="off", log_level="warning", ws="websockets-sansio"
    )
    instance = uvicorn.Server(config)
    task = asyncio.ensure_future(instance.serve())
    await until(lambda: instance.started or task.done(), 10, "uvicorn started")
    assert not task.done(), "uvicorn did not start"
    yield f"ws://127.0.0.1:{port}/api/v1/ws"
    instance.should_exit = True
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def connect(server: str) -> AsyncIterator[Connect]:
    session = aiohttp.ClientSession()
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def open_ws(key: str | None = None, *, query: str = "", read_welcome: bool = True) -> Any:
        headers = {"X-API-Key": key} if key else {}
        ws = await session.ws_connect(server + query, headers=headers, autoping=True)
        sockets.append(ws)
        if read_welcome:
            welcome = await receive(ws)
            assert welcome["type"] == "welcome", welcome
        return ws

    yield open_ws
    for ws in sockets:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)
    await session.close()


async def key_for(services: Services, scope: str = "read", account: str = "default") -> str:
    _, token = await services.keys.create(name="ws-test", account_id=account, scope=scope)  # type: ignore[arg-type]
    return token


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    out: dict[str, Any] = json.loads(msg.data)
    return out


async def receive_data(ws: aiohttp.ClientWebSocketResponse, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Return the next ``n`` feed frames, skipping heartbeats."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        frame = await receive(ws, timeout)
        if frame.get("type") != "heartbeat":
            out.append(frame)
    return out


async def subscribe(ws: aiohttp.ClientWebSocketResponse, channels: list[str], symbols: list[str] | None) -> None:
    message: dict[str, Any] = {"op": "subscribe", "channels": channels, "id": "s1"}
    if symbols is not None:
        message["symbols"] = symbols
    await ws.send_str(json.dumps(message))
    ack = await receive(ws)
    assert ack == {"type": "subscribed", "channels": channels, "symbols": symbols or ["*"], "id": "s1"}


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> tuple[int | None, str]:
    """Read until the server's close; return its code and reason."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ws.close_code, str(msg.extra or "")


async def test_signal_quote_order_update_and_fill_from_a_real_engine_reach_their_subscribers(
    tmp_path: Path,
    private_redis: str,
    pg_database: str,
    pg_schema: str,
    services: Services,
    connect: Connect,
) -> None:
    engine_settings = settings_for(
        tmp_path / "engine",
        transport="redis",
        redis_url=private_redis,
        database=DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=4),
        risk={"accounts": ("default", "other")},
    )
    engine_bus = make_redis(private_redis, engine_settings.bus)
    harness = EngineHarness(engine_settings, engine_bus)
    try:
        await harness.start()
        await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
        mine = await connect(await key_for(services, "trade", "default"))
        theirs = await connect(await key_for(services, "read", "other"))
        await subscribe(mine, ["signals", "quotes", "orders", "fills"], ["AAA"])
        await subscribe(theirs, ["orders", "fills"], None)

        await harness.ticks(tick("AAA", 101.0), tick("BBB", 51.0))
        (quote,) = await receive_data(mine, 1)
        assert (quote["channel"], quote["symbol"], quote["data"]["type"]) == ("quotes", "AAA", "Tick")
        assert quote["data"]["ask"] == 101.01

        await engine_bus.publish(
            SIGNALS,
            Signal(symbol="AAA", action=SignalAction.BUY, confidence=0.9, model_version="m7", ts_ns=time.time_ns()),
        )
        (sig,) = await receive_data(mine, 1)
        assert (sig["channel"], sig["data"]["action"], sig["data"]["model_version"]) == ("signals", "BUY", "m7")

        result = await services.orders.submit(
            SubmitOrder(
                client_order_id="ws-1",
                symbol="AAA",
                side=Side.BUY,
                quantity=Decimal(4),
                time_in_force=TimeInForce.IOC,
                account_id="default",
                ts_ns=time.time_ns(),
            ),
            timeout=10,
        )
        assert result.status.value == "FILLED"
        accepted, filled, fill = await receive_data(mine, 3)
        assert (accepted["channel"], accepted["data"]["type"]) == ("orders", "OrderAccepted")
        assert (filled["channel"], filled["data"]["type"]) == ("orders", "OrderFilled")
        assert fill["channel"] == "fills"
        assert {f["account_id"] for f in (accepted, filled, fill)} == {"default"}
        assert fill["data"]["client_order_id"] == "ws-1"
        assert Decimal(fill["data"]["price"]) == result.fills[0].price
        assert isinstance(fill["data"]["price"], str), "money travels as a decimal string"

        # the other account's connection got none of it: the next thing it hears is the answer to its ping
        await asyncio.sleep(0.3)
        await theirs.send_str(json.dumps({"op": "ping", "id": 5}))
        pong = await receive(theirs)
        assert (pong["type"], pong["id"]) == ("pong", 5)
    finally:
        await harness.stop()
        await engine_bus.close()


@pytest.mark.parametrize("ws_api", [{"ws_heartbeat_s": 0.2, "ws_queue_max": 100}])
async def test_heartbeats_arrive_while_nothing_else_does(services: Services, connect: Connect) -> None:
    ws = await connect(await key_for(services))
    beats = [await receive(ws, timeout=5) for _ in range(2)]
    assert [b["type"] for b in beats] == ["heartbeat", "heartbeat"]
    assert beats[1]["ts_ns"] > beats[0]["ts_ns"]


async def test_keys_by_header_or_query_and_refusals_with_a_reason(services: Services, connect: Connect) -> None:
    token = await key_for(services)
    ws = await connect(query=f"?api_key={token}")
    await subscribe(ws, ["quotes"], ["AAA"])

    anonymous = await connect(read_welcome=False)
    code, reason = await closed_with(anonymous)
    assert (code, reason) == (4401, "an API key is required (X-API-Key, Authorization: Bearer, or ?api_key=)")
    wrong = await connect("tp_notakey_000", read_welcome=False)
    assert await closed_with(wrong) == (4401, "invalid API key")
    nosy = await connect(token, query="?account=other", read_welcome=False)
    assert await closed_with(nosy) == (4403, "only an admin key may watch another account (?account=)")
    admin = await connect(await key_for(services, "admin", "ops"), query="?account=other", read_welcome=False)
    welcome = await receive(admin)
    assert (welcome["type"], welcome["account_id"]) == ("welcome", "other")


async def test_bad_messages_get_clear_errors_then_abuse_is_closed(services: Services, connect: Connect) -> None:
    ws = await connect(await key_for(services))
    cases: list[tuple[str, str, str | None]] = [
        ("not json", "JSON is malformed", None),
        ('{"op": "dance", "id": 3}', "op 'dance': must be one of subscribe, unsubscribe, ping", "message.op"),
        ('{"op": "subscribe"}', "channels: name at least one of signals, quotes, orders, fills", "message.channels"),
        (
            '{"op": "subscribe", "channels": ["quotes", "trades"]}',
            "channel 'trades': must be one of signals, quotes, orders, fills",
            "message.channels.1",
        ),
        ('{"op": "subscribe", "channels": ["quotes"], "symbols": ["AAA", "no spaces"]}', "symbol 'no spaces'", None),
        ('{"op": "subscribe", "channels": "quotes"}', "Expected `array | null`, got `str`", "message.channels"),
        ('{"op": "subscribe", "channels": ["quotes"], "extra": 1}', "Object contains unknown field `extra`", None),
    ]
    for text, message, field in cases:
        await ws.send_str(text)
        answer = await receive(ws)
        assert answer["type"] == "error", answer
        assert answer["error"]["code"] == "validation_error"
        assert message in answer["error"]["message"], (text, answer)
        if field is not None:
            assert answer["error"]["field"] == field, (text, answer)
    await ws.send_str('{"op": "dance", "id": 3}')
    assert (await receive(ws))["id"] == 3, "the id of a bad message is echoed"
    await ws.send_str(json.dumps({"op": "ping"}))
    assert (await receive(ws))["type"] == "pong", "the connection survives bad messages"
    for _ in range(MAX_ERRORS - len(cases) - 1):
        await ws.send_str("{}")
        await receive(ws)
    await ws.send_str("{}")
    assert await closed_with(ws) == (1008, f"more than {MAX_ERRORS} invalid messages")


async def test_a_binary_or_oversized_message_closes_the_connection(services: Services, connect: Connect) -> None:
    token = await key_for(services)
    ws = await connect(token)
    await ws.send_bytes(b"\x00\x01")
    assert await closed_with(ws) == (1008, "send JSON text messages, not binary ones")
    ws = await connect(token)
    await ws.send_str(json.dumps({"op": "ping", "id": "x" * 20_000}))
    assert await closed_with(ws) == (1009, "message larger than 16384 bytes")


async def test_unsubscribe_stops_the_stream(services: Services, connect: Connect) -> None:
    ws = await connect(await key_for(services))
    await subscribe(ws, ["quotes"], ["AAA", "BBB"])
    await ws.send_str(json.dumps({"op": "unsubscribe", "channels": ["quotes"], "symbols": ["AAA"]}))
    assert (await receive(ws))["type"] == "unsubscribed"
    await services.bus.publish_many(TICKS, [tick("AAA", 10.0), tick("BBB", 20.0)])
    (frame,) = await receive_data(ws, 1)
    assert frame["symbol"] == "BBB"


@pytest.mark.parametrize("ws_api", [{"ws_heartbeat_s": 30.0, "ws_queue_max": 20}])
async def test_a_client_that_stops_reading_is_disconnected_and_its_queue_stays_bounded(
    services: Services, connect: Connect
) -> None:
    feed = services.feed
    assert isinstance(feed, LiveFeed)
    ws = await connect(await key_for(services))
    await subscribe(ws, ["quotes"], None)
    # the client reads nothing from here on: socket buffers fill, then the server-side queue, then it is cut off
    published = 0
    while feed.stats.slow_consumers == 0:
        assert published < 400_000, "the slow client was never cut off"
        await services.bus.publish_many(TICKS, [tick("AAA", 100.0 + (published + i) % 100 / 100) for i in range(2000)])
        published += 2000
        await asyncio.sleep(0.02)
    assert feed.stats.peak_queued == 20, "a subscriber never holds more than ws_queue_max messages"
    assert feed.subscribers == 0
    code, reason = await closed_with(ws, timeout=30)
    assert (code, reason) == (1008, "slow consumer: more than 20 messages queued")
