"""Brokers: the protocol (:mod:`.protocol`) and the adapters, picked by :func:`make_broker` from settings.

* :class:`SimulatedExchange`: price-time-priority books fed by market data, with a durable journal.
* :class:`PaperBroker`: fills against the latest quotes with a slippage model.
* :class:`FaultyBroker`: wraps any broker to inject timeouts and duplicated, reordered or late reports.
"""

from __future__ import annotations

from pathlib import Path

from tradepulse.clock import LIVE_CLOCK, Clock
from tradepulse.config import Settings
from tradepulse.execution.brokers.faults import FaultyBroker
from tradepulse.execution.brokers.paper import PaperBroker
from tradepulse.execution.brokers.protocol import (
    Broker,
    BrokerError,
    BrokerOrderState,
    BrokerTimeout,
    ExecType,
    VenueReport,
)
from tradepulse.execution.brokers.simulated import SimulatedExchange
from tradepulse.execution.brokers.venue import VenueCore
from tradepulse.risk.instruments import InstrumentRegistry


def venue_name(settings: Settings) -> str:
    """Return the venue id of this engine's broker: orders are reconciled with the venue that holds them."""
    prefix = "sim" if settings.execution.broker == "simulated" else "paper"
    return f"{prefix}:{settings.execution.engine_name}"


def make_broker(settings: Settings, instruments: InstrumentRegistry, clock: Clock = LIVE_CLOCK) -> VenueCore:
    """Return the broker ``settings.execution.broker`` names, journaling under ``settings.venue.journal_dir``."""
    name = venue_name(settings)
    journal = None
    directory = settings.venue.journal_dir
    if directory == "auto":
        db = settings.database
        directory = str(Path(db.sqlite_path).parent / "venue") if db.backend == "sqlite" else "var/venue"
    if directory:
        journal = Path(directory) / f"{name.replace(':', '-')}.journal"
    cls = SimulatedExchange if settings.execution.broker == "simulated" else PaperBroker
    return cls(name, instruments, settings.venue, journal=journal, clock=clock)


__all__ = [
    "Broker",
    "BrokerError",
    "BrokerOrderState",
    "BrokerTimeout",
    "ExecType",
    "FaultyBroker",
    "PaperBroker",
    "SimulatedExchange",
    "VenueCore",
    "VenueReport",
    "make_broker",
    "venue_name",
]
