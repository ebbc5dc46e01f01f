"""The live terminal panel: uptime, messages per second per stream, stage latency percentiles."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from tradepulse.bus import BusStats
from tradepulse.observability.latency import StageLatency
from tradepulse.runtime.component import Component


class RateMeter:
    """Per-stream message rates from successive snapshots of the bus counters."""

    def __init__(self, stats: BusStats) -> None:
        self._stats = stats
        self._last = stats.snapshot()
        self._last_t = time.monotonic()
        self.rates: dict[tuple[str, str], float] = {}

    def update(self) -> None:
        now = time.monotonic()
        snap = self._stats.snapshot()
        dt = max(now - self._last_t, 1e-6)
        self.rates = {key: (value - self._last.get(key, 0)) / dt for key, value in snap.items()}
        self._last, self._last_t = snap, now


def _fmt_uptime(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


def render(
    *,
    title: str,
    uptime_s: float,
    stats: BusStats,
    rates: RateMeter,
    latency: dict[str, StageLatency],
    components: Sequence[Component],
) -> Panel:
    """Return the panel for the current state."""
    streams = Table(title="streams", expand=True, title_justify="left")
    for column in ("stream", "published", "pub/s", "delivered/s", "acked", "dead"):
        streams.add_column(column, justify="left" if column == "stream" else "right")
    for stream in stats.streams():
        streams.add_row(
            stream,
            f"{stats.get(stream, 'published'):,}",
            f"{rates.rates.get((stream, 'published'), 0.0):,.0f}",
            f"{rates.rates.get((stream, 'delivered'), 0.0):,.0f}",
            f"{stats.get(stream, 'acked'):,}",
            f"{stats.get(stream, 'dead_lettered'):,}",
        )
    stages = Table(title="stage latency (ms)", expand=True, title_justify="left")
    for column in ("pipeline", "stage", "count", "p50", "p95", "p99", "max"):
        stages.add_column(column, justify="left" if column in ("pipeline", "stage") else "right")
    for pipeline, recorder in sorted(latency.items()):
        rows = [*recorder.stages.items()]
        if len(rows) > 1:
            rows.append(("total", recorder.total))
        for stage, hist in rows:
            p = hist.percentiles_ms((50, 95, 99))
            stages.add_row(
                pipeline,
                stage,
                f"{hist.count:,}",
                f"{p['p50']:.3f}",
                f"{p['p95']:.3f}",
                f"{p['p99']:.3f}",
                f"{hist.max_ms():.3f}",
            )
    parts = Table(title="components", expand=True, title_justify="left", show_header=False)
    parts.add_column("component")
    parts.add_column("what")
    parts.add_column("value", justify="right")
    for component in components:
        for label, value in component.panel_rows():
            parts.add_row(component.name, label, value)
    return Panel(Group(streams, stages, parts), title=f"{title} · up {_fmt_uptime(uptime_s)}")
