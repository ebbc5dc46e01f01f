"""Runtime components for execution: the engine (embedded: in-process bus, SQLite ledger, simulated venue) and an
optional demo order flow (``execution.demo_orders_per_s``) that trades through the real client."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from decimal import Decimal

from tradepulse.client import OrderClient, OrderTimeout
from tradepulse.domain import OrderType, Side, SubmitOrder, TimeInForce
from tradepulse.execution.brokers import make_broker
from tradepulse.execution.engine import ExecutionEngine
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.runtime.component import RuntimeContext
from tradepulse.storage import make_ledger_store


class ExecutionComponent:
    """The execution engine inside ``tradepulse run``; its panel rows show orders/s, fills and PnL."""

    name = "execution"

    def __init__(self) -> None:
        self.engine: ExecutionEngine | None = None
        self._last = (time.monotonic(), 0, 0)
        self._rates = (0.0, 0.0)

    async def start(self, ctx: RuntimeContext) -> None:
        settings = ctx.settings
        instruments = InstrumentRegistry.from_settings(settings)
        self.engine = ExecutionEngine(
            settings,
            ctx.bus,
            make_ledger_store(settings),
            make_broker(settings, instruments, ctx.clock),
            clock=ctx.clock,
            instruments=instruments,
            latency=ctx.stage_latency("orders"),
        )
        await self.engine.start()

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()

    def panel_rows(self) -> list[tuple[str, str]]:
        engine = self.engine
        if engine is None:
            return []
        now = time.monotonic()
        last_t, last_orders, last_fills = self._last
        orders, fills = engine.state.counters.received, engine.processor.counters.fills
        if now - last_t >= 1.0:
            self._rates = ((orders - last_orders) / (now - last_t), (fills - last_fills) / (now - last_t))
            self._last = (now, orders, fills)
        return [
            ("orders/s", f"{self._rates[0]:,.0f}"),
            ("fills/s", f"{self._rates[1]:,.0f}"),
            *engine.panel_rows(),
        ]


class DemoTrader:
    """Random small market orders at a fixed rate, through the order client, for the live panel."""

    name = "demo-trader"

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.submitted = 0
        self.completed = 0
        self.timeouts = 0
        self._client: OrderClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self, ctx: RuntimeContext) -> None:
        self._client = OrderClient(ctx.bus, partitions=ctx.settings.bus.order_partitions)
        await self._client.start()
        self._symbols = list(ctx.settings.market.symbols)
        self._task = ctx.spawn(self._run(ctx), "demo-trader")

    async def _run(self, ctx: RuntimeContext) -> None:
        rng = random.Random(ctx.settings.market.seed)  # noqa: S311 - a demo, not security
        interval = 1.0 / self.rate
        await asyncio.sleep(1.0)  # let the first ticks arrive
        n = 0
        next_at = time.monotonic()
        while True:
            n += 1
            cmd = SubmitOrder(
                client_order_id=f"demo-{ctx.clock.time_ns()}-{n}",
                symbol=rng.choice(self._symbols),
                side=rng.choice((Side.BUY, Side.SELL)),
                quantity=Decimal(rng.randint(1, 20)),
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                strategy_id="demo",
            )
            task = asyncio.ensure_future(self._one(cmd))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _one(self, cmd: SubmitOrder) -> None:
        assert self._client is not None
        self.submitted += 1
        try:
            await self._client.submit(cmd, timeout=5.0)
            self.completed += 1
        except OrderTimeout:
            self.timeouts += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        if self._client is not None:
            await self._client.close()

    def panel_rows(self) -> list[tuple[str, str]]:
        return [("submitted / done / timed out", f"{self.submitted:,} / {self.completed:,} / {self.timeouts:,}")]
