"""Client CPU per hot bus command: redis-py (configured as the transport configures its pool) against the lean
connections of :mod:`tradepulse.bus.resp`, alternating, against the Redis at TRADEPULSE_REDIS_URL (key ``rhp``).

    .venv/bin/python -m benchmarks.tools.redis_hot_path [--calls 5000] [--rounds 2]

One call at a time (what the engine and the order client do at low load): a single XADD, and an XADD + XACK
written together. Prints microseconds of process CPU per call and the ratio.
"""

from __future__ import annotations

import argparse
import os
import time

import redis.asyncio as aioredis
import uvloop

from tradepulse.bus.resp import FastRedis
from tradepulse.config import RedisConfig

KEY = "rhp"
PAYLOAD = b"x" * 160


async def redis_py(r: aioredis.Redis, calls: int) -> tuple[float, float]:
    cpu = time.process_time
    t0 = cpu()
    for _ in range(calls):
        await r.xadd(KEY, {b"d": PAYLOAD})
    single = (cpu() - t0) * 1e6 / calls
    t0 = cpu()
    for _ in range(calls):
        pipe = r.pipeline(transaction=False)
        pipe.xadd(KEY, {b"d": PAYLOAD})
        pipe.xack(KEY, "g", "0-1")
        await pipe.execute()
    return single, (cpu() - t0) * 1e6 / calls


async def lean(fast: FastRedis, calls: int) -> tuple[float, float]:
    cpu = time.process_time
    t0 = cpu()
    for _ in range(calls):
        await fast.execute([(b"XADD", KEY, b"*", b"d", PAYLOAD)])
    single = (cpu() - t0) * 1e6 / calls
    t0 = cpu()
    for _ in range(calls):
        await fast.execute([(b"XADD", KEY, b"*", b"d", PAYLOAD), (b"XACK", KEY, b"g", b"0-1")])
    return single, (cpu() - t0) * 1e6 / calls


async def main(args: argparse.Namespace) -> None:
    url = os.environ.get("TRADEPULSE_REDIS_URL", "redis://127.0.0.1:6379/0")
    cfg = RedisConfig(url=url)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=cfg.max_connections,
        socket_timeout=cfg.socket_timeout_s,
        socket_connect_timeout=cfg.connect_timeout_s,
    )
    r = aioredis.Redis(connection_pool=pool)
    fast = FastRedis.from_connection_kwargs(pool.connection_kwargs)
    try:
        for _ in range(args.rounds):
            a = await redis_py(r, args.calls)
            b = await lean(fast, args.calls)
            await r.delete(KEY)
            print(
                f"XADD: redis-py {a[0]:.1f} us, lean {b[0]:.1f} us ({a[0] / b[0]:.2f}x); "
                f"XADD+XACK: redis-py {a[1]:.1f} us, lean {b[1]:.1f} us ({a[1] / b[1]:.2f}x) client CPU per call"
            )
    finally:
        await r.delete(KEY)
        await r.aclose()
        await fast.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=5_000)
    p.add_argument("--rounds", type=int, default=2)
    uvloop.run(main(p.parse_args()))
