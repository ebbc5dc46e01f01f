"""What the parts of one engine share: its orders, its risk view, its counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from tradepulse.execution.tracking import RecentOrders, Tracked
from tradepulse.risk.book import AccountRisk, Marks


@dataclass(slots=True)
class EngineCounters:
    received: int = 0
    admitted: int = 0
    rejected: int = 0
    duplicates: int = 0
    refused_ledger_down: int = 0
    cancels: int = 0
    cancels_forwarded: int = 0
    #: orders forwarded to the engine admitting for their (contended) account, and of those, orders admitted
    #: here after all because the ledger did not have them within ``forward_timeout_ms``
    forwarded: int = 0
    forward_fallbacks: int = 0
    broker_timeouts: int = 0
    admission_retries: int = 0
    #: turns of admissions for accounts other engines trade too (decided on fresh state, in arrival order)
    contended_turns: int = 0
    #: of those, turns that were overtaken again and again and took the ledger's lock on their accounts
    locked_admissions: int = 0
    batches: int = 0
    lost: int = 0
    reconciled: int = 0
    orphans_at_venue: int = 0


@dataclass(slots=True)
class EngineState:
    """The engine's memory. Orders held at this engine's venue are authoritative here; the ledger follows."""

    name: str
    venue: str
    orders: dict[str, Tracked] = field(default_factory=dict)
    recent: RecentOrders = field(default_factory=lambda: RecentOrders(200_000))
    accounts: dict[str, AccountRisk] = field(default_factory=dict)
    marks: Marks = field(default_factory=Marks)
    #: orders to ask the venue about (UNKNOWN, held closes, duplicates) or to cancel again
    attention: set[str] = field(default_factory=set)
    #: client order ids whose admission may or may not have committed when the ledger went away
    ghosts: set[str] = field(default_factory=set)
    ledger_ok: bool = True
    counters: EngineCounters = field(default_factory=EngineCounters)
