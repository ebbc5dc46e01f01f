"""Runtime components for market data: the simulated feed and the latest-quote state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence

from tradepulse.bus import Consumer, Delivery
from tradepulse.bus.streams import TICKS
from tradepulse.domain import Tick, stamp
from tradepulse.marketdata.simulator import MarketSimulator
from tradepulse.runtime.component import RuntimeContext


class SimulatedFeed:
    """Publish simulated ticks for every configured symbol on the ``ticks`` stream.

    At ``speed`` 1 it runs in real time; at ``speed`` k, k simulated seconds pass per real second; at ``speed``
    0 it publishes as fast as the bus takes them. Ticks are stamped ``market`` when created.
    """

    name = "market"

    def __init__(self) -> None:
        self.published = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, ctx: RuntimeContext) -> None:
        cfg = ctx.settings.market
        self._sim = MarketSimulator(
            cfg.symbols, seed=cfg.seed, start_price=cfg.start_price, volatility=cfg.volatility, mode=cfg.mode
        )
        self._task = ctx.spawn(self._run(ctx), "market-feed")

    async def _run(self, ctx: RuntimeContext) -> None:
        cfg = ctx.settings.market
        dt_sim = 1.0 / cfg.tick_rate
        dt_ns = int(dt_sim * 1e9)
        sim_start_ns = ctx.clock.time_ns()
        started = time.monotonic()
        steps = 0
        while True:
            ts_ns = ctx.clock.time_ns() if cfg.speed == 1.0 else sim_start_ns + steps * dt_ns
            ticks = self._sim.step(ts_ns, dt_sim)
            # "market" marks when a tick leaves the market stage, i.e. now, after it was generated: the time the
            # simulator spends computing a step is not bus latency
            now = time.time_ns()
            await ctx.bus.publish_many(TICKS, [stamp(t, "market", now) for t in ticks])
            self.published += len(ticks)
            steps += 1
            if cfg.speed == 0:
                await asyncio.sleep(0)
                continue
            delay = started + steps * dt_sim / cfg.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:  # more than a second behind (a stall): skip ahead instead of bursting
                started -= delay

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def panel_rows(self) -> list[tuple[str, str]]:
        return [("ticks published", f"{self.published:,}")]


class MarketState:
    """Keep the latest tick of each symbol (the platform's view of the market) and time the tick path."""

    name = "market-state"

    def __init__(self) -> None:
        self.latest: dict[str, Tick] = {}
        self.received = 0
        self._consumer: Consumer | None = None

    async def start(self, ctx: RuntimeContext) -> None:
        recorder = ctx.stage_latency(TICKS)

        async def handle(batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
            now = time.time_ns()
            for delivery in batch:
                tick = delivery.message
                if isinstance(tick, Tick):
                    self.latest[tick.symbol] = tick
                    recorder.record(stamp(tick, "consume", now).stamps)
            self.received += len(batch)
            return None

        self._consumer = Consumer(
            ctx.bus,
            group="market-state",
            name="embedded",
            streams=[TICKS],
            handler=handle,
            config=ctx.settings.bus,
            group_start="$",
        )
        ctx.tasks.append(self._consumer.start())
        await self._consumer.wait_started()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.close()

    def panel_rows(self) -> list[tuple[str, str]]:
        return [("ticks received", f"{self.received:,}"), ("symbols quoted", str(len(self.latest)))]
