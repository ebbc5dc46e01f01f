"""WebSocket ``/api/v1/ws``: live signals, quotes, order updates and fills.

Connect with an API key (any scope) in the ``X-API-Key`` header or ``Authorization: Bearer``, or, from a browser
(which cannot set headers on a WebSocket), as ``?api_key=tp_...`` in the URL (the URL may reach proxy logs: use a
read key there). An ADMIN key may watch another account with ``?account=NAME``. The server accepts the connection,
then answers a missing or bad key by closing with 4401, a missing scope with 4403, an exceeded rate limit with
1013 (try again later), each with a reason. The key is checked again at every heartbeat: a key revoked while
connected ends the connection with 4401.

Client -> server (JSON text messages; ``id`` is optional and echoed in the answer)::

    {"op": "subscribe",   "channels": ["signals", "quotes", "orders", "fills"], "symbols": ["AAPL"], "id": 1}
    {"op": "unsubscribe", "channels": ["quotes"], "symbols": ["AAPL"]}
    {"op": "ping", "id": 7}

``symbols`` may be omitted or ``["*"]`` for every symbol. ``orders`` and ``fills`` carry the key's own account only.

Server -> client::

    {"type": "welcome", "account_id": "default", "channels": [...], "heartbeat_s": 15.0, "queue_max": 1000}
    {"type": "subscribed", "channels": [...], "symbols": [...], "id": 1}      (and "unsubscribed")
    {"type": "pong", "id": 7, "ts_ns": ...}
    {"type": "heartbeat", "ts_ns": ...}                                         every ``api.ws_heartbeat_s``
    {"type": "error", "error": {"code": "validation_error", "message": "...", "field": "message.channels"}}
    {"channel": "quotes", "symbol": "AAPL", "data": {"type": "Tick", ...}}      (see tradepulse.api.feed.Frame)
    {"channel": "fills", "symbol": "AAPL", "account_id": "default", "data": {"fill_id": ..., "price": "189.52"}}

A bad message gets an ``error`` and the connection stays open; after ``MAX_ERRORS`` bad messages, or one larger
than ``MAX_MESSAGE_BYTES``, or a binary one, the server closes with 1008 (policy violation) or 1009 (too big).

A client that does not keep up is disconnected: its queue holds at most ``api.ws_queue_max`` messages, and the
one that does not fit closes the connection with 1008 and reason ``slow consumer: ...``. Reconnect and
resubscribe; the feed is live (no replay), so read what was missed over REST (orders, fills, signals).

Metrics: ``api_websocket_connections`` (open now), ``api_websocket_closes_total{reason}`` (client_left,
slow_consumer, auth, policy, too_big, unavailable, shutdown, error), ``api_websocket_messages_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from typing import Any

import asyncpg
import msgspec
from litestar import Router, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from tradepulse.api.auth import Principal, Scope, token_of
from tradepulse.api.errors import field_from_msgspec
from tradepulse.api.feed import ALL, CHANNELS, FeedClosed, LiveFeed, SlowConsumer, Subscriber, validate_symbol
from tradepulse.api.services import Services, ServicesDep
from tradepulse.bus import BusUnavailable
from tradepulse.observability.metrics import WEBSOCKET_CLOSES, WEBSOCKET_CONNECTIONS, WEBSOCKET_MESSAGES
from tradepulse.storage.keys import KeyStoreError

log = logging.getLogger("tradepulse.api.ws")

#: bad messages tolerated on one connection before it is closed with 1008
MAX_ERRORS = 10
#: a larger client message closes the connection with 1009
MAX_MESSAGE_BYTES = 16_384
#: (channel, symbol) pairs one connection may hold
MAX_TOPICS = 2_000
#: how long closing may wait for a client that does not read
CLOSE_TIMEOUT_S = 10.0

WS_NORMAL = 1000
WS_GOING_AWAY = 1001
WS_POLICY = 1008
WS_TOO_BIG = 1009
WS_INTERNAL = 1011
WS_TRY_AGAIN = 1013
WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403


#: close code -> the reason label of ``api_websocket_closes_total``
_REASONS = {
    WS_GOING_AWAY: "shutdown",
    WS_POLICY: "policy",
    WS_TOO_BIG: "too_big",
    WS_INTERNAL: "error",
    WS_TRY_AGAIN: "unavailable",
    WS_UNAUTHORIZED: "auth",
    WS_FORBIDDEN: "auth",
}


class Op(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One client message."""

    op: str
    channels: list[str] | None = None
    symbols: list[str] | None = None
    id: str | int | None = None


class _Close(Exception):
    """End the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_decoder = msgspec.json.Decoder(Op)
_encoder = msgspec.json.Encoder()


def _error(code: str, message: str, field: str | None = None, op_id: str | int | None = None) -> str:
    body: dict[str, Any] = {"type": "error", "error": {"code": code, "message": message, "field": field}}
    if op_id is not None:
        body["id"] = op_id
    return _encoder.encode(body).decode()


def _token(socket: WebSocket[Any, Any, Any]) -> str:
    token: str | None = token_of(socket) or socket.query_params.get("api_key")
    if not token:
        raise _Close(WS_UNAUTHORIZED, "an API key is required (X-API-Key, Authorization: Bearer, or ?api_key=)")
    return token


async def _principal(services: Services, token: str) -> Principal:
    """Return the principal of a valid ``token``, or raise :class:`_Close` saying why not."""
    try:
        principal = await services.key_cache.principal(token, services.keys.verify)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error, KeyStoreError) as exc:
        log.warning("websocket: key store unavailable (%s)", type(exc).__name__)
        raise _Close(WS_TRY_AGAIN, "the key store is unavailable; try again") from None
    if principal is None:
        raise _Close(WS_UNAUTHORIZED, "invalid API key")
    return principal


async def _authenticate(services: Services, token: str) -> Principal:
    """Return the caller's principal once its key and rate limit allow the connection; else raise _Close."""
    principal = await _principal(services, token)
    if principal.scope < Scope.READ:  # pragma: no cover - every scope includes READ today
        raise _Close(WS_FORBIDDEN, "this key may not read")
    decision = await services.limiter.check(principal.key_id)
    if not decision.allowed:
        raise _Close(WS_TRY_AGAIN, f"rate limit exceeded; retry after {decision.retry_after_header} s")
    return principal


def _account(socket: WebSocket[Any, Any, Any], principal: Principal) -> str:
    wanted: str | None = socket.query_params.get("account")
    if wanted is None or wanted == principal.account_id:
        return principal.account_id
    if principal.scope < Scope.ADMIN:
        raise _Close(WS_FORBIDDEN, "only an admin key may watch another account (?account=)")
    return wanted


class Session:
    """One connection: its subscriber, its sends (one at a time), and its two loops."""

    def __init__(
        self, socket: WebSocket[Any, Any, Any], services: Services, token: str, feed: LiveFeed, sub: Subscriber
    ) -> None:
        self.socket = socket
        self.services = services
        self.token = token
        self.feed = feed
        self.sub = sub
        self.heartbeat_s = services.settings.api.ws_heartbeat_s
        self.errors = 0
        self._send_lock = asyncio.Lock()

    async def send(self, text: str) -> None:
        async with self._send_lock:
            await self.socket.send_text(text)

    async def sender(self) -> None:
        """Send queued frames as they come, and a heartbeat every ``heartbeat_s``."""
        sub = self.sub
        next_beat = time.monotonic() + self.heartbeat_s
        while True:
            wait = next_beat - time.monotonic()
            frames: list[str] = []
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        frames = await sub.next()  # raises the FeedError that ended the stream
            for frame in frames:
                await self.send(frame)
            if frames:
                WEBSOCKET_MESSAGES.inc(len(frames))
            if time.monotonic() >= next_beat:
                await self._recheck_key()
                await self.send(_encoder.encode({"type": "heartbeat", "ts_ns": time.time_ns()}).decode())
                next_beat = time.monotonic() + self.heartbeat_s

    async def _recheck_key(self) -> None:
        """End the connection (4401) if its key was revoked; a key store outage does not end it."""
        try:
            await _principal(self.services, self.token)
        except _Close as close:
            if close.code != WS_TRY_AGAIN:
                raise

    async def receiver(self) -> None:
        """Handle client messages until the client leaves (return) or must be cut off (:class:`_Close`)."""
        while True:
            event = await self.socket.receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            if not isinstance(text, str):
                raise _Close(WS_POLICY, "send JSON text messages, not binary ones")
            if len(text) > MAX_MESSAGE_BYTES:
                raise _Close(WS_TOO_BIG, f"message larger than {MAX_MESSAGE_BYTES} bytes")
            reply = await self.handle(text)
            await self.send(reply)

    async def handle(self, text: str) -> str:
        """Return the answer to one client message."""
        try:
            op = _decoder.decode(text)
        except msgspec.DecodeError as exc:
            message, field = field_from_msgspec(str(exc), "message")
            return self._bad(message, field)
        if op.op == "ping":
            body: dict[str, Any] = {"type": "pong", "ts_ns": time.time_ns()}
            if op.id is not None:
                body["id"] = op.id
            return _encoder.encode(body).decode()
        if op.op not in ("subscribe", "unsubscribe"):
            return self._bad(f"op {op.op[:40]!r}: must be one of subscribe, unsubscribe, ping", "message.op", op.id)
        if not op.channels:
            return self._bad("channels: name at least one of " + ", ".join(CHANNELS), "message.channels", op.id)
        for i, channel in enumerate(op.channels):
            if channel not in CHANNELS:
                return self._bad(
                    f"channel {channel[:40]!r}: must be one of {', '.join(CHANNELS)}", f"message.channels.{i}", op.id
                )
        symbols = [ALL] if op.symbols is None else op.symbols
        if not symbols:
            return self._bad("symbols: name at least one symbol, or omit it for every symbol", "message.symbols", op.id)
        for i, symbol in enumerate(symbols):
            try:
                validate_symbol(symbol)
            except ValueError as exc:
                return self._bad(str(exc), f"message.symbols.{i}", op.id)
        if op.op == "unsubscribe":
            self.feed.unsubscribe(self.sub, op.channels, symbols)
            return self._ack("unsubscribed", op)
        if len(self.sub.topics | {(c, s) for c in op.channels for s in symbols}) > MAX_TOPICS:
            return self._bad(f"at most {MAX_TOPICS} channel x symbol subscriptions per connection", None, op.id)
        try:
            await self.feed.subscribe(self.sub, op.channels, symbols)
        except BusUnavailable:
            self.feed.unsubscribe(self.sub, op.channels, symbols)
            return _error("unavailable", "the message bus is unavailable; subscribe again later", None, op.id)
        return self._ack("subscribed", op, symbols)

    def _ack(self, kind: str, op: Op, symbols: list[str] | None = None) -> str:
        body: dict[str, Any] = {"type": kind, "channels": op.channels, "symbols": symbols or op.symbols or [ALL]}
        if op.id is not None:
            body["id"] = op.id
        return _encoder.encode(body).decode()

    def _bad(self, message: str, field: str | None, op_id: str | int | None = None) -> str:
        self.errors += 1
        if self.errors > MAX_ERRORS:
            raise _Close(WS_POLICY, f"more than {MAX_ERRORS} invalid messages")
        return _error("validation_error", message, field, op_id)

    async def watch(self) -> None:
        """Return once the feed ended this subscriber's stream (cut off as a slow consumer, or shutdown)."""
        await self.sub.ended()


async def _close(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> None:
    """Close with ``code``; give up after :data:`CLOSE_TIMEOUT_S` (a client that reads nothing never drains the
    close frame; the server then drops the connection)."""
    with contextlib.suppress(WebSocketDisconnect, OSError, TimeoutError, RuntimeError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await socket.close(code=code, reason=reason[:120])


@websocket("/ws", opt={"exclude_from_auth": True})
async def live(socket: WebSocket[Any, Any, Any], services: ServicesDep) -> None:
    """Live signals, quotes, order updates and fills (see the module docstring for the protocol)."""
    await socket.accept()
    feed: LiveFeed | None = services.feed
    try:
        token = _token(socket)
        principal = await _authenticate(services, token)
        account = _account(socket, principal)
        if feed is None:
            raise _Close(WS_INTERNAL, "the live feed is not running in this server")
        sub = feed.attach(account, queue_max=services.settings.api.ws_queue_max)
    except _Close as close:
        WEBSOCKET_CLOSES.labels(_REASONS.get(close.code, "error")).inc()
        await _close(socket, close.code, close.reason)
        return
    except FeedClosed:
        WEBSOCKET_CLOSES.labels("shutdown").inc()
        await _close(socket, WS_GOING_AWAY, "the server is shutting down")
        return
    WEBSOCKET_CONNECTIONS.inc()
    api = services.settings.api
    session = Session(socket, services, token, feed, sub)
    code, reason = WS_NORMAL, ""
    tasks: list[asyncio.Task[None]] = []
    try:
        welcome = {
            "type": "welcome",
            "account_id": account,
            "channels": list(CHANNELS),
            "heartbeat_s": api.ws_heartbeat_s,
            "queue_max": api.ws_queue_max,
        }
        await session.send(_encoder.encode(welcome).decode())
        tasks = [
            asyncio.ensure_future(session.receiver()),
            asyncio.ensure_future(session.sender()),
            asyncio.ensure_future(session.watch()),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        first = done.pop()
        error = None if first.cancelled() else first.exception()
        ended = sub.closed
        if isinstance(ended, SlowConsumer):
            code, reason = WS_POLICY, str(ended)
        elif isinstance(error, _Close):
            code, reason = error.code, error.reason
        elif isinstance(ended, FeedClosed):
            code, reason = WS_GOING_AWAY, "the server is shutting down"
        elif error is None or isinstance(error, WebSocketDisconnect | OSError):
            code = 0  # the client left: nothing to close
        else:
            log.error("websocket: connection of account %s failed", account, exc_info=error)
            code, reason = WS_INTERNAL, "internal error"
    except (WebSocketDisconnect, OSError):
        code = 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        feed.detach(sub)
        WEBSOCKET_CONNECTIONS.dec()
        label = "client_left" if not code else _REASONS.get(code, "error")
        WEBSOCKET_CLOSES.labels("slow_consumer" if isinstance(sub.closed, SlowConsumer) else label).inc()
    if code:
        await _close(socket, code, reason)


router = Router(path="/api/v1", route_handlers=[live], tags=["live"])

__all__ = ["MAX_ERRORS", "MAX_MESSAGE_BYTES", "MAX_TOPICS", "Op", "live", "router"]
