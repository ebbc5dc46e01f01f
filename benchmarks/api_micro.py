"""Per-request CPU of the API's layers: direct ASGI calls into the app (no server, no sockets, no client).

    python -m benchmarks.api_micro [--n 20000]

Builds the app over in-process services (memory bus, SQLite key store, in-process rate limiter) and times N
calls of each case in this process, best of 3 rounds, in microseconds per request: the figures are what the app
itself costs per request, the part a server worker's CPU per request cannot go below.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tradepulse.api.app import create_app
from tradepulse.api.services import open_services
from tradepulse.config import ApiConfig, DatabaseConfig, MLConfig, Settings
from tradepulse.domain import Signal, SignalAction

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "NFLX")


def scope_of(method: str, path: str, key: str, *, gzip: bool = True, query: bytes = b"") -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"x-api-key", key.encode()), (b"user-agent", b"micro")]
    if gzip:
        headers.append((b"accept-encoding", b"gzip, deflate"))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: Any, scope: dict[str, Any], body: bytes = b"") -> int:
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope, headers=list(scope["headers"]), state={}), receive, send)
    return status


async def timed(n: int, one: Callable[[], Awaitable[int]], expect: int) -> float:
    status = await one()
    if status != expect:
        raise SystemExit(f"expected {expect}, got {status}")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            await one()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tp-api-micro-"))
    settings = Settings(
        database=DatabaseConfig(backend="sqlite", sqlite_path=str(tmp / "db.sqlite")),
        ml=MLConfig(registry_dir=str(tmp / "models")),
        api=ApiConfig(rate_per_s=1e9, rate_burst=1_000_000_000, key_cache_s=3600),
    )
    async with open_services(settings) as services:
        _, key = await services.keys.create(name="micro", account_id="default", scope="trade")
        now = time.time_ns()
        for i, s in enumerate(SYMBOLS):
            services.signals.add(
                Signal(symbol=s, action=SignalAction.BUY, confidence=0.5 + i / 100, model_version="m", ts_ns=now)
            )
        app = create_app(services)
        cases: list[tuple[str, dict[str, Any], bytes, int]] = [
            ("GET /api/signals (gzip)", scope_of("GET", "/api/signals", key), b"", 200),
            ("GET /api/signals (identity)", scope_of("GET", "/api/signals", key, gzip=False), b"", 200),
            ("GET /api/v1/health (public)", scope_of("GET", "/api/v1/health", key), b"", 200),
            ("GET /api/signals, unknown query (422)", scope_of("GET", "/api/signals", key, query=b"x=1"), b"", 422),
            ("GET /api/v1/positions/AAPL", scope_of("GET", "/api/v1/positions/AAPL", key), b"", 200),
            (
                "POST /api/v1/orders, bad body (422)",
                scope_of("POST", "/api/v1/orders", key),
                b'{"client_order_id": "c1", "symbol": "AAPL", "side": "BUY", "quantity": "x"}',
                422,
            ),
        ]
        for label, scope, body, expect in cases:
            if args.only and args.only not in label:
                continue
            try:
                us = await timed(args.n, lambda s=scope, b=body: call(app, s, b), expect)  # type: ignore[misc]
            except SystemExit as exc:
                print(f"{label:45} skipped: {exc}")
                continue
            print(f"{label:45} {us:8.1f} us/request")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=5_000)
    p.add_argument("--only", default="")
    import uvloop

    uvloop.run(main(p.parse_args()))
