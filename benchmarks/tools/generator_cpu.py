"""CPU per order of the order benchmark's load generator, alone: no engine, no PostgreSQL.

    .venv/bin/python -m benchmarks.tools.generator_cpu [--rates 1000,3000] [--seconds 10] [--repeat 2]
        [--impl benchmarks.execution_bench] [--impl other_module ...] [--py-spy out.txt]

The generator (``run_load`` of ``benchmarks.execution_bench``, through the transport and ``OrderClient`` that
``generator_client`` builds) runs in this process against a private redis-server; a stand-in engine in a
*separate* process (so its CPU does not count) reads the order streams and answers each order at once with what
the real engine publishes for a market order that fills: one ``ExecutionReport`` entry per read, carrying an
``OrderAccepted`` and an ``OrderFilled`` item with the stage stamps. Each run gets a fresh transport and client
(one left open would read, and decode, every report of the other runs) and a short warm-up; then it prints this
process's CPU per order over the run (pacing, submitting, reading the reports, recording the histograms) and the
latency percentiles, and at the end the median, mean, min and max per implementation and rate. On a 2-core VM
run-to-run noise is about +-10 %: compare medians of several runs.

``--impl`` names a module with ``run_load`` and ``OrderClient`` (and ``generator_client``, if it has one); the
implementations alternate run by run against the same Redis and stand-in engine. To compare with another
revision, put copies of it on PYTHONPATH, e.g.

    mkdir -p /tmp/old && git show REV:src/tradepulse/client.py > /tmp/old/old_client.py
    git show REV:benchmarks/execution_bench.py | sed 's/from tradepulse.client import/from old_client import/' \\
        > /tmp/old/old_bench.py
    PYTHONPATH=/tmp/old .venv/bin/python -m benchmarks.tools.generator_cpu --impl old_bench \\
        --impl benchmarks.execution_bench

``--py-spy FILE`` samples this process (non-blocking, raw collapsed stacks) during the last run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import uvloop

from benchmarks.execution_bench import PARTITIONS, redis_server
from benchmarks.stand_in import stand_in_engine
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.config import BusConfig, RedisConfig


async def serve(redis_url: str) -> int:
    """The stand-in engine process (``--engine REDIS_URL``): answer orders until killed."""
    bus = RedisTransport.from_config(RedisConfig(url=redis_url), BusConfig(block_ms=100))
    await stand_in_engine(bus, PARTITIONS, ready=lambda: print("READY", flush=True))
    return 0


class Generator:
    """One implementation under test: its module, run with a transport and client of its own each time (a client
    left open would read and decode every report of the other implementations' runs)."""

    def __init__(self, name: str, redis_url: str) -> None:
        self.name = name
        self.module: ModuleType = importlib.import_module(name)
        self.redis_url = redis_url

    async def run(self, rate: float, seconds: float, tag: str) -> tuple[float, str]:
        """Run ``rate`` orders/s for ``seconds``; return the CPU microseconds per order and a line about the run."""
        if hasattr(self.module, "generator_client"):  # what Generators and every worker process submit through
            bus, client = self.module.generator_client(self.redis_url)
        else:  # an older version: what its Generators built
            bus = RedisTransport.from_config(RedisConfig(url=self.redis_url), BusConfig(block_ms=100))
            client = self.module.OrderClient(bus, partitions=PARTITIONS, block_ms=100, record=False)
        await client.start()
        await self.module.run_load(client, 500, 0.5, f"{tag}-warmup")  # connections up, code paths warm
        t0, wall0 = os.times(), time.perf_counter()
        run = await self.module.run_load(client, rate, seconds, tag)
        t1, wall = os.times(), time.perf_counter() - wall0
        await client.close()
        await bus.close()
        user, system = t1.user - t0.user, t1.system - t0.system
        cpu = user + system
        lat = run.latency.percentiles_ms((50, 99, 99.9))
        n = run.sent
        return cpu * 1e6 / n, (
            f"{self.name:>24} {rate:>6,.0f}/s: {cpu * 1e6 / n:6.1f} us CPU per order (user {user * 1e6 / n:.0f}, "
            f"system {system * 1e6 / n:.0f}; {cpu / wall * 100:4.1f} % of a core), sent {run.achieved:,.0f}/s, "
            f"latency p50 {lat['p50']:.3f} p99 {lat['p99']:.3f} p99.9 {lat['p99.9']:.3f} "
            f"max {run.latency.max_ms():.3f} ms, filled {run.filled}/{n}, timeouts {run.timeouts}"
        )


def py_spy(out: str, seconds: float) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed; no profile")
        return None
    args = [spy, "record", "--pid", str(os.getpid()), "--duration", str(int(seconds))]
    args += ["--rate", "500", "--format", "raw", "--nonblocking", "-o", out]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def measure(args: argparse.Namespace, url: str) -> None:
    rates = [float(r) for r in args.rates.split(",")]
    generators = [Generator(name, url) for name in args.impl or ["benchmarks.execution_bench"]]
    cpu: dict[tuple[str, float], list[float]] = defaultdict(list)
    for k in range(args.repeat):
        for rate in rates:
            for g in generators if k % 2 == 0 else generators[::-1]:
                last = k == args.repeat - 1 and rate == rates[-1] and g is generators[-1]
                spy = py_spy(args.py_spy, args.seconds) if args.py_spy and last else None
                us, line = await g.run(rate, args.seconds, f"r{k}-{int(rate)}-{g.name}")
                cpu[(g.name, rate)].append(us)
                print(line, flush=True)
                if spy is not None:
                    await asyncio.to_thread(spy.wait, 30)
                await asyncio.sleep(0.5)
    print("\nCPU per order (us): median, mean, min, max of the runs")
    for (name, rate), values in cpu.items():
        print(
            f"{name:>24} {rate:>6,.0f}/s: {statistics.median(values):6.1f} {statistics.fmean(values):6.1f} "
            f"{min(values):6.1f} {max(values):6.1f} (n={len(values)})"
        )


def main(args: argparse.Namespace) -> None:
    with redis_server("no") as url:
        engine = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.tools.generator_cpu", "--engine", url], stdout=subprocess.PIPE
        )
        try:
            assert engine.stdout is not None
            if not engine.stdout.readline().startswith(b"READY"):
                raise SystemExit("the stand-in engine did not start")
            uvloop.run(measure(args, url))
        finally:
            engine.terminate()
            engine.wait(10)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="1000,3000", help="orders/s, comma-separated")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    p.add_argument("--repeat", type=int, default=2, help="runs per rate and implementation")
    p.add_argument("--impl", action="append", help="module with run_load and OrderClient (repeatable)")
    p.add_argument("--py-spy", default="", metavar="FILE", help="sample the last run with py-spy into FILE")
    p.add_argument("--engine", metavar="REDIS_URL", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.engine:
        sys.exit(uvloop.run(serve(arguments.engine)))
    main(arguments)
