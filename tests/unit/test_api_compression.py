"""gzip for API responses: Accept-Encoding parsing and the middleware over a plain ASGI app."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from tradepulse.api.compression import CompressedBody, GzipMiddleware, accepts_gzip, gzip_bytes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, deflate", False),
        ("*", True),
        ("*;q=0", False),
        ("br, *", True),
        ("gzip;q=0, *", False),  # an explicit gzip entry wins over the wildcard
        ("x-gzip", True),
        ("gzip;q=bogus", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def _app(chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        head = [(b"content-type", b"application/json")] + (headers or [])
        if len(chunks) == 1:
            head.append((b"content-length", str(len(chunks[0])).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": head})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})

    return app


async def _call(app: Any, accept: str | None) -> tuple[dict[str, str], bytes, list[dict[str, Any]]]:
    headers = [(b"accept-encoding", accept.encode())] if accept is not None else []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return head, body, sent


BIG = b'{"x": "' + b"abc" * 1_000 + b'"}'


async def test_large_body_is_gzipped_with_length_and_vary() -> None:
    head, body, _ = await _call(GzipMiddleware(_app([BIG]), minimum_size=1_024), "gzip")
    assert head["content-encoding"] == "gzip"
    assert head["vary"] == "Accept-Encoding"
    assert int(head["content-length"]) == len(body) < len(BIG)
    assert gzip.decompress(body) == BIG


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0"])
async def test_not_gzipped_for_a_client_that_does_not_accept_it(accept: str | None) -> None:
    head, body, _ = await _call(GzipMiddleware(_app([BIG]), minimum_size=1_024), accept)
    assert "content-encoding" not in head
    assert body == BIG


async def test_small_body_passes_as_it_is() -> None:
    head, body, _ = await _call(GzipMiddleware(_app([b"{}"]), minimum_size=1_024), "gzip")
    assert "content-encoding" not in head
    assert (body, head["content-length"]) == (b"{}", "2")


async def test_an_encoded_response_is_not_compressed_again() -> None:
    cached = CompressedBody(BIG)
    app = _app([cached.gzipped], headers=[(b"content-encoding", b"gzip")])
    head, body, _ = await _call(GzipMiddleware(app, minimum_size=1_024), "gzip")
    assert head["content-encoding"] == "gzip"
    assert body is cached.gzipped or body == cached.gzipped
    assert gzip.decompress(body) == BIG


async def test_a_stream_is_compressed_chunk_by_chunk() -> None:
    chunks = [b"a" * 10, b"b" * 5_000, b"c" * 3]
    head, body, sent = await _call(GzipMiddleware(_app(chunks), minimum_size=1_024), "gzip")
    assert head["content-encoding"] == "gzip"
    assert "content-length" not in head
    assert [m["more_body"] for m in sent[1:]] == [True, True, False]
    assert all(m["body"] for m in sent[1:-1])  # each chunk is flushed to the client as it comes
    assert gzip.decompress(body) == b"".join(chunks)


def test_compressed_body_is_compressed_once_and_deterministic() -> None:
    cached = CompressedBody(BIG)
    assert cached.gzipped is cached.gzipped
    assert cached.gzipped == gzip_bytes(BIG)
    assert gzip.decompress(cached.gzipped) == BIG
