"""Pacing and chunking of simulated and replayed ticks (no wall-clock assertions: speed 0 only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradepulse.domain import Tick, TickBatch
from tradepulse.marketdata.simulator import MarketSimulator
from tradepulse.marketdata.streaming import replay, simulate

T0 = 1_704_205_800_000_000_000


async def test_simulate_emits_whole_steps_with_evenly_spaced_times() -> None:
    chunks: list[list[Tick]] = []

    async def emit(ticks: Sequence[Tick]) -> None:
        chunks.append(list(ticks))

    sim = MarketSimulator(["A", "B"], seed=1)
    n = await simulate(sim, emit, tick_rate=4.0, start_ns=T0, speed=0, steps=10, chunk_steps=3)
    assert n == 20
    assert [len(c) for c in chunks] == [6, 6, 6, 2]
    times = sorted({t.ts_ns for c in chunks for t in c})
    assert times == [T0 + i * 250_000_000 for i in range(10)]


async def test_replay_emits_every_tick_in_time_order() -> None:
    rng = np.random.default_rng(2)
    ts = T0 + rng.integers(0, 10**9, 2500)
    batch = TickBatch.from_columns(["A"] * 2500, ts, np.full(2500, 10.0), np.ones(2500))
    got: list[int] = []

    async def emit(ticks: Sequence[Tick]) -> None:
        got.extend(t.ts_ns for t in ticks)

    assert await replay(batch, emit, speed=0, chunk=1000) == 2500
    assert got == sorted(ts.tolist())
