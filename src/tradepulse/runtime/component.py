"""What a part of the platform implements to run inside the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from tradepulse.bus import BusStats, Transport
from tradepulse.clock import Clock
from tradepulse.config import Settings
from tradepulse.observability.latency import StageLatency

log = logging.getLogger(__name__)


@dataclass
class RuntimeContext:
    """What every component gets: settings, the bus, the clock, and where to report what it measures."""

    settings: Settings
    bus: Transport
    clock: Clock
    stats: BusStats
    #: per-pipeline stage latency, keyed by pipeline name ("ticks", "orders", ...), shown by the panel
    latency: dict[str, StageLatency] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def stage_latency(self, pipeline: str) -> StageLatency:
        """Return (creating on first use) the stage latency recorder for ``pipeline``."""
        recorder = self.latency.get(pipeline)
        if recorder is None:
            recorder = self.latency[pipeline] = StageLatency()
        return recorder

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by the runtime; a crash is logged, and cancelled at shutdown."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self.tasks.append(task)
        return task

    async def cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s crashed", task.get_name(), exc_info=task.exception())


class Component(Protocol):
    """A part of the platform run by the runtime.

    ``start`` starts its background work (using ``ctx.spawn``) and returns; ``stop`` finishes in-flight work and
    returns. ``panel_rows`` returns (label, value) pairs for the live panel.
    """

    name: str

    async def start(self, ctx: RuntimeContext) -> None: ...

    async def stop(self) -> None: ...

    def panel_rows(self) -> list[tuple[str, str]]: ...
