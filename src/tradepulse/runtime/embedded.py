"""The embedded runtime: every component in one process on the in-process bus (or Redis when configured)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live

from tradepulse.bus import BusStats, make_transport
from tradepulse.clock import LIVE_CLOCK, Clock
from tradepulse.config import Settings
from tradepulse.runtime.component import Component, RuntimeContext
from tradepulse.runtime.components import COMPONENTS, ComponentFactory
from tradepulse.runtime.panel import RateMeter, render

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    seconds: float
    streams: dict[str, dict[str, int]]
    latency_ms: dict[str, dict[str, dict[str, float]]]
    components: dict[str, list[tuple[str, str]]]


class EmbeddedRuntime:
    """Start the components, show the panel, stop cleanly on SIGINT/SIGTERM or after ``duration`` seconds."""

    def __init__(
        self,
        settings: Settings,
        *,
        factories: list[ComponentFactory] | None = None,
        clock: Clock = LIVE_CLOCK,
        console: Console | None = None,
    ) -> None:
        self.settings = settings
        self.stats = BusStats()
        self.ctx = RuntimeContext(
            settings=settings, bus=make_transport(settings, self.stats), clock=clock, stats=self.stats
        )
        self.components: list[Component] = [
            c for c in (f(settings) for f in (COMPONENTS if factories is None else factories)) if c is not None
        ]
        self.console = console or Console()
        self._stop = asyncio.Event()
        self._started = 0.0

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        self._started = time.monotonic()
        await self.ctx.bus.ping()
        for component in self.components:
            await component.start(self.ctx)
            log.info("started %s", component.name)

    async def stop(self) -> None:
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %s failed", component.name)
        await self.ctx.cancel_tasks()
        await self.ctx.bus.close()

    async def run(self, duration: float | None = None, panel: bool = True) -> RunSummary:
        """Run until stopped (or for ``duration`` seconds) and return a summary."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        await self.start()
        rates = RateMeter(self.stats)
        refresh = 1.0 / self.settings.runtime.panel_refresh_hz
        deadline = None if duration is None else time.monotonic() + duration
        try:
            live = (
                Live(self._render(rates), console=self.console, auto_refresh=False, transient=False) if panel else None
            )
            with live if live is not None else contextlib.nullcontext():
                while not self._stop.is_set():
                    timeout = refresh if deadline is None else max(0.0, min(refresh, deadline - time.monotonic()))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout)
                    rates.update()
                    if live is not None:
                        live.update(self._render(rates), refresh=True)
                    if deadline is not None and time.monotonic() >= deadline:
                        break
        finally:
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return self.summary()

    def _render(self, rates: RateMeter):  # type: ignore[no-untyped-def]
        return render(
            title=f"tradepulse · embedded · bus={self.ctx.bus.name}",
            uptime_s=time.monotonic() - self._started,
            stats=self.stats,
            rates=rates,
            latency=self.ctx.latency,
            components=self.components,
        )

    def summary(self) -> RunSummary:
        streams: dict[str, dict[str, int]] = {}
        for (stream, op), n in self.stats.snapshot().items():
            streams.setdefault(stream, {})[op] = n
        latency = {
            pipeline: {
                stage: hist.percentiles_ms((50, 95, 99, 99.9))
                for stage, hist in [*rec.stages.items(), ("total", rec.total)]
            }
            for pipeline, rec in self.ctx.latency.items()
            if rec.total.count
        }
        return RunSummary(
            seconds=time.monotonic() - self._started,
            streams=streams,
            latency_ms=latency,
            components={c.name: c.panel_rows() for c in self.components},
        )
