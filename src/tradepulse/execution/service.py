"""Run the execution engine as a service (``tradepulse engine``): Redis bus, PostgreSQL ledger by default.

SIGTERM or SIGINT stops consuming, lets in-flight work finish (venue answers, reports, bookings) within
``execution.drain_timeout_s``, and exits 0. A kill -9 loses nothing: on the next start the engine reads its own
pending entries, claims what dead group members left after ``bus.claim_idle_ms``, and reconciles its open
orders with the venue by client order id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time

from prometheus_client import REGISTRY

from tradepulse.bus import Transport, make_transport
from tradepulse.config import Settings
from tradepulse.execution.brokers import make_broker
from tradepulse.execution.engine import ExecutionEngine
from tradepulse.execution.gcpolicy import freeze_now, freeze_survivors
from tradepulse.execution.metrics import EngineCollector
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.storage import make_ledger_store

log = logging.getLogger(__name__)


async def run_engine(settings: Settings, *, duration: float | None = None, ready_line: bool = True) -> int:
    """Run one engine until SIGTERM/SIGINT (or ``duration`` seconds); return the exit status."""
    bus = make_transport(settings)
    store = make_ledger_store(settings)
    instruments = InstrumentRegistry.from_settings(settings)
    broker = make_broker(settings, instruments)
    engine = ExecutionEngine(settings, bus, store, broker, instruments=instruments)
    collector = EngineCollector(engine)
    REGISTRY.register(collector)  # its counters on /metrics, read at scrape time
    try:
        return await _serve(settings, engine, bus, broker.venue, duration, ready_line)
    finally:
        REGISTRY.unregister(collector)


async def _serve(
    settings: Settings,
    engine: ExecutionEngine,
    bus: Transport,
    venue: str,
    duration: float | None,
    ready_line: bool,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(engine.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        # a stop while starting (Redis or PostgreSQL not answering yet: the engine keeps retrying) ends the start
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starting
        with contextlib.suppress(Exception):
            await engine.stop()
        await bus.close()
        log.warning("engine %s stopped before it had started", settings.execution.engine_name)
        return 0
    if starting.exception() is not None:
        await bus.close()
        starting.result()  # raises it
    freezer: asyncio.Task[None] | None = None
    if settings.execution.gc_freeze_ms:
        freeze_now()
        freezer = loop.create_task(freeze_survivors(settings.execution.gc_freeze_ms / 1000.0), name="gc-freeze")
    if ready_line:
        print(f"READY {settings.execution.engine_name} {venue}", flush=True)
    started = time.monotonic()
    last_report = started
    try:
        while not stop.is_set():
            timeout = 1.0 if duration is None else max(0.0, min(1.0, started + duration - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
            if duration is not None and time.monotonic() - started >= duration:
                break
            if time.monotonic() - last_report >= 10.0:
                last_report = time.monotonic()
                log.info("%s", ", ".join(f"{k}: {v}" for k, v in engine.panel_rows()))
    finally:
        if freezer is not None:
            freezer.cancel()
        drained = await engine.stop()
        await bus.close()
    log.info("engine %s exiting (%s)", settings.execution.engine_name, "clean" if drained else "drain timed out")
    return 0


def main(settings: Settings) -> None:
    """Entry point used by the CLI."""
    import uvloop

    sys.exit(uvloop.run(run_engine(settings)))
