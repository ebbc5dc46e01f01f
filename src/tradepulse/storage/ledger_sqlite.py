"""The ledger in SQLite, for the embedded mode: the same contract as PostgreSQL, in one file.

Money is stored as decimal strings and summed in Python, never as SQLite REAL. Every write runs in a
``BEGIN IMMEDIATE`` transaction (SQLite's single writer lock), which also serializes several processes sharing
the file. Calls are synchronous and short (WAL, ``synchronous=NORMAL``: no fsync per commit), so they run on
the event loop directly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradepulse.domain import Fill, Order, TradingState
from tradepulse.storage.ledger_pages import FillQuery, OrderQuery, fills_page_sql, orders_page_sql
from tradepulse.storage.ledger_rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    POSITION_COLUMNS,
    account_from_row,
    dec,
    fill_from_row,
    fill_values,
    order_from_row,
    order_values,
    position_from_row,
    position_values,
    quantities_from_row,
)
from tradepulse.storage.ledger_store import (
    AccountRow,
    AccountSnapshot,
    AdmitResult,
    DuplicateFill,
    LedgerUnavailable,
    OrderRecord,
    PositionRow,
    StateRow,
)
from tradepulse.storage.migrations import migrate_sqlite
from tradepulse.storage.sqlite import connect

_CHUNK = 400


def _s(value: Any) -> Any:
    """Store Decimals as exact strings; everything else as is."""
    return str(value) if isinstance(value, Decimal) else value


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


Row = dict[str, Any]


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class _SqliteBooking:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.accounts: dict[str, AccountRow] = {}
        self.positions: dict[tuple[str, str], PositionRow] = {}

    async def write(
        self,
        *,
        fills: Sequence[Fill],
        orders: Sequence[Order],
        positions: Sequence[PositionRow],
        accounts: Sequence[AccountRow],
        booked_ns: int,
    ) -> None:
        conn = self._conn
        account_of = {o.client_order_id: o.account_id for o in orders}
        try:
            conn.executemany(
                f"INSERT INTO ledger_fills ({', '.join(FILL_COLUMNS)}, booked_ns) "
                f"VALUES ({_marks(len(FILL_COLUMNS) + 1)})",
                [(*(_s(v) for v in fill_values(f, account_of.get(f.client_order_id, ""))), booked_ns) for f in fills],
            )
        except sqlite3.IntegrityError as exc:
            if "ledger_fills.fill_id" in str(exc) or "UNIQUE" in str(exc):
                raise DuplicateFill([f.fill_id for f in fills]) from exc
            raise
        conn.executemany(
            "UPDATE ledger_orders SET status = ?, filled_quantity = ?, filled_notional = ?, fees = ?, "
            "venue_order_id = ?, reject_reason = ?, status_message = ?, updated_ns = ? WHERE client_order_id = ?",
            [
                (
                    o.status.value,
                    str(o.filled_quantity),
                    str(o.filled_notional),
                    str(o.fees),
                    o.venue_order_id,
                    None if o.reject_reason is None else o.reject_reason.value,
                    o.status_message,
                    o.updated_ns,
                    o.client_order_id,
                )
                for o in orders
            ],
        )
        conn.executemany(
            f"INSERT OR REPLACE INTO ledger_positions ({', '.join(POSITION_COLUMNS)}) "
            f"VALUES ({_marks(len(POSITION_COLUMNS))})",
            [tuple(_s(v) for v in position_values(p)) for p in positions],
        )
        conn.executemany(
            "UPDATE ledger_accounts SET cash = ?, fees = ?, realized_pnl = ?, updated_ns = ? WHERE account_id = ?",
            [(str(a.cash), str(a.fees), str(a.realized_pnl), a.updated_ns, a.account_id) for a in accounts],
        )


class _SqliteAdmissionTx:
    def __init__(self, store: SqliteLedgerStore, snapshots: dict[str, AccountSnapshot]) -> None:
        self._store = store
        self.snapshots = snapshots

    async def admit(
        self,
        orders: Sequence[OrderRecord],
        expected: Mapping[str, tuple[int, str]],
        tokens: Mapping[str, str],
    ) -> AdmitResult:
        return await self._store.admit(orders, expected, tokens)


class SqliteLedgerStore:
    """The ledger store on a SQLite file. See the module docstring."""

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerUnavailable(f"the SQLite ledger {self.path} is not open")
        return self._conn

    async def open(self) -> None:
        try:
            conn = connect(self.path)
            migrate_sqlite(conn)
            conn.row_factory = _dict_row
            self._conn = conn
        except sqlite3.OperationalError as exc:
            raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return self.conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.OperationalError as exc:
            raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from exc

    def _rows_in(self, sql: str, ids: Sequence[str], extra: Sequence[Any] = ()) -> list[Row]:
        """Run ``sql`` (with one ``IN ({})`` placeholder) over ``ids`` in chunks."""
        out: list[Row] = []
        for chunk in _chunks(list(ids)):
            out.extend(self._rows(sql.format(_marks(len(chunk))), [*chunk, *extra]))
        return out

    async def ping(self) -> None:
        self._rows("SELECT 1")

    async def ensure_accounts(self, account_ids: Sequence[str], starting_cash: Decimal, currency: str) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO ledger_accounts (account_id, currency, starting_cash, cash, fees, "
                "realized_pnl) VALUES (?, ?, ?, ?, '0', '0')",
                [(a, currency, str(starting_cash), str(starting_cash)) for a in account_ids],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO ledger_admissions (account_id, seq) VALUES (?, 0)", [(a,) for a in account_ids]
            )

    async def snapshot(self, account_ids: Sequence[str]) -> dict[str, AccountSnapshot]:
        ids = list(account_ids)
        out: dict[str, AccountSnapshot] = {}
        for r in self._rows_in(
            "SELECT a.*, d.seq, d.token FROM ledger_accounts a JOIN ledger_admissions d USING (account_id) "
            "WHERE account_id IN ({})",
            ids,
        ):
            out[r["account_id"]] = AccountSnapshot(
                account=account_from_row(r), seq=int(r["seq"]), token=r["token"], positions={}, reserved={}
            )
        for r in self._rows_in("SELECT * FROM ledger_positions WHERE account_id IN ({})", ids):
            out[r["account_id"]].positions[r["symbol"]] = position_from_row(r)
        for r in self._rows_in("SELECT * FROM ledger_reserved WHERE account_id IN ({})", ids):
            out[r["account_id"]].reserved[r["symbol"]] = quantities_from_row(r)
        return out

    async def admit(
        self,
        orders: Sequence[OrderRecord],
        expected: Mapping[str, tuple[int, str]],
        tokens: Mapping[str, str],
        *,
        fresh: bool = False,
    ) -> AdmitResult:
        accounts = list(expected)
        with self._write() as conn:
            sql = f"SELECT account_id, seq, token FROM ledger_admissions WHERE account_id IN ({_marks(len(accounts))})"
            rows = conn.execute(sql, accounts).fetchall() if accounts else []
            current = {r["account_id"]: (int(r["seq"]), r["token"]) for r in rows}
            if any(current.get(a) != expected[a] for a in accounts):
                return AdmitResult(ok=False, snapshots=await self.snapshot(accounts) if fresh else {})
            coids = [r.order.client_order_id for r in orders]
            existing: set[str] = set()
            for chunk in _chunks(coids):
                existing.update(
                    row["client_order_id"]
                    for row in conn.execute(
                        f"SELECT client_order_id FROM ledger_orders WHERE client_order_id IN ({_marks(len(chunk))})",
                        list(chunk),
                    )
                )
            new: list[OrderRecord] = []
            seen: set[str] = set()
            for record in orders:
                coid = record.order.client_order_id
                if coid not in existing and coid not in seen:
                    new.append(record)
                    seen.add(coid)
            conn.executemany(
                f"INSERT INTO ledger_orders ({', '.join(ORDER_COLUMNS)}) VALUES ({_marks(len(ORDER_COLUMNS))})",
                [tuple(_s(v) for v in order_values(r)) for r in new],
            )
            deltas: dict[tuple[str, str], list[Decimal]] = {}
            for record in new:
                o = record.order
                if o.status.value != "NEW":
                    continue
                d = deltas.setdefault((o.account_id, o.symbol), [Decimal(0)] * 4)
                notional = o.quantity * record.reserve_price
                if o.side.value == "BUY":
                    d[0] += o.quantity
                    d[2] += notional
                else:
                    d[1] += o.quantity
                    d[3] += notional
            for (account_id, symbol), d in deltas.items():
                row = conn.execute(
                    "SELECT * FROM ledger_reserved WHERE account_id = ? AND symbol = ?", (account_id, symbol)
                ).fetchone()
                base = (
                    [Decimal(0)] * 4
                    if row is None
                    else [dec(row[k]) for k in ("buy_qty", "sell_qty", "buy_notional", "sell_notional")]
                )
                conn.execute(
                    "INSERT OR REPLACE INTO ledger_reserved (account_id, symbol, buy_qty, sell_qty, buy_notional, "
                    "sell_notional) VALUES (?, ?, ?, ?, ?, ?)",
                    (account_id, symbol, *(str(b + x) for b, x in zip(base, d, strict=True))),
                )
            conn.executemany(
                "UPDATE ledger_admissions SET seq = seq + 1, token = ? WHERE account_id = ?",
                [(tokens[a], a) for a in accounts],
            )
            seqs = {a: expected[a][0] + 1 for a in accounts}
        return AdmitResult(ok=True, inserted=frozenset(seen), seqs=seqs)

    @asynccontextmanager
    async def admission_lock(self, account_ids: Sequence[str]) -> AsyncIterator[_SqliteAdmissionTx]:
        # one process owns a SQLite ledger and its statements do not interleave with other coroutines, so the
        # lock is the (seq, token) check of admit itself: the snapshot is fresh, and the admission follows it
        yield _SqliteAdmissionTx(self, await self.snapshot(account_ids))

    @asynccontextmanager
    async def booking(
        self, account_ids: Sequence[str], keys: Sequence[tuple[str, str]]
    ) -> AsyncIterator[_SqliteBooking]:
        with self._write() as conn:
            tx = _SqliteBooking(conn)
            ids = sorted(set(account_ids))
            for r in conn.execute(f"SELECT * FROM ledger_accounts WHERE account_id IN ({_marks(len(ids))})", ids):
                tx.accounts[r["account_id"]] = account_from_row(r)
            for account_id, symbol in keys:
                row = conn.execute(
                    "SELECT * FROM ledger_positions WHERE account_id = ? AND symbol = ?", (account_id, symbol)
                ).fetchone()
                if row is not None:
                    tx.positions[(account_id, symbol)] = position_from_row(row)
            yield tx

    async def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        rows = self._rows_in("SELECT * FROM ledger_orders WHERE client_order_id IN ({})", client_order_ids)
        return {r["client_order_id"]: order_from_row(r) for r in rows}

    async def open_orders(self, venue: str) -> list[OrderRecord]:
        rows = self._rows(
            "SELECT * FROM ledger_orders WHERE venue = ? "
            "AND status IN ('NEW', 'UNKNOWN', 'ACCEPTED', 'PARTIALLY_FILLED') ORDER BY created_ns",
            [venue],
        )
        return [order_from_row(r) for r in rows]

    async def fills(
        self, *, client_order_ids: Sequence[str] | None = None, account_id: str | None = None
    ) -> list[Fill]:
        if client_order_ids is not None:
            rows = self._rows_in(
                "SELECT * FROM ledger_fills WHERE client_order_id IN ({}) ORDER BY booked_ns, rowid", client_order_ids
            )
        elif account_id is not None:
            rows = self._rows("SELECT * FROM ledger_fills WHERE account_id = ? ORDER BY booked_ns, rowid", [account_id])
        else:
            rows = self._rows("SELECT * FROM ledger_fills ORDER BY booked_ns, rowid")
        return [fill_from_row(r) for r in rows]

    async def existing_fill_ids(self, fill_ids: Sequence[str]) -> set[str]:
        return {r["fill_id"] for r in self._rows_in("SELECT fill_id FROM ledger_fills WHERE fill_id IN ({})", fill_ids)}

    async def orders(self, *, account_id: str | None = None, limit: int | None = None) -> list[OrderRecord]:
        sql = "SELECT * FROM ledger_orders"
        args: list[Any] = []
        if account_id is not None:
            sql += " WHERE account_id = ?"
            args.append(account_id)
        sql += " ORDER BY created_ns, client_order_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [order_from_row(r) for r in self._rows(sql, args)]

    async def orders_page(self, query: OrderQuery) -> list[OrderRecord]:
        sql, args = orders_page_sql(query, lambda _n: "?")
        return [order_from_row(r) for r in self._rows(sql, args)]

    async def fills_page(self, query: FillQuery) -> list[Fill]:
        sql, args = fills_page_sql(query, lambda _n: "?")
        return [fill_from_row(r) for r in self._rows(sql, args)]

    async def positions(self, account_id: str) -> list[PositionRow]:
        rows = self._rows("SELECT * FROM ledger_positions WHERE account_id = ? ORDER BY symbol", [account_id])
        return [position_from_row(r) for r in rows]

    async def account(self, account_id: str) -> AccountRow | None:
        rows = self._rows("SELECT * FROM ledger_accounts WHERE account_id = ?", [account_id])
        return account_from_row(rows[0]) if rows else None

    async def trading_state(self) -> StateRow:
        (r,) = self._rows("SELECT * FROM risk_trading_state WHERE id = 1")
        return StateRow(
            state=TradingState(r["state"]), reason=r["reason"], changed_by=r["changed_by"], changed_ns=r["changed_ns"]
        )

    async def set_trading_state(self, state: TradingState, reason: str, changed_by: str, now_ns: int) -> StateRow:
        with self._write() as conn:
            conn.execute(
                "UPDATE risk_trading_state SET state = ?, reason = ?, changed_by = ?, changed_ns = ? WHERE id = 1",
                (state.value, reason, changed_by, now_ns),
            )
        return StateRow(state=state, reason=reason, changed_by=changed_by, changed_ns=now_ns)

    async def write_marks(self, marks: Sequence[tuple[str, Decimal, int]]) -> None:
        if not marks:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO ledger_marks (symbol, price, ts_ns) VALUES (?, ?, ?)",
                [(s, str(p), t) for s, p, t in marks],
            )

    async def marks(self) -> dict[str, Decimal]:
        return {r["symbol"]: dec(r["price"]) for r in self._rows("SELECT symbol, price FROM ledger_marks")}


__all__ = ["SqliteLedgerStore"]
