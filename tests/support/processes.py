"""Engine processes for multi-process and kill tests: real ``tradepulse engine`` processes on a private Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tradepulse.bus import Transport
from tradepulse.bus.streams import TICKS
from tradepulse.domain import Tick
from tradepulse.execution.brokers.journal import JAccepted, JFill, VenueJournal
from tradepulse.portfolio.ledger import verify
from tradepulse.storage.ledger_store import LedgerStore


def engine_env(redis_url: str, database_url: str, schema: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPULSE_")}
    env.update(
        {
            "TRADEPULSE_REDIS_URL": redis_url,
            "TRADEPULSE_DATABASE_URL": database_url,
            "TRADEPULSE_DATABASE_SCHEMA": schema,
            "TRADEPULSE_DATABASE_POOL_MIN": "1",
            "TRADEPULSE_DATABASE_POOL_MAX": "4",
            "TRADEPULSE_MARKET_SYMBOLS": "AAA,BBB,CCC,DDD",
            "TRADEPULSE_VENUE_JOURNAL_DIR": str(tmp / "venue"),
            "TRADEPULSE_VENUE_MIN_LEVEL_LOTS": "1000000",
            "TRADEPULSE_BUS_BLOCK_MS": "100",
            "TRADEPULSE_BUS_CLAIM_IDLE_MS": "1000",
            "TRADEPULSE_BUS_CLAIM_INTERVAL_MS": "200",
            "TRADEPULSE_RISK_STARTING_CASH": "1000000000",
            "TRADEPULSE_RISK_MAX_POSITION": "100000000",
            "TRADEPULSE_RISK_MAX_GROSS_EXPOSURE": "100000000000",
            "TRADEPULSE_RISK_MAX_ORDERS_PER_S": "1000000",
            "TRADEPULSE_EXECUTION_UNKNOWN_GRACE_MS": "500",
            "TRADEPULSE_EXECUTION_RESOLVE_INTERVAL_MS": "100",
            "TRADEPULSE_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


@dataclass
class EngineProcess:
    """One ``tradepulse engine`` process."""

    name: str
    env: dict[str, str]
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, timeout: float = 30.0) -> None:
        self._close_pipe()
        self.starts += 1
        log = self.log_dir / f"{self.name}.{self.starts}.log"
        with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tradepulse.cli", "engine", "--name", self.name],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.process.stdout.fileno(), False)
        buffer = b""
        while b"READY" not in buffer:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"engine {self.name} did not start: see {log}")
            chunk = self.process.stdout.read()
            if chunk:
                buffer += chunk
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(10)
            self._close_pipe()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        self._close_pipe()
        return status

    def _close_pipe(self) -> None:
        if self.process is not None and self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextlib.asynccontextmanager
async def tick_feed(bus: Transport, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD")) -> AsyncIterator[None]:
    """Publish a steady quote for each symbol every 50 ms (engines follow ticks from the moment they start)."""

    async def run() -> None:
        while True:
            now = time.time_ns()
            await bus.publish_many(
                TICKS,
                [
                    Tick(
                        symbol=s, ts_ns=now, price=100.0, size=100.0, bid=99.99, ask=100.01, bid_size=100, ask_size=100
                    )
                    for s in symbols
                ],
            )
            await asyncio.sleep(0.05)

    task = asyncio.ensure_future(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@dataclass
class VenueRecord:
    accepted: dict[str, str] = field(default_factory=dict)  # coid -> venue journal
    fills: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # fill id -> (coid, qty)
    duplicates: list[str] = field(default_factory=list)


def read_journals(directory: Path) -> VenueRecord:
    out = VenueRecord()
    for path in sorted(directory.glob("*.journal")):
        for record in VenueJournal(path).replay():
            if isinstance(record, JAccepted):
                coid = record.order.client_order_id
                if coid in out.accepted:
                    out.duplicates.append(coid)
                out.accepted[coid] = path.name
            elif isinstance(record, JFill):
                out.fills[record.fill.fill_id] = (record.fill.client_order_id, record.fill.quantity)
    return out


async def check_invariants(store: LedgerStore, journal_dir: Path, submitted: set[str]) -> dict[str, int]:
    """Assert the fault-test invariants; return counts by status."""
    records = {r.order.client_order_id: r for r in await store.orders()}
    missing = submitted - set(records)
    assert not missing, f"{len(missing)} submitted orders have no ledger row: {sorted(missing)[:5]}"
    venue = read_journals(journal_dir)
    assert not venue.duplicates, f"orders accepted twice by venues: {venue.duplicates[:5]}"
    not_in_ledger = set(venue.accepted) - set(records)
    assert not not_in_ledger, f"orders executed without a ledger row: {sorted(not_in_ledger)[:5]}"
    for coid, journal in venue.accepted.items():
        assert records[coid].venue.replace(":", "-") + ".journal" == journal, f"{coid} executed at the wrong venue"
    booked = {f.fill_id: (f.client_order_id, f.quantity) for f in await store.fills()}
    assert booked == venue.fills, (
        f"ledger fills != venue fills: {len(set(booked) - set(venue.fills))} only booked, "
        f"{len(set(venue.fills) - set(booked))} only at the venue"
    )
    statuses: dict[str, int] = {}
    for record in records.values():
        status = record.order.status.value
        statuses[status] = statuses.get(status, 0) + 1
        assert status not in ("NEW", "UNKNOWN"), f"{record.order.client_order_id} still {status} after quiet"
    problems = await verify(store, "default")
    assert problems == [], problems
    return statuses
