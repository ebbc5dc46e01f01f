"""Emit ticks at a chosen pace: from the simulator, or replayed from a file, in real time or faster.

``speed`` is how many seconds of market time pass per second of wall time: 1 is real time, 10 ten times
faster, 0 as fast as the consumer takes them. Ticks are handed to ``emit`` in chunks (one step of the
simulator, or the ticks of a replay that fall due together); pacing sleeps until each chunk is due and, when
the consumer falls more than a second behind, skips ahead instead of bursting to catch up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from tradepulse.domain import Tick, TickBatch
from tradepulse.marketdata.simulator import MarketSimulator

Emit = Callable[[Sequence[Tick]], Awaitable[None]]


class Pacer:
    """Sleep so that market time advances ``speed`` times as fast as wall time (0: never sleep)."""

    def __init__(self, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.speed = speed
        self._wall0 = time.monotonic()

    async def wait_until(self, market_elapsed_s: float) -> None:
        """Return when ``market_elapsed_s`` of market time is due."""
        if self.speed == 0:
            await asyncio.sleep(0)
            return
        delay = self._wall0 + market_elapsed_s / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0:  # a stall: move the schedule instead of emitting a burst
            self._wall0 -= delay


async def simulate(
    sim: MarketSimulator,
    emit: Emit,
    *,
    tick_rate: float,
    start_ns: int,
    speed: float = 0.0,
    steps: int | None = None,
    chunk_steps: int = 1,
) -> int:
    """Run ``sim`` for ``steps`` steps of ``1 / tick_rate`` simulated seconds (forever if None).

    Each step gives one tick per symbol; ``chunk_steps`` steps are emitted together. Returns ticks emitted.
    """
    dt_s = 1.0 / tick_rate
    dt_ns = round(dt_s * 1e9)
    pacer = Pacer(speed)
    emitted = 0
    step = 0
    chunk: list[Tick] = []
    while steps is None or step < steps:
        chunk.extend(sim.step(start_ns + step * dt_ns, dt_s))
        step += 1
        if len(chunk) >= chunk_steps * len(sim.symbols) or step == steps:
            await pacer.wait_until(step * dt_s)
            await emit(chunk)
            emitted += len(chunk)
            chunk = []
    return emitted


async def replay(batch: TickBatch, emit: Emit, *, speed: float = 0.0, chunk: int = 1000) -> int:
    """Emit the ticks of ``batch`` in time order, paced by their own timestamps; return ticks emitted.

    At ``speed`` 0, chunks of ``chunk`` ticks go out back to back; otherwise ticks due within the same
    millisecond of wall time go together.
    """
    if not len(batch):
        return 0
    order = np.argsort(batch.ts_ns, kind="stable")
    ticks = batch.take(order).to_ticks()
    t0 = ticks[0].ts_ns
    pacer = Pacer(speed)
    emitted = 0
    i = 0
    while i < len(ticks):
        if speed == 0:
            j = min(len(ticks), i + chunk)
        else:
            horizon = ticks[i].ts_ns + int(1e6 * speed)  # what is due within the next wall millisecond
            j = i + 1
            while j < len(ticks) and j - i < chunk and ticks[j].ts_ns < horizon:
                j += 1
        await pacer.wait_until((ticks[i].ts_ns - t0) / 1e9)
        await emit(ticks[i:j])
        emitted += j - i
        i = j
    return emitted
