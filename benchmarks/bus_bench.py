"""Bus benchmark: one-way latency at a paced rate and maximum sustained throughput, for both transports.

    python -m benchmarks.bus_bench [--rate 1000] [--seconds 10] [--throughput-seconds 10] [--batch 500]

Latency (publish -> the consumer's handler receives) is measured open-loop: message i is due at
``t0 + i / rate`` and carries that intended wall-clock time; the consumer records ``now - intended`` into an HDR
histogram, so a publisher stall counts against every message it delayed. For Redis, the producer and the
consumer are separate processes (as in service mode) and use the platform's own transport and Consumer loop.

Throughput: a producer publishes batches as fast as the transport takes them while the consumer reads, decodes,
handles and acks in batches; the figure is messages handled per second over the measuring window, with the
backlog at the end reported so that a consumer falling behind is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
import uvloop

from benchmarks.common import Metric, console, print_summary, write_results
from tradepulse.bus import Consumer, Delivery, MemoryTransport, Transport, dead_letter_stream
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.config import BusConfig, RedisConfig
from tradepulse.domain import Tick
from tradepulse.observability.latency import LatencyHistogram

REDIS_URL = os.environ.get("TRADEPULSE_REDIS_URL", "redis://127.0.0.1:6379/0")
BUS = BusConfig(block_ms=1000, read_count=1000, claim_interval_ms=60_000)
WARMUP = 500


def _tick(intended_ns: int, i: int, measured: bool = True) -> Tick:
    return Tick(
        symbol="BENCH", ts_ns=intended_ns, price=100.0, size=float(i + 1) if measured else 0.0, bid=99.99, ask=100.01
    )


async def _wait_until(due_ns: int, *, spin: bool) -> None:
    """Wait until the monotonic time ``due_ns``: event-loop sleep for the bulk, then the last 1.5 ms precisely.

    Loop timers have ~1 ms granularity, which would otherwise be measured as bus latency. The last stretch either
    yield-spins with ``sleep(0)`` (``spin``: an in-process consumer on the same loop still gets its turn) or
    sleeps with a blocking ``time.sleep`` (a producer process that only publishes; it burns no CPU that the broker
    and the consumer need).
    """
    while True:
        remaining = (due_ns - time.monotonic_ns()) / 1e9
        if remaining <= 0:
            return
        if remaining > 0.002:
            await asyncio.sleep(remaining - 0.0015)
        elif spin:
            await asyncio.sleep(0)
        else:
            time.sleep(remaining)  # noqa: ASYNC251 - deliberate, see the docstring
            return


async def _paced_publish(transport: Transport, stream: str, rate: float, count: int, *, spin: bool) -> None:
    for i in range(WARMUP):
        await transport.publish(stream, _tick(time.time_ns(), i, measured=False))
    await asyncio.sleep(0.2)
    interval = int(1e9 / rate)
    start_mono, start_wall = time.monotonic_ns() + 10_000_000, time.time_ns() + 10_000_000
    for i in range(count):
        await _wait_until(start_mono + i * interval, spin=spin)
        await transport.publish(stream, _tick(start_wall + i * interval, i))


class _LatencySink:
    def __init__(self, expected: int) -> None:
        self.hist = LatencyHistogram()
        self.expected = expected
        self.done = asyncio.Event()

    async def __call__(self, batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        now = time.time_ns()
        for d in batch:
            tick = d.message
            if isinstance(tick, Tick) and tick.size > 0:  # warm-up messages have size 0 and are not measured
                self.hist.record_ns(now - tick.ts_ns)
        if self.hist.count >= self.expected:
            self.done.set()
        return None


# -- in-process transport -------------------------------------------------------------------------------------


async def memory_latency(rate: float, count: int) -> LatencyHistogram:
    transport = MemoryTransport()
    sink = _LatencySink(count)
    consumer = Consumer(transport, group="bench", name="c", streams=["bench"], handler=sink, config=BUS)
    consumer.start()
    await consumer.wait_started()
    await _paced_publish(transport, "bench", rate, count, spin=True)
    await asyncio.wait_for(sink.done.wait(), 30)
    await consumer.close()
    await transport.close()
    return sink.hist


async def memory_throughput(seconds: float, batch: int) -> dict[str, float]:
    transport = MemoryTransport()
    handled = 0

    async def handler(deliveries: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        nonlocal handled
        handled += len(deliveries)
        return None

    consumer = Consumer(transport, group="bench", name="c", streams=["bench"], handler=handler, config=BUS)
    consumer.start()
    await consumer.wait_started()
    messages = [_tick(0, i) for i in range(batch)]
    published = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await transport.publish_many("bench", messages)
        published += batch
        await asyncio.sleep(0)  # let the consumer take its turn: producer and consumer share one loop
    elapsed = time.perf_counter() - start
    await asyncio.sleep(0.2)
    await consumer.close()
    await transport.close()
    return {"handled_per_s": handled / elapsed, "published_per_s": published / elapsed, "backlog": published - handled}


# -- Redis transport: producer and consumer in separate processes -----------------------------------------------


def _redis_transport() -> RedisTransport:
    return RedisTransport.from_config(RedisConfig(url=REDIS_URL), BUS)


def _consumer_process(stream: str, mode: str, expected: int, ready: Any, results: Any, stop: Any) -> None:
    async def main() -> None:
        transport = _redis_transport()
        if mode == "latency":
            sink = _LatencySink(expected)
            consumer = Consumer(transport, group="bench", name="c", streams=[stream], handler=sink, config=BUS)
            consumer.start()
            await consumer.wait_started()
            ready.set()
            await asyncio.wait_for(sink.done.wait(), 120)
            await consumer.close()
            results.put({"hist": sink.hist.encode()})
        else:
            handled = 0
            first = last = 0.0

            async def handler(deliveries: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
                nonlocal handled, first, last
                now = time.perf_counter()
                if not first:
                    first = now
                handled += len(deliveries)
                last = now
                return None

            consumer = Consumer(transport, group="bench", name="c", streams=[stream], handler=handler, config=BUS)
            consumer.start()
            await consumer.wait_started()
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
            await consumer.close()
            results.put({"handled": handled, "seconds": last - first})
        await transport.close()

    uvloop.run(main())


def _producer_process(
    stream: str, mode: str, rate: float, count: int, seconds: float, batch: int, results: Any
) -> None:
    async def main() -> None:
        transport = _redis_transport()
        if mode == "latency":
            await _paced_publish(transport, stream, rate, count, spin=False)
            results.put({"published": count})
        else:
            messages = [_tick(0, i) for i in range(batch)]
            published = 0
            in_flight: set[asyncio.Future[list[str]]] = set()
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                # two batches in flight keep the pipeline full without unbounded buffering
                while len(in_flight) >= 2:
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    for f in done:
                        published += len(f.result())
                in_flight.add(asyncio.ensure_future(transport.publish_many(stream, messages)))
            for f in in_flight:
                published += len(await f)
            results.put({"published": published, "seconds": time.perf_counter() - start})
        await transport.close()

    uvloop.run(main())


def redis_run(mode: str, *, rate: float = 1000, count: int = 0, seconds: float = 0, batch: int = 500) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    stream = f"bench:bus:{uuid.uuid4().hex[:8]}"
    ready, stop = ctx.Event(), ctx.Event()
    consumer_results, producer_results = ctx.Queue(), ctx.Queue()
    consumer = ctx.Process(target=_consumer_process, args=(stream, mode, count, ready, consumer_results, stop))
    consumer.start()
    if not ready.wait(30):
        consumer.terminate()
        raise RuntimeError("the consumer process did not start")
    producer = ctx.Process(target=_producer_process, args=(stream, mode, rate, count, seconds, batch, producer_results))
    producer.start()
    produced = producer_results.get(timeout=seconds + count / max(rate, 1) + 120)
    producer.join(30)
    if mode == "throughput":
        backlog_deadline = time.monotonic() + 30
        while time.monotonic() < backlog_deadline:
            time.sleep(0.2)
            if _pending_and_lag(stream) == 0:
                break
        stop.set()
    consumed = consumer_results.get(timeout=120)
    consumer.join(30)
    _cleanup(stream)
    return {"producer": produced, "consumer": consumed}


def _pending_and_lag(stream: str) -> int:
    async def query() -> int:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            groups = await client.xinfo_groups(stream)
            return int(sum((g.get("lag") or 0) + g["pending"] for g in groups))
        finally:
            await client.aclose()

    return asyncio.run(query())


def _cleanup(stream: str) -> None:
    async def delete() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        await client.delete(stream, dead_letter_stream(stream))
        await client.aclose()

    asyncio.run(delete())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="paced publish rate for the latency runs (msg/s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--throughput-seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--batch", type=int, default=500, help="messages per publish batch in the throughput runs")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)

    console.print(f"[bold]in-process transport[/bold]: {count:,} messages at {args.rate:,.0f} msg/s ...")
    mem_hist = uvloop.run(memory_latency(args.rate, count))
    mem_tp = uvloop.run(memory_throughput(args.throughput_seconds, args.batch))
    console.print(f"[bold]Redis transport[/bold] ({REDIS_URL}), producer and consumer processes ...")
    latency = redis_run("latency", rate=args.rate, count=count)
    redis_hist = LatencyHistogram.decode(latency["consumer"]["hist"])
    tp = redis_run("throughput", seconds=args.throughput_seconds, batch=args.batch)
    redis_rate = tp["consumer"]["handled"] / max(tp["consumer"]["seconds"], 1e-9)
    produced_rate = tp["producer"]["published"] / tp["producer"]["seconds"]

    for name, hist in (("in-process", mem_hist), ("redis", redis_hist)):
        p = hist.percentiles_ms()
        console.print(
            f"{name:>10} one-way latency ({hist.count:,} samples): p50 {p['p50']:.3f} ms  p95 {p['p95']:.3f} ms  "
            f"p99 {p['p99']:.3f} ms  p99.9 {p['p99.9']:.3f} ms  max {hist.max_ms():.3f} ms"
        )
    console.print(
        f"in-process throughput: {mem_tp['handled_per_s']:,.0f} msg/s handled; redis throughput: "
        f"{redis_rate:,.0f} msg/s handled ({produced_rate:,.0f} msg/s published, batches of {args.batch})"
    )
    metrics = {
        "memory_one_way_p50_ms": Metric(mem_hist.percentile_ms(50), "ms"),
        "memory_one_way_p99_ms": Metric(mem_hist.percentile_ms(99), "ms", 0.1),
        "memory_max_msgs_per_s": Metric(mem_tp["handled_per_s"], "msg/s", lower_is_better=False),
        "redis_one_way_p50_ms": Metric(redis_hist.percentile_ms(50), "ms"),
        "redis_one_way_p95_ms": Metric(redis_hist.percentile_ms(95), "ms"),
        "redis_one_way_p99_ms": Metric(redis_hist.percentile_ms(99), "ms", 1.0),
        "redis_one_way_p999_ms": Metric(redis_hist.percentile_ms(99.9), "ms"),
        "redis_max_msgs_per_s": Metric(redis_rate, "msg/s", 50_000, lower_is_better=False),
    }
    ok = print_summary("bus benchmark", metrics)
    path = write_results(
        "bus",
        {
            "rate": args.rate,
            "seconds": args.seconds,
            "throughput_seconds": args.throughput_seconds,
            "batch": args.batch,
            "redis_url": REDIS_URL.rsplit("@", 1)[-1],
        },
        metrics,
        extra={
            "memory_latency_ms": mem_hist.percentiles_ms(),
            "redis_latency_ms": redis_hist.percentiles_ms(),
            "redis_published_per_s": produced_rate,
            "memory_published_per_s": mem_tp["published_per_s"],
        },
    )
    console.print(f"results: {path}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
