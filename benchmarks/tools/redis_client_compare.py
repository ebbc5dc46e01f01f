"""Compare the client CPU cost of redis-py versions on our bus's hot commands (how redis==5.2.1 was chosen).

Creates a throw-away virtual environment per version (with uv, in a temporary directory), then runs the same
measurement in each, alternating versions, against the Redis at TRADEPULSE_REDIS_URL (db 15, key ``rb``):
client CPU (process time) per single XADD, per pipelined XADD (pipelines of 1,000) and per message read and
acked with XREADGROUP/XACK (1,000 per call).

    .venv/bin/python -m benchmarks.tools.redis_client_compare --versions 5.2.1 8.1.0 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = r"""
import asyncio, os, time, redis, uvloop
from redis.asyncio import Redis
async def main():
    url = os.environ.get("TRADEPULSE_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/15"
    r = Redis.from_url(url)
    await r.delete("rb")
    payload = b"x" * 120
    cpu = time.process_time
    t0 = cpu()
    for _ in range(10000):
        await r.xadd("rb", {"d": payload})
    single = (cpu() - t0) / 10000 * 1e6
    t0 = cpu()
    for _ in range(100):
        p = r.pipeline(transaction=False)
        for _ in range(1000):
            p.xadd("rb", {"d": payload})
        await p.execute()
    piped = (cpu() - t0) / 100000 * 1e6
    await r.xgroup_create("rb", "g", id="0")
    t0 = cpu(); n = 0
    while True:
        res = await r.xreadgroup("g", "c", {"rb": ">"}, count=1000)
        if not res:
            break
        ids = [e[0] for e in res[0][1]]; n += len(ids)
        await r.xack("rb", "g", *ids)
    read = (cpu() - t0) / n * 1e6
    print(f"redis-py {redis.__version__:>6}: single XADD {single:6.1f} us  pipelined XADD {piped:5.2f} us  "
          f"read+ack {read:5.2f} us/msg  (client CPU)")
    await r.delete("rb"); await r.aclose()
uvloop.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", nargs="+", default=["5.2.1", "8.1.0"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    uv = Path(sys.executable).with_name("uv")
    with tempfile.TemporaryDirectory(prefix="redis-compare-") as tmp:
        pythons = {}
        for version in args.versions:
            venv = Path(tmp) / version
            subprocess.run([str(uv), "venv", "-q", str(venv), "--python", sys.executable], check=True)
            subprocess.run(
                [
                    str(uv),
                    "pip",
                    "install",
                    "-q",
                    "--python",
                    str(venv / "bin/python"),
                    f"redis=={version}",
                    "hiredis",
                    "uvloop",
                ],
                check=True,
            )
            pythons[version] = venv / "bin/python"
        for _ in range(args.rounds):
            for version in args.versions:
                subprocess.run([str(pythons[version]), "-c", MEASURE], check=True, env=os.environ.copy())


if __name__ == "__main__":
    main()
