"""The API client's own rules: values in, errors out, retry decisions, and the stream's reading of the
WebSocket protocol (over a real local WebSocket server speaking the protocol's messages)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tradepulse.api.client import (
    ApiError,
    ConnectionFailed,
    NotFound,
    RateLimited,
    RetryPolicy,
    ServerError,
    Stream,
    StreamClosed,
    Unauthorized,
    ValidationError,
    _Attempts,
    _Call,
    _reader,
    _ws_url,
    decimal_text,
    error_of,
    new_client_order_id,
)
from tradepulse.api.schemas import Health
from tradepulse.api.trading_models import ID_PATTERN, POSITIVE_DECIMAL
from tradepulse.domain import Tick

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("10"), "10"),
        (Decimal("1E+2"), "100"),
        (Decimal("101.2500"), "101.25"),
        (Decimal("0.000000000001"), "0.000000000001"),
        (7, "7"),
        ("3.5", "3.5"),
    ],
)
def test_decimals_go_out_as_plain_decimal_strings(value: Decimal | int | str, text: str) -> None:
    assert decimal_text(value, "quantity") == text


def test_floats_and_non_finite_decimals_are_refused_naming_the_field() -> None:
    with pytest.raises(TypeError, match=r"^limit_price: pass a Decimal, an int or a decimal string, not float$"):
        decimal_text(1.5, "limit_price")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^quantity: .* not bool$"):
        decimal_text(True, "quantity")
    with pytest.raises(ValueError, match=r"^quantity: must be finite, got NaN$"):
        decimal_text(Decimal("NaN"), "quantity")


def test_generated_client_order_ids_are_unique_and_valid() -> None:
    ids = {new_client_order_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.match(ID_PATTERN, i) for i in ids)
    assert re.match(POSITIVE_DECIMAL, decimal_text(Decimal("1E+2"), "q"))


def test_ws_url_follows_the_base_url() -> None:
    assert _ws_url("http://127.0.0.1:8000", None) == "ws://127.0.0.1:8000/api/v1/ws"
    assert _ws_url("https://api.example/tp/", "acct b") == "wss://api.example/tp/api/v1/ws?account=acct+b"


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers, request=httpx.Request("GET", "http://x/"))


def test_error_answers_map_to_the_hierarchy() -> None:
    body = {"error": {"code": "validation_error", "message": "Expected `str`", "field": "body.quantity"}}
    invalid = error_of(_response(422, body), client_order_id="c-1")
    assert isinstance(invalid, ValidationError)
    assert (invalid.status, invalid.code, invalid.field, invalid.client_order_id) == (
        422,
        "validation_error",
        "body.quantity",
        "c-1",
    )
    assert str(invalid) == "422 validation_error: Expected `str` (field body.quantity)"
    limited = error_of(_response(429, {"error": {"code": "rate_limited", "message": "slow"}}, {"Retry-After": "3"}))
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 3.0
    assert isinstance(error_of(_response(404, {"error": {"code": "not_found", "message": "no"}})), NotFound)
    assert isinstance(error_of(_response(401, {"error": {"code": "unauthorized", "message": "no"}})), Unauthorized)
    proxy = error_of(_response(502, b"<html>Bad Gateway</html>"))
    assert isinstance(proxy, ServerError)
    assert (proxy.code, proxy.message) == ("http_error", "<html>Bad Gateway</html>")
    odd = error_of(_response(418, {"error": {"code": "teapot", "message": "short and stout"}}))
    assert type(odd) is ApiError


def test_a_success_that_is_not_the_model_is_an_invalid_response() -> None:
    call = _Call("GET", "/api/v1/health", _reader(Health))
    assert call.result(_response(200, {"status": "ok"})) == Health(status="ok")
    with pytest.raises(ApiError, match="invalid_response: the answer to GET /api/v1/health is not"):
        call.result(_response(200, {"status": 5}))


def test_retry_decisions() -> None:
    submit = _Call("POST", "/api/v1/orders", _reader(Health), retry=True, client_order_id="c-9")
    attempts = _Attempts(submit, RetryPolicy(retries=2, rate_limit_retries=1, max_retry_after=5))
    timeout = httpx.ReadTimeout("slow")
    assert [attempts.after_error(timeout), attempts.after_error(timeout)] == [0.1, 0.2]
    with pytest.raises(ConnectionFailed) as failed:
        attempts.after_error(timeout)
    assert failed.value.client_order_id == "c-9"
    assert "submit again with client_order_id='c-9'" in failed.value.message

    attempts = _Attempts(submit, RetryPolicy(rate_limit_retries=1, max_retry_after=5))
    assert attempts.after_answer(_response(429, {}, {"Retry-After": "2"})) == 2.0
    assert attempts.after_answer(_response(429, {}, {"Retry-After": "2"})) is None, "bounded"
    patient = _Attempts(submit, RetryPolicy(rate_limit_retries=5, max_retry_after=5))
    assert patient.after_answer(_response(429, {}, {"Retry-After": "60"})) is None, "too long to wait"
    assert patient.after_answer(_response(503, {})) == 0.1
    assert patient.after_answer(_response(201, {})) is None

    cancel = _Call("DELETE", "/api/v1/orders/x", _reader(Health))
    with pytest.raises(ConnectionFailed):
        _Attempts(cancel, RetryPolicy()).after_error(timeout)
    assert _Attempts(cancel, RetryPolicy()).after_answer(_response(503, {})) is None, "not resent"


@pytest.fixture
async def ws_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serve a scripted WebSocket endpoint on a free local port; return its URL."""
    servers = []

    async def start(handler: Handler) -> str:
        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/api/v1/ws"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


WELCOME = {"type": "welcome", "account_id": "default", "channels": ["quotes"], "heartbeat_s": 0.1, "queue_max": 10}
TICK = {
    "type": "Tick",
    "symbol": "AAA",
    "ts_ns": 1,
    "price": 1.5,
    "size": 1.0,
    "bid": 1.4,
    "ask": 1.6,
    "bid_size": 1.0,
    "ask_size": 1.0,
}


async def test_a_silent_connection_counts_as_dead(ws_server: Callable[[Handler], Awaitable[str]]) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps(WELCOME))
        request = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "subscribed", "channels": ["quotes"], "symbols": ["*"], "id": request["id"]}))
        await ws.send(json.dumps({"channel": "quotes", "symbol": "AAA", "data": TICK}))
        await ws.send(json.dumps({"type": "heartbeat", "ts_ns": 2}))
        await ws.wait_closed()  # nothing more, no heartbeat either, until the client gives up

    url = await ws_server(handler)
    async with Stream(url, "tp_x", ["quotes"]) as stream:
        event = await anext(stream)
        assert isinstance(event.data, Tick)
        assert event.data.ask == 1.6
        with pytest.raises(StreamClosed) as closed:
            await anext(stream)
        assert (closed.value.close_code, closed.value.reason) == (1006, "no heartbeat for 0.3 s")


async def test_close_codes_become_errors(ws_server: Callable[[Handler], Awaitable[str]]) -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.close(4403, "only an admin key may watch another account (?account=)")

    url = await ws_server(refuse)
    with pytest.raises(ApiError) as refused:
        await Stream(url, "tp_x").open()
    assert (refused.value.status, refused.value.message) == (
        403,
        "only an admin key may watch another account (?account=)",
    )

    async def cut_off(ws: ServerConnection) -> None:
        await ws.send(json.dumps(WELCOME))
        await ws.send(json.dumps({"channel": "quotes", "symbol": "AAA", "data": TICK}))
        await ws.close(1008, "slow consumer: more than 10 messages queued")

    url = await ws_server(cut_off)
    stream = Stream(url, "tp_x")
    events = []

    async def read_all() -> None:
        async for event in stream:
            events.append(event)

    with pytest.raises(StreamClosed) as closed:
        await read_all()
    assert [e.symbol for e in events] == ["AAA"], "what arrived before the close is still delivered"
    assert (closed.value.close_code, closed.value.reason) == (1008, "slow consumer: more than 10 messages queued")


def test_the_client_does_not_import_the_server() -> None:
    """The client shares the API's models, not its server: no Litestar, no services, no ML stack."""
    code = (
        "import sys, tradepulse.api.client\n"
        "heavy = ('litestar', 'tradepulse.api.services', 'tradepulse.ml', 'numba', 'redis', 'asyncpg')\n"
        "print(sorted({m.split('.')[0] if not m.startswith('tradepulse') else m for m in sys.modules"
        " if m.startswith(heavy)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
