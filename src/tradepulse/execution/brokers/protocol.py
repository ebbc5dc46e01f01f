"""The broker protocol: what the engine needs from any venue, simulated, paper or real.

A broker takes batches of orders and cancels, answers queries by client order id, and streams execution
reports (FIX-style: every report carries the order's cumulative filled quantity, so that a missing or late fill
is detected rather than guessed). Brokers never decide anything about the ledger; the engine does.

Exceptions:

    BrokerError          the broker refused the call (it is known not to have acted on it)
     +-- BrokerTimeout   no answer in time: the broker may or may not have acted; the orders become UNKNOWN
                         until a query resolves them. Nothing is ever resent blindly.

Adapters implement :class:`Broker`; :mod:`tradepulse.execution.brokers.faults` wraps any of them to inject
timeouts, duplicated, reordered and late reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

import msgspec

from tradepulse.domain import Fill, Order, OrderStatus, RejectReason, Tick
from tradepulse.domain.money import ZERO


class BrokerError(Exception):
    """The broker refused a call; it did not act on it."""


class BrokerTimeout(BrokerError):
    """The broker did not answer in time; it may or may not have acted on the call."""


class ExecType(StrEnum):
    """What an execution report says happened."""

    NEW = "NEW"  # accepted (acknowledged) by the venue
    TRADE = "TRADE"  # a fill
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    #: the venue already had this client order id; the engine queries it instead of trusting the submit
    DUPLICATE = "DUPLICATE"


class VenueReport(msgspec.Struct, frozen=True, kw_only=True):
    """One execution report from a venue, with the order's cumulative filled quantity after it."""

    client_order_id: str
    exec_type: ExecType
    status: OrderStatus
    cum_quantity: Decimal = ZERO
    venue_order_id: str | None = None
    fill: Fill | None = None
    reason: RejectReason | None = None
    message: str = ""
    ts_ns: int = 0


class BrokerOrderState(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's full view of one order: status, every fill, and why it ended."""

    client_order_id: str
    status: OrderStatus
    quantity: Decimal
    cum_quantity: Decimal
    fills: tuple[Fill, ...] = ()
    venue_order_id: str | None = None
    reason: RejectReason | None = None
    message: str = ""


@runtime_checkable
class Broker(Protocol):
    """A venue. ``venue`` names it (e.g. ``sim:engine-1``); orders are reconciled with the venue that has them."""

    venue: str

    async def start(self) -> None:
        """Connect (or, for a simulated venue, recover its state) before the first call."""
        ...

    async def submit(self, orders: Sequence[Order]) -> None:
        """Send new orders; outcomes arrive as reports. Raise BrokerTimeout if unsure they arrived."""
        ...

    async def cancel(self, client_order_ids: Sequence[str]) -> None:
        """Ask to cancel open orders; outcomes arrive as reports (an unknown or closed order is ignored)."""
        ...

    async def query(self, client_order_id: str) -> BrokerOrderState | None:
        """Return the venue's state of one order, or None if the venue has never had it."""
        ...

    async def open_orders(self) -> list[BrokerOrderState]:
        """Return every order open at the venue (to find orders the ledger does not know)."""
        ...

    def reports(self) -> AsyncIterator[list[VenueReport]]:
        """Yield execution reports in batches, in the order the venue produced them, until closed."""
        ...

    def on_tick(self, tick: Tick) -> None:
        """Take market data (simulated venues trade against it; real brokers ignore it)."""
        ...

    async def close(self) -> None:
        """Stop producing reports and release resources (a simulated venue flushes its journal)."""
        ...


__all__ = [
    "Broker",
    "BrokerError",
    "BrokerOrderState",
    "BrokerTimeout",
    "ExecType",
    "VenueReport",
]
