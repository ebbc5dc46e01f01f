"""What every benchmark shares: the results file format, the PASS/FAIL summary, and open-loop pacing.

Results go to ``benchmarks/results/NAME.json`` in one shape (see ../DESIGN.md)::

    {"benchmark": "bus", "timestamp": "...Z", "git": "abc1234", "machine": {...}, "params": {...},
     "metrics": {"redis_one_way_p99_ms": {"value": 0.41, "unit": "ms", "target": 1.0, "pass": true}}}

Latency under load is measured open-loop: :func:`paced` starts request i at ``t0 + i / rate`` whether or not
earlier ones have finished, and hands each its *intended* start time, so a stall shows up as latency for every
request it delayed (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


@dataclass(frozen=True)
class Metric:
    """One reported figure. ``lower_is_better`` decides how it is compared with ``target`` (the issue's goal) and
    with ``seed`` (the original specification's target, where it names one: the floor)."""

    value: float
    unit: str
    target: float | None = None
    lower_is_better: bool = True
    label: str = ""
    seed: float | None = None

    def _meets(self, target: float | None) -> bool | None:
        if target is None:
            return None
        return self.value < target if self.lower_is_better else self.value > target

    @property
    def passed(self) -> bool | None:
        return self._meets(self.target)

    @property
    def seed_passed(self) -> bool | None:
        return self._meets(self.seed)

    def as_json(self) -> dict[str, Any]:
        out = {"value": round(self.value, 6), "unit": self.unit, "target": self.target, "pass": self.passed}
        if self.seed is not None:
            out |= {"seed_target": self.seed, "seed_pass": self.seed_passed}
        return out


def git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=RESULTS.parent
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=RESULTS.parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def write_results(
    name: str, params: dict[str, Any], metrics: dict[str, Metric], extra: dict[str, Any] | None = None
) -> Path:
    """Write ``benchmarks/results/NAME.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "benchmark": name,
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_rev(),
        "machine": machine_info(),
        "params": params,
        "metrics": {key: m.as_json() for key, m in metrics.items()},
    }
    if extra:
        doc["details"] = extra
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def print_summary(title: str, metrics: dict[str, Metric]) -> bool:
    """Print the figures as a table and the seed-style PASS/FAIL lines; return whether all targets passed."""
    table = Table(title=title)
    seeds = any(m.seed is not None for m in metrics.values())
    columns = ("metric", "value", "target", "result", *(("seed target", "seed") if seeds else ()))
    for column in columns:
        table.add_column(column, justify="left" if column == "metric" else "right")
    verdicts = {None: "", True: "[green]PASS[/green]", False: "[red]FAIL[/red]"}
    ok = True
    for key, m in metrics.items():
        op = "<" if m.lower_is_better else ">"
        target = "" if m.target is None else f"{op} {m.target:g} {m.unit}"
        row = [m.label or key, f"{m.value:,.3f} {m.unit}", target, verdicts[m.passed]]
        if seeds:
            row += ["" if m.seed is None else f"{op} {m.seed:g} {m.unit}", verdicts[m.seed_passed]]
        table.add_row(*row)
    console.print(table)
    for key, m in metrics.items():
        op = "<" if m.lower_is_better else ">"
        for goal, passed, kind in ((m.target, m.passed, "target"), (m.seed, m.seed_passed, "seed target")):
            if goal is None:
                continue
            mark = "✅ PASS" if passed else "❌ FAIL"
            console.print(f"{mark}: {m.label or key} {m.value:,.3f} {m.unit} {op} {goal:g} {m.unit} {kind}")
        if m.passed is not None:
            ok = ok and bool(m.passed)
    return ok


async def paced(
    rate: float,
    count: int,
    send: Callable[[int, int], Awaitable[None]],
    *,
    max_in_flight: int = 100_000,
    precise: bool = False,
) -> float:
    """Start ``send(i, intended_ns)`` for i in range(count) at a fixed ``rate`` per second, open-loop.

    ``intended_ns`` is the wall-clock (``time.time_ns``) time request i was *due*; measure latency from it.
    Event-loop timers have about 1 ms resolution, so a request can start up to ~1 ms late, and that lateness
    counts as latency. With ``precise`` the last stretch before each due time is slept with a blocking
    ``time.sleep`` (tens of microseconds late instead), which suits a process that only sends.
    Returns the achieved start rate. Waits for every request to finish.
    """
    interval_ns = int(1e9 / rate)
    start_wall = time.time_ns()
    start_mono = time.monotonic_ns()
    tasks: set[asyncio.Task[None]] = set()
    for i in range(count):
        due_mono = start_mono + i * interval_ns
        delay = (due_mono - time.monotonic_ns()) / 1e9
        if precise:
            if delay > 0.002:
                await asyncio.sleep(delay - 0.0015)
            delay = (due_mono - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)  # noqa: ASYNC251 - deliberate: sub-millisecond pacing accuracy
        elif delay > 0:
            await asyncio.sleep(delay)
        while len(tasks) >= max_in_flight:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.ensure_future(send(i, start_wall + i * interval_ns))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    elapsed = (time.monotonic_ns() - start_mono) / 1e9
    if tasks:
        await asyncio.gather(*tasks)
    return count / elapsed if elapsed > 0 else float("inf")
