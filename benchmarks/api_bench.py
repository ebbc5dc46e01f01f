"""The API under a fixed arrival rate: GET /api/signals, GET a position, POST an order (through the engine with
the simulated exchange and the PostgreSQL ledger), with uvicorn and granian compared in one run.

    python -m benchmarks.api_bench [--seconds 5] [--rates 500,2000] [--server uvicorn,granian] [--workers 1]
                                   [--scenarios signals,position,order] [--profile]

For each server: start ``tradepulse api --server S --workers N`` as a subprocess (Redis bus, PostgreSQL), then for
each scenario and rate run :mod:`benchmarks.loadgen` in its own process (open loop, latency from each request's
intended send time, HDR histogram, aiohttp keep-alive pool) and collect p50/p95/p99/max and the error rate.
One engine process (``tradepulse engine``) executes the orders on the simulated exchange, a tick feed keeps its
quotes fresh, and a signal batch is published every ``--signal-interval`` seconds (each one invalidates the
signals cache, as live signals do).

It starts its own redis-server on a free port and its own database on the PostgreSQL at
TRADEPULSE_DATABASE_URL, and drops both at the end. The per-key rate limit is raised out of the way
(``--api-rate``): it is still checked on every request (one Redis round trip), but it must not answer 429 to the
load generator's single key. Results: benchmarks/results/api.json (headline metrics from ``--primary``, the
first server by default; every server's figures in ``details``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import Metric, console, print_summary, write_results
from benchmarks.execution_bench import (
    PARTITIONS,
    SYMBOLS,
    Engines,
    database,
    free_port,
    redis_server,
    start_engines,
    tick_feed,
)
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.bus.streams import SIGNALS
from tradepulse.config import BusConfig, DatabaseConfig, RedisConfig
from tradepulse.domain import Signal, SignalAction
from tradepulse.observability.latency import LatencyHistogram

SCENARIOS = ("signals", "position", "order")
LABELS = {"signals": "GET /api/signals", "position": "GET /api/v1/positions/{symbol}", "order": "POST /api/v1/orders"}


@dataclass
class Result:
    server: str
    scenario: str
    rate: float
    requests: int
    achieved: float
    errors: dict[str, int]
    samples: dict[str, str]
    latency: LatencyHistogram
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def row(self) -> dict[str, Any]:
        pct = self.latency.percentiles_ms((50, 95, 99, 99.9))
        return {
            "server": self.server,
            "scenario": self.scenario,
            "rate": self.rate,
            "achieved_rate": round(self.achieved, 1),
            "requests": self.requests,
            "errors": self.errors,
            "error_samples": self.samples,
            "p50_ms": pct["p50"],
            "p95_ms": pct["p95"],
            "p99_ms": pct["p99"],
            "p999_ms": pct["p99.9"],
            "max_ms": self.latency.max_ms(),
            "cpu_s": self.cpu,
        }


def server_env(redis_url: str, db_url: str, args: argparse.Namespace, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPULSE_")}
    env.update(
        {
            "TRADEPULSE_BUS_TRANSPORT": "redis",
            "TRADEPULSE_REDIS_URL": redis_url,
            "TRADEPULSE_DATABASE_BACKEND": "postgres",
            "TRADEPULSE_DATABASE_URL": db_url,
            "TRADEPULSE_DATABASE_POOL_MIN": "2",
            "TRADEPULSE_DATABASE_POOL_MAX": "8",
            "TRADEPULSE_MARKET_SYMBOLS": ",".join(SYMBOLS),
            "TRADEPULSE_BUS_ORDER_PARTITIONS": str(PARTITIONS),
            "TRADEPULSE_API_PORT": str(port),
            "TRADEPULSE_API_RATE_PER_S": str(args.api_rate),
            "TRADEPULSE_API_RATE_BURST": str(int(args.api_rate)),
            "TRADEPULSE_LOG_LEVEL": "WARNING",
        }
    )
    return env


@dataclass
class ApiServer:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def pids(self) -> list[int]:
        """Return the launcher and its worker processes (children)."""
        out = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            children = []
        return out + [int(c) for c in children]

    def cpu_seconds(self) -> float:
        """Return the CPU time (user + system) of the launcher and its workers so far."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


async def start_server(name: str, workers: int, env: dict[str, str], port: int, workdir: Path) -> ApiServer:
    log = workdir / f"api-{name}.log"
    cmd = [sys.executable, "-m", "tradepulse.cli", "api", "--server", name, "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220 - at once
    server = ApiServer(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the {name} server exited with {process.returncode}: see {log}")
            try:
                async with session.get(f"{server.url}/api/v1/ready") as r:
                    if r.status == 200:
                        return server
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise SystemExit(f"the {name} server did not become ready: see {log}")
            await asyncio.sleep(0.2)


async def loadgen(
    server: ApiServer, key: str, scenario: str, rate: float, seconds: float, tag: str, connections: int
) -> Result:
    cmd = [sys.executable, "-m", "benchmarks.loadgen", "--url", server.url, "--key", key, "--scenario", scenario]
    cmd += ["--rate", str(rate), "--seconds", str(seconds), "--tag", tag, "--connections", str(connections)]
    cpu0 = server.cpu_seconds()
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    cpu1 = server.cpu_seconds()
    if proc.returncode != 0:
        raise SystemExit(f"the load generator failed ({proc.returncode}) on {scenario} at {rate}/s")
    doc = json.loads(out.decode().strip().splitlines()[-1])
    return Result(
        server=server.name,
        scenario=scenario,
        rate=rate,
        requests=int(doc["requests"]),
        achieved=float(doc["achieved_rate"]),
        errors={k: int(v) for k, v in doc["errors"].items()},
        samples=doc["error_samples"],
        latency=LatencyHistogram.decode(doc["histogram"]),
        cpu={"server": round(cpu1 - cpu0, 3)},
    )


async def publish_signals(bus: RedisTransport, stop: asyncio.Event, interval: float) -> None:
    n = 0
    while not stop.is_set():
        now = time.time_ns()
        batch = [
            Signal(
                symbol=s,
                action=(SignalAction.BUY, SignalAction.HOLD, SignalAction.SELL)[(n + i) % 3],
                confidence=0.6 + 0.01 * ((n + i) % 30),
                model_version="bench",
                ts_ns=now,
            )
            for i, s in enumerate(SYMBOLS)
        ]
        await bus.publish_many(SIGNALS, batch)
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def create_key(db_url: str) -> str:
    from tradepulse.storage.keys import make_key_store

    store = make_key_store(DatabaseConfig(backend="postgres", url=db_url, pool_min=1, pool_max=2))
    await store.open()
    try:
        _, secret = await store.create(name="bench", account_id="default", scope="trade")
    finally:
        await store.close()
    return str(secret)


def profile(server: ApiServer, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        console.print("py-spy is not installed; no profile")
        return None
    cmd = [spy, "record", "--pid", str(server.process.pid), "--subprocesses", "--duration", str(int(seconds))]
    cmd += ["--rate", "200", "--format", "raw", "--nonblocking", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(raw: Path, n: int = 15) -> list[tuple[str, float, float]]:
    """Return the ``n`` hottest functions of a py-spy raw (collapsed) profile: (frame, self %, total %)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return []
    return [(frame, 100.0 * c / samples, 100.0 * total[frame] / samples) for frame, c in own.most_common(n)]


def print_table(results: list[Result]) -> None:
    from rich.table import Table

    table = Table(title="API latency from the intended send time (open loop)")
    for column in ("server", "route", "rate/s", "sent/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "cpu s"):
        table.add_column(column, justify="left" if column in ("server", "scenario") else "right")
    for r in results:
        row = r.row()
        table.add_row(
            r.server,
            r.scenario,
            f"{r.rate:,.0f}",
            f"{r.achieved:,.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['max_ms']:.1f}",
            f"{r.error_count}" + (f" {r.errors}" if r.errors else ""),
            f"{r.cpu.get('server', 0):.1f}",
        )
    console.print(table)


def machine_load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"load1": one, "load5": five, "load15": fifteen}


async def bench_server(
    name: str, args: argparse.Namespace, redis_url: str, db_url: str, key: str, workdir: Path
) -> tuple[list[Result], dict[str, Any]]:
    port = free_port()
    server = await start_server(name, args.workers, server_env(redis_url, db_url, args, port), port, workdir)
    results: list[Result] = []
    info: dict[str, Any] = {}
    try:
        for scenario in args.scenarios:  # warm up each route (imports, caches, pools) before measuring
            await loadgen(server, key, scenario, 200, 1.0, f"{name}-warm-{scenario}", args.connections)
        for scenario in args.scenarios:
            for rate in args.rates:
                tag = f"{name}-{scenario}-{int(rate)}-{int(time.time())}"
                spy = None
                if args.profile and name == args.primary and scenario == args.profile and rate == max(args.rates):
                    raw = workdir / f"profile-{name}-{scenario}.txt"
                    spy = profile(server, args.seconds, raw)
                    info["profile_file"] = str(Path.cwd() / raw.name)
                result = await loadgen(server, key, scenario, rate, args.seconds, tag, args.connections)
                if spy is not None:
                    spy.wait(60)
                    shutil.copy(raw, Path.cwd() / raw.name)
                    info["profile_top"] = [
                        {"frame": f, "self_pct": round(s, 1), "total_pct": round(t, 1)} for f, s, t in top_frames(raw)
                    ]
                results.append(result)
                row = result.row()
                console.print(
                    f"  {name:8} {LABELS[scenario]:32} {rate:>6,.0f}/s  p50 {row['p50_ms']:7.2f}  "
                    f"p95 {row['p95_ms']:7.2f}  p99 {row['p99_ms']:7.2f} ms  errors {result.error_count}"
                    + (f" {result.samples}" if result.samples else "")
                )
                await asyncio.sleep(0.5)
    finally:
        info["exit_code"] = server.stop()
    return results, info


def find(results: list[Result], server: str, scenario: str, rate: float) -> Result | None:
    for r in results:
        if (r.server, r.scenario, r.rate) == (server, scenario, rate):
            return r
    return None


def metrics_for(results: list[Result], args: argparse.Namespace) -> dict[str, Metric]:
    primary = args.primary
    metrics: dict[str, Metric] = {}
    signals_2000 = find(results, primary, "signals", 2000.0)
    if signals_2000 is not None:
        p = signals_2000.latency.percentiles_ms((95, 99))
        metrics["signals_p95_ms_2000rps"] = Metric(
            p["p95"], "ms", 5.0, label=f"GET /api/signals p95 @2000/s ({primary})"
        )
        metrics["signals_p99_ms_2000rps"] = Metric(p["p99"], "ms", label=f"GET /api/signals p99 @2000/s ({primary})")
    order_500 = find(results, primary, "order", 500.0)
    if order_500 is not None:
        metrics["post_order_p95_ms_500rps"] = Metric(
            order_500.latency.percentile_ms(95), "ms", 10.0, label=f"POST order -> 201 p95 @500/s ({primary})"
        )
    mine = [r for r in results if r.server == primary]
    requests = sum(r.requests for r in mine)
    errors = sum(r.error_count for r in mine)
    # "zero errors": below one in a million is zero for any run this benchmark makes (far fewer requests)
    metrics["error_rate"] = Metric(
        errors / requests if requests else 0.0, "ratio", 1e-6, label=f"error rate, all runs ({primary}; goal 0)"
    )
    if mine:
        worst = max(mine, key=lambda r: r.latency.percentile_ms(95))
        metrics["api_p95_ms"] = Metric(
            worst.latency.percentile_ms(95),
            "ms",
            50.0,
            label=f"API p95, worst route and rate ({primary}: {LABELS[worst.scenario]} @{worst.rate:,.0f}/s)",
        )
    for server in args.servers:
        if server == primary:
            continue
        other = find(results, server, "signals", 2000.0)
        if other is not None and signals_2000 is not None:
            ratio = other.latency.percentile_ms(95) / max(signals_2000.latency.percentile_ms(95), 1e-9)
            metrics[f"signals_p95_ratio_{server}_to_{primary}"] = Metric(
                ratio, "x", label=f"signals p95 @2000/s, {server} / {primary}"
            )
            metrics[f"signals_p95_ms_2000rps_{server}"] = Metric(
                other.latency.percentile_ms(95), "ms", 5.0, label=f"GET /api/signals p95 @2000/s ({server})"
            )
        other_order = find(results, server, "order", 500.0)
        if other_order is not None:
            metrics[f"post_order_p95_ms_500rps_{server}"] = Metric(
                other_order.latency.percentile_ms(95), "ms", 10.0, label=f"POST order -> 201 p95 @500/s ({server})"
            )
    return metrics


async def main(args: argparse.Namespace) -> int:
    server_url = os.environ.get("TRADEPULSE_DATABASE_URL", "postgresql://127.0.0.1:5432/postgres")
    workdir = Path(tempfile.mkdtemp(prefix="tp-bench-api-"))
    results: list[Result] = []
    details: dict[str, Any] = {"load_before": machine_load()}
    engines: Engines | None = None
    with redis_server("everysec") as redis_url:
        async with database(server_url) as db_url:
            bus = RedisTransport.from_config(RedisConfig(url=redis_url), BusConfig(block_ms=100))
            stop = asyncio.Event()
            feeds = [
                asyncio.ensure_future(tick_feed(bus, stop)),
                asyncio.ensure_future(publish_signals(bus, stop, args.signal_interval)),
            ]
            try:
                if "order" in args.scenarios:
                    engines = start_engines(1, redis_url, db_url, workdir, "api", 8)
                    await asyncio.sleep(1.0)  # first quotes
                key = await create_key(db_url)
                for name in args.servers:
                    console.print(f"[bold]{name}: {args.workers} worker(s)[/bold]")
                    server_results, info = await bench_server(name, args, redis_url, db_url, key, workdir)
                    results.extend(server_results)
                    details[name] = info
            finally:
                if engines is not None:
                    details["engine_exit_codes"] = await asyncio.to_thread(engines.stop)
                stop.set()
                await asyncio.gather(*feeds, return_exceptions=True)
                await bus.close()
    details["load_after"] = machine_load()
    details["runs"] = [r.row() for r in results]
    shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)
    if "profile_top" in details.get(args.primary, {}):
        console.print(f"[bold]py-spy: hottest frames in the {args.primary} server ({args.profile} scenario)[/bold]")
        for row in details[args.primary]["profile_top"]:
            console.print(f"  {row['self_pct']:5.1f}% self {row['total_pct']:5.1f}% total  {row['frame']}")
    params = {
        "seconds": args.seconds,
        "rates": args.rates,
        "servers": args.servers,
        "primary": args.primary,
        "workers": args.workers,
        "scenarios": args.scenarios,
        "connections": args.connections,
        "partitions": PARTITIONS,
        "symbols": len(SYMBOLS),
    }
    metrics = metrics_for(results, args)
    path = write_results("api", params, metrics, details)
    ok = print_summary("api: open-loop load -> Litestar -> Redis / PostgreSQL / engine", metrics)
    console.print(f"results: {path}")
    return 0 if ok else 1


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _names(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of {', '.join(choices)}")
        return names

    return parse


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    p.add_argument("--rates", type=_floats, default=[500.0, 2000.0], help="requests/s, comma-separated")
    p.add_argument("--server", dest="servers", type=_names(("uvicorn", "granian")), default=["uvicorn", "granian"])
    p.add_argument("--primary", choices=("uvicorn", "granian"), help="server of the headline metrics (first)")
    p.add_argument("--workers", type=int, default=1, help="API worker processes")
    p.add_argument("--scenarios", type=_names(SCENARIOS), default=list(SCENARIOS))
    p.add_argument("--connections", type=int, default=64, help="the load generator's keep-alive pool")
    p.add_argument("--signal-interval", type=float, default=1.0, help="seconds between signal batches")
    p.add_argument("--api-rate", type=float, default=1_000_000.0, help="the API's per-key rate limit during the run")
    p.add_argument(
        "--profile",
        nargs="?",
        const="signals",
        choices=SCENARIOS,
        help="py-spy the primary server during this scenario at the highest rate (default: signals)",
    )
    args = p.parse_args(argv)
    if args.primary is None:
        args.primary = args.servers[0]
    elif args.primary not in args.servers:
        p.error(f"--primary {args.primary} is not among --server {','.join(args.servers)}")
    return args


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main(parse())))
