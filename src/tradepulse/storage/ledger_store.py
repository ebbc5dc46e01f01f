"""The ledger store protocol: what the execution engine and the portfolio need from a database.

Two implementations (:mod:`tradepulse.storage.ledger_postgres`, :mod:`tradepulse.storage.ledger_sqlite`) keep
the same contract, checked by one test suite against both (tests/integration/test_ledger_contract.py).

The two writes, and why they look like this:

* :meth:`LedgerStore.admit` writes new orders *before* they can execute, with their reservations, in one
  atomic statement; it succeeds only if each account's last admission is still the one the engine's decision
  followed (its (seq, token)); it then records itself as the last one (seq + 1, a new unique token). Another
  engine admitting for the same account in between makes it fail, and the engine re-reads the account and
  decides again, so risk checks across engines are serialized without holding a lock across round trips; one
  engine can keep several admissions in flight, each naming the one before it. A client order id already in the
  ledger is not inserted again (it is reported back as a duplicate).
* :meth:`LedgerStore.admission_lock` is the same admission for accounts that several engines keep changing: it
  locks the accounts' admission rows for one transaction and hands over their committed state, so the engine
  decides on fresh state and its admission cannot be overtaken (no retries; the engines take turns). Engines
  use it only after a few overtaken admissions in a row: an admission asked for ``fresh`` state brings back the
  accounts' state when it fails, so the engine can decide again without holding a lock across round trips.
* :meth:`LedgerStore.booking` opens a transaction that locks the accounts it books for, hands over their
  current cash and positions, and writes fills (each ``fill_id`` exactly once: a second booking of one raises
  :class:`DuplicateFill`), order states, positions and cash together.

Exceptions:

    LedgerError
     +-- LedgerUnavailable    the database cannot be reached: fail closed (refuse new orders, retry bookings)
     +-- DuplicateFill        a fill id is already booked; nothing of that booking was written
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Protocol

import msgspec

from tradepulse.domain import Fill, Order, Position, TradingState
from tradepulse.domain.money import ZERO
from tradepulse.storage.ledger_pages import FillQuery, OrderQuery


class LedgerError(Exception):
    """Base of ledger store errors."""


class LedgerUnavailable(LedgerError):
    """The database cannot be reached (or failed mid-way; nothing of the failed call was committed)."""


class DuplicateFill(LedgerError):
    """A fill id in a booking is already booked; the booking was rolled back."""

    def __init__(self, fill_ids: Sequence[str]) -> None:
        super().__init__(f"fills already booked: {', '.join(fill_ids[:5])}{' ...' if len(fill_ids) > 5 else ''}")
        self.fill_ids = list(fill_ids)


class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the ledger keeps it: the domain order plus who holds it and what it reserves."""

    order: Order
    reserve_price: Decimal = ZERO
    engine: str
    venue: str


class Quantities(msgspec.Struct, kw_only=True):
    """Buy and sell quantities and notionals (reserved or released totals for one account and symbol)."""

    buy_qty: Decimal = ZERO
    sell_qty: Decimal = ZERO
    buy_notional: Decimal = ZERO
    sell_notional: Decimal = ZERO


class AccountRow(msgspec.Struct, kw_only=True):
    account_id: str
    currency: str = "USD"
    starting_cash: Decimal = ZERO
    cash: Decimal = ZERO
    fees: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    updated_ns: int = 0


class PositionRow(msgspec.Struct, kw_only=True):
    """A booked position and the reservations released on it so far."""

    position: Position
    released: Quantities = msgspec.field(default_factory=Quantities)


class AccountSnapshot(msgspec.Struct, kw_only=True):
    """Everything risk needs about one account, as committed."""

    account: AccountRow
    seq: int
    token: str
    positions: dict[str, PositionRow]
    reserved: dict[str, Quantities]


class AdmitResult(msgspec.Struct, frozen=True, kw_only=True):
    """``ok`` False: some account's sequence moved, nothing was written (and, if asked for, ``snapshots`` is the
    accounts' committed state since they moved). Else: which orders were inserted."""

    ok: bool
    inserted: frozenset[str] = frozenset()
    seqs: dict[str, int] = {}
    snapshots: dict[str, AccountSnapshot] = {}


class StateRow(msgspec.Struct, frozen=True, kw_only=True):
    state: TradingState
    reason: str
    changed_by: str
    changed_ns: int


class BookingTx(Protocol):
    """An open booking transaction; accounts (and the positions asked for) are locked and read."""

    accounts: dict[str, AccountRow]
    positions: dict[tuple[str, str], PositionRow]

    async def write(
        self,
        *,
        fills: Sequence[Fill],
        orders: Sequence[Order],
        positions: Sequence[PositionRow],
        accounts: Sequence[AccountRow],
        booked_ns: int,
    ) -> None:
        """Write the booking; raise DuplicateFill (the whole transaction is then rolled back)."""
        ...


class AdmissionTx(Protocol):
    """An open admission transaction: the accounts' admission rows are locked (no other admission for them can
    commit until it ends) and ``snapshots`` is their committed state, read after the lock was taken."""

    snapshots: dict[str, AccountSnapshot]

    async def admit(
        self,
        orders: Sequence[OrderRecord],
        expected: Mapping[str, tuple[int, str]],
        tokens: Mapping[str, str],
    ) -> AdmitResult:
        """:meth:`LedgerStore.admit` inside the transaction (it commits when the context exits cleanly)."""
        ...


class LedgerStore(Protocol):
    """The ledger's persistence. See the module docstring for the contract."""

    backend: str

    async def open(self) -> None:
        """Connect and apply migrations."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise LedgerUnavailable if the database does not answer."""
        ...

    async def ensure_accounts(self, account_ids: Sequence[str], starting_cash: Decimal, currency: str) -> None:
        """Create the accounts that do not exist yet with ``starting_cash``; leave the others alone."""
        ...

    async def snapshot(self, account_ids: Sequence[str]) -> dict[str, AccountSnapshot]:
        """Return the committed state of the accounts (missing accounts are left out)."""
        ...

    async def admit(
        self,
        orders: Sequence[OrderRecord],
        expected: Mapping[str, tuple[int, str]],
        tokens: Mapping[str, str],
        *,
        fresh: bool = False,
    ) -> AdmitResult:
        """Insert new orders (NEW ones reserve their quantity) if every account's last admission is ``expected``
        (seq, token); then each account's last admission becomes (seq + 1, ``tokens[account]``). With ``fresh``,
        a failed admission also returns the accounts' committed state as of after what overtook it (in the same
        round trip where it can), so the engine can decide again at once."""
        ...

    def admission_lock(self, account_ids: Sequence[str]) -> AbstractAsyncContextManager[AdmissionTx]:
        """Lock the accounts' admissions for one transaction and read their state (see the module docstring)."""
        ...

    def booking(
        self, account_ids: Sequence[str], keys: Sequence[tuple[str, str]]
    ) -> AbstractAsyncContextManager[BookingTx]:
        """Open a transaction locking ``account_ids`` and reading the positions ``keys`` (account, symbol)."""
        ...

    async def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]: ...

    async def open_orders(self, venue: str) -> list[OrderRecord]:
        """Return the orders held at ``venue`` that are not terminal (NEW, UNKNOWN, ACCEPTED, PARTIALLY_FILLED)."""
        ...

    async def fills(
        self, *, client_order_ids: Sequence[str] | None = None, account_id: str | None = None
    ) -> list[Fill]:
        """Return booked fills, by order or by account, in booking order."""
        ...

    async def existing_fill_ids(self, fill_ids: Sequence[str]) -> set[str]: ...

    async def orders(self, *, account_id: str | None = None, limit: int | None = None) -> list[OrderRecord]:
        """Return orders, oldest first."""
        ...

    async def orders_page(self, query: OrderQuery) -> list[OrderRecord]:
        """Return one page of an account's orders (see :mod:`tradepulse.storage.ledger_pages`)."""
        ...

    async def fills_page(self, query: FillQuery) -> list[Fill]:
        """Return one page of an account's fills; each fill's ``ts_received_ns`` is its ``booked_ns``."""
        ...

    async def positions(self, account_id: str) -> list[PositionRow]: ...

    async def account(self, account_id: str) -> AccountRow | None: ...

    async def trading_state(self) -> StateRow: ...

    async def set_trading_state(self, state: TradingState, reason: str, changed_by: str, now_ns: int) -> StateRow: ...

    async def write_marks(self, marks: Sequence[tuple[str, Decimal, int]]) -> None: ...

    async def marks(self) -> dict[str, Decimal]: ...


__all__ = [
    "AccountRow",
    "AccountSnapshot",
    "AdmitResult",
    "BookingTx",
    "DuplicateFill",
    "FillQuery",
    "LedgerError",
    "LedgerStore",
    "LedgerUnavailable",
    "OrderQuery",
    "OrderRecord",
    "PositionRow",
    "Quantities",
    "StateRow",
]
