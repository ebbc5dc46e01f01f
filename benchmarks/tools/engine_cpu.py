"""Engine CPU per order, in process: the engine's own work without the load generator, Redis or pacing.

    python -m benchmarks.tools.engine_cpu [--orders 20000] [--batch 500] [--profile out.prof] [--redis]

One engine (simulated exchange, PostgreSQL ledger in a private database on TRADEPULSE_DATABASE_URL) on the
in-process bus (or a private redis-server with ``--redis``); market orders are published in batches of
``--batch`` and the run ends when every order is terminal and booked. Prints CPU microseconds per order
(process time, so other load on the machine does not count) and orders/s of wall time. ``--profile`` writes
a cProfile file of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import msgspec

from benchmarks.execution_bench import database, redis_server
from tradepulse.bus import MemoryTransport, Transport
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.bus.streams import TICKS, order_stream
from tradepulse.config import (
    BusConfig,
    DatabaseConfig,
    ExecutionConfig,
    MarketConfig,
    RedisConfig,
    RiskConfig,
    Settings,
    VenueConfig,
)
from tradepulse.domain import OrderType, Side, SubmitOrder, Tick, TimeInForce
from tradepulse.execution.brokers import make_broker
from tradepulse.execution.engine import ExecutionEngine
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.storage.ledger_postgres import PostgresLedgerStore

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "NFLX")


async def run(args: argparse.Namespace) -> None:
    if args.redis:
        with redis_server("no") as url:
            await _run(args, url)
    else:
        await _run(args, "")


async def _run(args: argparse.Namespace, redis_url: str) -> None:
    server_url = os.environ.get("TRADEPULSE_DATABASE_URL", "postgresql://127.0.0.1:5432/postgres")
    tmp = Path(tempfile.mkdtemp(prefix="tp-engine-cpu-"))
    async with database(server_url) as db_url:
        settings = Settings(
            bus=BusConfig(block_ms=50, order_partitions=8, read_count=args.batch),
            redis=RedisConfig(url=redis_url or "redis://127.0.0.1:6379/0"),
            database=DatabaseConfig(backend="postgres", url=db_url, pool_min=2, pool_max=6),
            market=MarketConfig(symbols=SYMBOLS),
            risk=RiskConfig(
                starting_cash=Decimal(10**11),
                max_position=Decimal(10**9),
                max_gross_exposure=Decimal(10**12),
                max_order_notional=Decimal(10**9),
                max_orders_per_s=10**7,
            ),
            venue=VenueConfig(journal_dir=str(tmp / "venue"), min_level_lots=10_000_000),
            execution=ExecutionConfig(engine_name="cpu-1", max_batch=args.batch),
        )
        bus: Transport = RedisTransport.from_config(settings.redis, settings.bus) if redis_url else MemoryTransport()
        instruments = InstrumentRegistry.from_settings(settings)
        engines = []
        for n in range(1, args.engines + 1):  # several engines on one account share the process (and its CPU)
            own = msgspec.structs.replace(
                settings,
                execution=msgspec.structs.replace(settings.execution, engine_name=f"cpu-{n}"),
                venue=msgspec.structs.replace(settings.venue, journal_dir=str(tmp / f"venue-{n}")),
            )
            engines.append(ExecutionEngine(own, bus, PostgresLedgerStore(own.database), make_broker(own, instruments)))
        for e in engines:
            await e.start()

        def terminal() -> int:
            return sum(e.terminal for e in engines)

        def busy() -> bool:
            return any(e.booker.backlog or e.publisher.backlog for e in engines)

        now = time.time_ns()
        await bus.publish_many(
            TICKS,
            [
                Tick(symbol=s, ts_ns=now, price=100.01, size=100, bid=99.99, ask=100.01, bid_size=100, ask_size=100)
                for s in SYMBOLS
            ],
        )
        await asyncio.sleep(0.3)
        orders = [
            SubmitOrder(
                client_order_id=f"cpu-{i}",
                symbol=SYMBOLS[i % len(SYMBOLS)],
                side=Side.BUY if i % 3 else Side.SELL,
                quantity=Decimal(1 + i % 97),
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                strategy_id="bench",
            )
            for i in range(args.orders)
        ]
        freezer = None
        if args.gc_freeze_ms:
            from tradepulse.execution.gcpolicy import freeze_now, freeze_survivors

            freeze_now()
            freezer = asyncio.get_running_loop().create_task(freeze_survivors(args.gc_freeze_ms / 1000))
        gc_time = [0.0, 0.0]

        def gc_clock(phase: str, info: dict[str, int]) -> None:
            gc_time[phase == "stop"] += time.perf_counter() * (1 if phase == "stop" else -1)

        gc.callbacks.append(gc_clock)
        lags: list[float] = []

        async def lag_monitor() -> None:  # how long the event loop was busy when a 1 ms timer was due
            while True:
                due = time.perf_counter() + 0.001
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - due)

        monitor = asyncio.get_running_loop().create_task(lag_monitor())
        profiler = cProfile.Profile() if args.profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for start in range(0, len(orders), args.batch):
            chunk = orders[start : start + args.batch]
            by_stream: dict[str, list[SubmitOrder]] = {}
            for o in chunk:
                by_stream.setdefault(order_stream(o.symbol, 8), []).append(o)
            for stream, msgs in by_stream.items():
                await bus.publish_many(stream, msgs)
            while terminal() < start - 4 * args.batch:  # noqa: ASYNC110 - keep a few batches waiting
                await asyncio.sleep(0.001)
        while terminal() < len(orders) or busy():  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        gc.callbacks.remove(gc_clock)
        monitor.cancel()
        lags.sort()
        lag_p99, lag_max = (lags[int(len(lags) * 0.99)], lags[-1]) if lags else (0.0, 0.0)
        if freezer is not None:
            freezer.cancel()
        counters = [e.state.counters for e in engines]
        print(
            f"{len(orders)} orders in batches of {args.batch}, {len(engines)} engine(s): "
            f"{cpu * 1e6 / len(orders):.1f} us CPU per order, {len(orders) / wall:,.0f} orders/s wall; "
            f"admission statements {sum(e.admission.writer.statements for e in engines)}, "
            f"conflicts {sum(c.admission_retries for c in counters)}, "
            f"locked turns {sum(getattr(c, 'locked_admissions', 0) for c in counters)}; "
            f"{(gc_time[0] + gc_time[1]) * 1e3:.0f} ms in the GC; event loop lag p99 {lag_p99 * 1e3:.1f} ms, "
            f"max {lag_max * 1e3:.1f} ms"
        )
        if args.objects:
            gc.unfreeze()
            print(f"unreachable objects a full collection finds now: {gc.collect():,}")
            counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
            print(f"GC-tracked objects: {sum(counts.values()):,}; most common: {counts.most_common(8)}")
        for e in engines:
            await e.stop()
        await bus.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--engines", type=int, default=1, help="engines sharing the account, in this process")
    p.add_argument("--profile", default="", help="write a cProfile of the run here")
    p.add_argument("--gc-freeze-ms", type=float, default=0, help="freeze GC survivors this often (0 = never)")
    p.add_argument("--objects", action="store_true", help="count the GC-tracked objects left after the run")
    p.add_argument("--redis", action="store_true", help="a private redis-server instead of the in-process bus")
    import uvloop

    uvloop.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
