"""Open-loop HTTP load generator, run as its OWN process so it shares neither a core's GIL nor an event loop with
the server it measures.

    python -m benchmarks.loadgen --url http://127.0.0.1:8000 --key tp_... --scenario signals --rate 2000 --seconds 5

Requests start at a fixed arrival rate whatever the server does (a timer wakes the event loop when each one is
due, see :func:`benchmarks.execution_bench.paced_by_timer`), and each latency is measured from the
request's INTENDED start time into an HDR histogram, so a stall counts against every request it delayed (no
coordinated omission). One aiohttp session with a bounded pool of keep-alive connections sends them; a request
waiting for a free connection is still on the clock.

Scenarios (``--scenario``):

* ``signals``   GET /api/signals
* ``position``  GET /api/v1/positions/{symbol} (symbols in turn)
* ``order``     POST /api/v1/orders: a MARKET IOC order with a unique client order id, answered 201 with the
  order once the engine's terminal report is in

Prints one JSON line on stdout: requests, errors by kind, achieved rate, and the encoded histogram
(:meth:`tradepulse.observability.latency.LatencyHistogram.decode` reads it back).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from benchmarks.execution_bench import paced_by_timer
from tradepulse.observability.latency import LatencyHistogram

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "NFLX")
EXPECTED = {"signals": 200, "position": 200, "order": 201}


def plan(scenario: str, count: int, tag: str, seed: int) -> Callable[[int], tuple[str, str, bytes | None]]:
    """Return request i's (method, path, body) for ``scenario``."""
    rng = random.Random(seed)
    if scenario == "signals":
        return lambda i: ("GET", "/api/signals", None)
    if scenario == "position":
        return lambda i: ("GET", f"/api/v1/positions/{SYMBOLS[i % len(SYMBOLS)]}", None)
    if scenario == "order":
        orders = [
            json.dumps(
                {
                    "client_order_id": f"{tag}-{i}",
                    "symbol": rng.choice(SYMBOLS),
                    "side": rng.choice(("BUY", "SELL")),
                    "quantity": str(rng.randint(1, 100)),
                    "order_type": "MARKET",
                    "time_in_force": "IOC",
                }
            ).encode()
            for i in range(count)
        ]
        return lambda i: ("POST", "/api/v1/orders", orders[i])
    raise SystemExit(f"--scenario: unknown scenario {scenario!r} (signals, position, order)")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    count = max(1, int(args.rate * args.seconds))
    request = plan(args.scenario, count, args.tag, args.seed)
    expected = EXPECTED[args.scenario]
    latency = LatencyHistogram()
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    timeout_ns = int(args.timeout * 1e9)
    headers = {"X-API-Key": args.key, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.connections, keepalive_timeout=60, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(args.url, connector=connector, timeout=timeout, headers=headers) as session:

        async def one(i: int, intended_ns: int) -> None:
            method, path, body = request(i)
            try:
                async with session.request(method, path, data=body) as response:
                    payload = await response.read()
                    status = response.status
            except TimeoutError:
                latency.record_ns(timeout_ns)
                errors["timeout"] += 1
                return
            except aiohttp.ClientError as exc:
                latency.record_ns(time.time_ns() - intended_ns)
                kind = type(exc).__name__
                errors[kind] += 1
                samples.setdefault(kind, str(exc)[:300])
                return
            latency.record_ns(time.time_ns() - intended_ns)
            if status != expected:
                kind = f"http_{status}"
                errors[kind] += 1
                samples.setdefault(kind, payload[:300].decode(errors="replace"))

        tasks: set[asyncio.Task[None]] = set()

        async def send(due: list[tuple[int, int]]) -> None:  # each request on its own: a slow one delays none
            for i, intended_ns in due:
                task = asyncio.ensure_future(one(i, intended_ns))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        achieved = await paced_by_timer(args.rate, count, send)
        while tasks:
            await asyncio.gather(*list(tasks))
    return {
        "scenario": args.scenario,
        "rate": args.rate,
        "seconds": args.seconds,
        "requests": count,
        "achieved_rate": achieved,
        "errors": dict(errors),
        "error_samples": samples,
        "histogram": latency.encode(),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--key", required=True, help="API key (X-API-Key)")
    p.add_argument("--scenario", required=True, choices=sorted(EXPECTED))
    p.add_argument("--rate", type=float, required=True, help="requests per second (arrival rate)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=64, help="keep-alive connection pool size")
    p.add_argument("--timeout", type=float, default=10.0, help="a request slower than this is an error")
    p.add_argument("--tag", default="bench", help="client order id prefix (order scenario)")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import uvloop

    args = parse(argv)
    result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
