"""The order benchmark's load generator: the metronome, the open-loop pacer (every order once, measured from its
intended time, however late it goes out), and a short run against a stand-in engine on the in-process bus."""

from __future__ import annotations

import asyncio
import gc
import sys
import time

import pytest
from benchmarks.execution_bench import paced_by_timer, run_load
from benchmarks.metronome import Metronome
from benchmarks.stand_in import stand_in_engine

from tradepulse.bus import MemoryTransport
from tradepulse.client import OrderClient

MS = 1_000_000


@pytest.mark.parametrize("timerfd", [True, False], ids=["timerfd", "loop-timer"])
async def test_the_metronome_ticks_at_each_due_time_and_never_before(timerfd: bool) -> None:
    interval = 5 * MS
    start = time.monotonic_ns() + 20 * MS
    seen: list[tuple[int, int]] = []  # (first tick at or after due time k, k)
    done = asyncio.get_running_loop().create_future()

    def tick() -> None:
        now = time.monotonic_ns()
        k = (now - start) // interval
        if now >= start and (not seen or seen[-1][1] < k):
            seen.append((now, k))
        if k >= 9 and not done.done():
            done.set_result(None)

    with Metronome(start, interval, tick, timerfd=timerfd) as metronome:
        assert metronome.precise is (timerfd and sys.platform.startswith("linux"))
        await asyncio.wait_for(done, 2)
    assert not metronome.precise  # closed
    assert [k for _, k in seen] == list(range(10))
    late = [at - (start + k * interval) for at, k in seen]
    assert min(late) >= 0
    assert max(late) < 4 * MS  # generous: a loaded CI machine; on an idle one it is microseconds


async def test_the_metronome_wants_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_ns"):
        Metronome(0, 0, lambda: None)


async def test_paced_orders_go_out_once_each_in_order_and_keep_their_intended_times() -> None:
    rate, count = 2_000.0, 60
    start = time.time_ns() + 30 * MS
    calls: list[tuple[int, list[tuple[int, int]]]] = []

    async def send(due: list[tuple[int, int]]) -> None:
        calls.append((time.time_ns(), due))
        if len(calls) == 3:
            time.sleep(0.01)  # noqa: ASYNC251 - the loop is busy for 20 intervals: what came due goes out together

    achieved = await asyncio.wait_for(paced_by_timer(rate, count, send, start), 5)
    orders = [pair for _, due in calls for pair in due]
    assert [i for i, _ in orders] == list(range(count))
    assert [intended for _, intended in orders] == [start + i * 500_000 for i in range(count)]
    assert all(at >= intended - MS for at, due in calls for _, intended in due)  # never early (clock reads aside)
    assert max(len(due) for _, due in calls) >= 10
    assert 1_000 < achieved < 2_200


async def test_what_comes_due_during_a_slow_send_goes_out_without_waiting_for_it() -> None:
    rate, count = 1_000.0, 30
    start = time.time_ns() + 20 * MS
    calls: list[tuple[int, list[tuple[int, int]]]] = []

    async def send(due: list[tuple[int, int]]) -> None:
        calls.append((time.time_ns(), due))
        await asyncio.sleep(0.0105)  # a publish that takes ten intervals

    await asyncio.wait_for(paced_by_timer(rate, count, send, start), 5)
    orders = [pair for _, due in calls for pair in due]
    assert [i for i, _ in orders] == list(range(count))
    assert max(at - intended for at, due in calls for _, intended in due) < 5 * MS  # not 10 ms behind


async def test_an_error_in_send_ends_the_pacing() -> None:
    async def send(due: list[tuple[int, int]]) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(paced_by_timer(1_000.0, 10, send), 2)


async def test_a_short_run_measures_every_order() -> None:
    bus = MemoryTransport()
    engine = asyncio.get_running_loop().create_task(stand_in_engine(bus, 8))
    client = OrderClient(bus, partitions=8, block_ms=20, record=False)
    await client.start()
    try:
        run = await asyncio.wait_for(run_load(client, 2_000.0, 0.1, "unit"), 10)
    finally:
        gc.unfreeze()  # run_load freezes what is alive, as the benchmark wants; not in a test process
        await client.close()
        engine.cancel()
        await asyncio.gather(engine, return_exceptions=True)
        await bus.close()
    assert (run.sent, run.filled, run.timeouts) == (200, 200, 0)
    assert run.latency.count == 200
    assert run.stages.total.count == 200
    assert set(run.stages.stages) >= {"send", "submit", "receive"}
    assert client.in_flight == 0
