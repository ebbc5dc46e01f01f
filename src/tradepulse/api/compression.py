"""gzip for responses: one ASGI middleware, and pre-compressed bodies for cached responses.

:class:`GzipMiddleware` compresses a response of at least ``minimum_size`` bytes for a client whose
``Accept-Encoding`` accepts gzip (``gzip;q=0`` does not; ``*`` does). A response that already carries a
``Content-Encoding`` passes untouched: a route serving a cached body sends the gzip bytes it compressed once
(:class:`CompressedBody`, :func:`encoded_response`) instead of having them compressed again on every request.
Every response that could be compressed says ``Vary: Accept-Encoding``, whichever form it was sent in.

It replaces Litestar's compression middleware, which matches ``gzip`` anywhere in the header (so
``gzip;q=0`` got gzip), always re-compressed, and cost a buffer and a ``GzipFile`` per request.
"""

from __future__ import annotations

import zlib
from typing import Any

from litestar import MediaType, Request, Response
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send

GZIP = "gzip"
_VARY = (b"vary", b"Accept-Encoding")


def accepts_gzip(header: str | None) -> bool:
    """Return whether an ``Accept-Encoding`` value accepts gzip (RFC 9110 12.5.3: an explicit ``q=0`` refuses)."""
    if not header:
        return False
    star: bool | None = None
    for item in header.lower().split(","):
        name, _, params = item.partition(";")
        name = name.strip()
        if name not in (GZIP, "x-gzip", "*"):
            continue
        allowed = True
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    allowed = float(value.strip()) > 0
                except ValueError:
                    allowed = False
        if name == "*":
            star = allowed
        else:
            return allowed
    return bool(star)


def _scope_accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return accepts_gzip(value.decode("latin-1"))
    return False


def gzip_bytes(body: bytes, level: int = 6) -> bytes:
    """Return ``body`` as one gzip member (mtime 0: the same body always gives the same bytes)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


class CompressedBody:
    """A cached response body with its gzip form, compressed once on first demand."""

    __slots__ = ("_gzipped", "body", "level")

    def __init__(self, body: bytes, level: int = 6) -> None:
        self.body = body
        self.level = level
        self._gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes:
        gzipped = self._gzipped
        if gzipped is None:
            gzipped = self._gzipped = gzip_bytes(self.body, self.level)
        return gzipped


def encoded_response(
    request: Request[Any, Any, Any], cached: CompressedBody, minimum_size: int, media_type: str = MediaType.JSON
) -> Response[bytes]:
    """Return ``cached`` as a response: its gzip bytes if the client accepts gzip and the body is large enough."""
    if len(cached.body) < minimum_size:
        return Response(cached.body, media_type=media_type)
    headers = {"Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.get("accept-encoding")):
        headers["Content-Encoding"] = GZIP
        return Response(cached.gzipped, media_type=media_type, headers=headers)
    return Response(cached.body, media_type=media_type, headers=headers)


def _body(data: bytes, more: bool) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": data, "more_body": more}


class GzipMiddleware:
    """gzip responses of at least ``minimum_size`` bytes for clients that accept it. See the module docstring."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1_024, level: int = 6) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.level = level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not _scope_accepts_gzip(scope):
            await self.app(scope, receive, send)
            return
        minimum = self.minimum_size
        level = self.level
        start: Any = None
        compressor: Any = None
        passthrough = False

        async def send_gzip(event: Message) -> None:
            nonlocal start, compressor, passthrough
            message: Any = event  # the start and body events of a response (their TypedDicts do not narrow)
            kind = message["type"]
            if kind == "http.response.start":
                headers = message.get("headers") or []
                if any(name.lower() == b"content-encoding" for name, _ in headers):
                    passthrough = True  # already encoded (a cached gzip body): as it is
                    await send(message)
                else:
                    start = message
                return
            if passthrough or start is None or kind != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if compressor is None:
                if not more and len(body) < minimum:  # small and complete: as it is
                    held, start = start, None
                    passthrough = True
                    await send(held)
                    await send(message)
                    return
                compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
                headers = [(n, v) for n, v in start.get("headers") or [] if n.lower() != b"content-length"]
                headers.append((b"content-encoding", b"gzip"))
                headers.append(_VARY)
                data = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
                if not more:
                    headers.append((b"content-length", str(len(data)).encode()))
                first: HTTPResponseStartEvent = {**start, "headers": headers}  # type: ignore[typeddict-item]
                await send(first)
                await send(_body(data, more))
                return
            # a stream's chunk reaches the client now (sync flush), the last one ends the member
            data = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
            await send(_body(data, more))

        await self.app(scope, receive, send_gzip)


__all__ = ["GZIP", "CompressedBody", "GzipMiddleware", "accepts_gzip", "encoded_response", "gzip_bytes"]
