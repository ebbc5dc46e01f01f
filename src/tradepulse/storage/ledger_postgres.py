"""The ledger in PostgreSQL (asyncpg): NUMERIC money, one statement per admission, one transaction per booking.

Admission is a single autocommitted statement (data-modifying CTEs): bump each account's admission sequence if
it is still the expected one, insert the orders (a client order id already there is skipped, never updated), and
add the inserted NEW orders' reservations. So an order is durable, with its reservation, before it can execute,
in one round trip and one commit.

A booking runs in one transaction: lock the accounts (``SELECT ... FOR UPDATE``, in a fixed order so that two
engines cannot deadlock), read their positions, write fills (primary key ``fill_id``: a fill is booked once),
order states, positions and cash in one statement, commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import msgspec

from tradepulse.config import DatabaseConfig
from tradepulse.domain import Fill, Order, TradingState
from tradepulse.storage.ledger_pages import FillQuery, OrderQuery, fills_page_sql, orders_page_sql
from tradepulse.storage.ledger_rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    POSITION_COLUMNS,
    account_from_row,
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
    LedgerError,
    LedgerUnavailable,
    OrderRecord,
    PositionRow,
    StateRow,
)
from tradepulse.storage.migrations import migrate_postgres
from tradepulse.storage.postgres import DatabaseUnavailable, create_pool

log = logging.getLogger(__name__)
T = TypeVar("T")

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    DatabaseUnavailable,
)

_ORDER_TYPES = (
    "text[]",  # client_order_id
    "text[]",  # account_id
    "text[]",  # strategy_id
    "text[]",  # symbol
    "text[]",  # side
    "text[]",  # order_type
    "text[]",  # time_in_force
    "numeric[]",  # quantity
    "numeric[]",  # limit_price
    "numeric[]",  # stop_price
    "numeric[]",  # reserve_price
    "text[]",  # status
    "numeric[]",  # filled_quantity
    "numeric[]",  # filled_notional
    "numeric[]",  # fees
    "text[]",  # venue_order_id
    "text[]",  # reject_reason
    "text[]",  # status_message
    "text[]",  # engine
    "text[]",  # venue
    "bigint[]",  # created_ns
    "bigint[]",  # updated_ns
)


def _rows(param: int, types: Sequence[str], names: Sequence[str]) -> str:
    """The rows of the JSON parameter ``$param`` (an array with one array of column values per row) as a relation
    ``t(names)``. One parameter per table instead of one array per column: the rows are encoded in one C call
    (:func:`_json`), and decimals travel as JSON strings, so NUMERIC values arrive exactly as written."""
    columns = ", ".join(
        f"(r->>{i})::{t.removesuffix('[]')} AS {n}" for i, (t, n) in enumerate(zip(types, names, strict=True))
    )
    return f"(SELECT {columns} FROM jsonb_array_elements(${param}::jsonb) AS r) AS t"


_JSON = msgspec.json.Encoder(decimal_format="string")


def _json(rows: Sequence[tuple[Any, ...]]) -> str:
    return _JSON.encode(rows).decode()


_ADMIT = f"""
WITH seq AS (
    UPDATE ledger_admissions a SET seq = a.seq + 1, token = e.token
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS e(account_id, expected, expected_token, token)
    WHERE a.account_id = e.account_id AND a.seq = e.expected AND a.token = e.expected_token
    RETURNING a.account_id, a.seq
), ok AS (
    SELECT count(*) = cardinality($1::text[]) AS ok FROM seq
), ins AS (
    INSERT INTO ledger_orders ({", ".join(ORDER_COLUMNS)})
    SELECT t.* FROM {_rows(5, _ORDER_TYPES, ORDER_COLUMNS)}
    WHERE (SELECT ok FROM ok)
    ON CONFLICT (client_order_id) DO NOTHING
    RETURNING client_order_id, account_id, symbol, side, quantity, reserve_price, status
), res AS (
    INSERT INTO ledger_reserved AS r (account_id, symbol, buy_qty, sell_qty, buy_notional, sell_notional)
    SELECT account_id, symbol,
           sum(CASE WHEN side = 'BUY' THEN quantity ELSE 0 END),
           sum(CASE WHEN side = 'SELL' THEN quantity ELSE 0 END),
           sum(CASE WHEN side = 'BUY' THEN quantity * reserve_price ELSE 0 END),
           sum(CASE WHEN side = 'SELL' THEN quantity * reserve_price ELSE 0 END)
    FROM ins WHERE status = 'NEW' GROUP BY account_id, symbol
    ON CONFLICT (account_id, symbol) DO UPDATE SET
        buy_qty = r.buy_qty + EXCLUDED.buy_qty,
        sell_qty = r.sell_qty + EXCLUDED.sell_qty,
        buy_notional = r.buy_notional + EXCLUDED.buy_notional,
        sell_notional = r.sell_notional + EXCLUDED.sell_notional
)
SELECT (SELECT ok FROM ok) AS ok,
       ARRAY(SELECT client_order_id FROM ins) AS inserted,
       ARRAY(SELECT account_id FROM seq) AS accounts,
       ARRAY(SELECT seq FROM seq) AS seqs
"""

#: the state of the accounts ``$1``, as three JSON columns (accounts with their last admission, positions, reserved)
_SNAPSHOT_COLUMNS = (
    (
        "accounts",
        "SELECT coalesce(json_agg(x), '[]') FROM (SELECT a.*, d.seq, d.token FROM ledger_accounts a "
        "JOIN ledger_admissions d USING (account_id) WHERE account_id = ANY($1::text[])) x",
    ),
    ("positions", "SELECT coalesce(json_agg(p), '[]') FROM ledger_positions p WHERE account_id = ANY($1::text[])"),
    ("reserved", "SELECT coalesce(json_agg(r), '[]') FROM ledger_reserved r WHERE account_id = ANY($1::text[])"),
)

#: the state the accounts are in, read by the admission statement itself when it fails (a snapshot column is only
#: evaluated where ``ok`` is false: the CASE skips its sub-plan otherwise)
_ADMIT_FRESH = _ADMIT.rstrip() + "".join(
    f",\n       CASE WHEN (SELECT ok FROM ok) THEN NULL ELSE ({column}) END AS snap_{name}"
    for name, column in _SNAPSHOT_COLUMNS
)

_FILL_TYPES = (
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "numeric[]",
    "numeric[]",
    "numeric[]",
    "text[]",
    "text[]",
    "text[]",
    "bigint[]",
)
_ORDER_UPDATE_NAMES = (
    "client_order_id",
    "status",
    "filled_quantity",
    "filled_notional",
    "fees",
    "venue_order_id",
    "reject_reason",
    "status_message",
    "updated_ns",
)
_ORDER_UPDATE_TYPES = (
    "text[]",
    "text[]",
    "numeric[]",
    "numeric[]",
    "numeric[]",
    "text[]",
    "text[]",
    "text[]",
    "bigint[]",
)
_POSITION_TYPES = ("text[]", "text[]", "text[]", *(["numeric[]"] * 8), "bigint[]")
_ACCOUNT_NAMES = ("account_id", "cash", "fees", "realized_pnl", "updated_ns")
_ACCOUNT_TYPES = ("text[]", "numeric[]", "numeric[]", "numeric[]", "bigint[]")

_BOOK = f"""
WITH f AS (
    INSERT INTO ledger_fills ({", ".join(FILL_COLUMNS)}, booked_ns)
    SELECT t.*, $5::bigint FROM {_rows(1, _FILL_TYPES, FILL_COLUMNS)}
), o AS (
    UPDATE ledger_orders o SET
        status = t.status, filled_quantity = t.filled_quantity, filled_notional = t.filled_notional,
        fees = t.fees, venue_order_id = t.venue_order_id, reject_reason = t.reject_reason,
        status_message = t.status_message, updated_ns = t.updated_ns
    FROM {_rows(2, _ORDER_UPDATE_TYPES, _ORDER_UPDATE_NAMES)}
    WHERE o.client_order_id = ANY($6::text[]) AND o.client_order_id = t.client_order_id
), p AS (
    INSERT INTO ledger_positions ({", ".join(POSITION_COLUMNS)})
    SELECT t.* FROM {_rows(3, _POSITION_TYPES, POSITION_COLUMNS)}
    ON CONFLICT (account_id, symbol) DO UPDATE SET
        quantity = EXCLUDED.quantity, cost_basis = EXCLUDED.cost_basis, realized_pnl = EXCLUDED.realized_pnl,
        fees = EXCLUDED.fees, released_buy_qty = EXCLUDED.released_buy_qty,
        released_sell_qty = EXCLUDED.released_sell_qty, released_buy_notional = EXCLUDED.released_buy_notional,
        released_sell_notional = EXCLUDED.released_sell_notional, updated_ns = EXCLUDED.updated_ns
)
UPDATE ledger_accounts a SET cash = t.cash, fees = t.fees, realized_pnl = t.realized_pnl, updated_ns = t.updated_ns
FROM {_rows(4, _ACCOUNT_TYPES, _ACCOUNT_NAMES)}
WHERE a.account_id = t.account_id
"""


#: a booking's transaction starts with sequential scans off, in the same round trip as BEGIN. Its statements are
#: key lookups, and a prepared statement's cached generic plan is made from the tables' sizes when it is planned:
#: on a new ledger (before autovacuum's first ANALYZE, up to a minute) the booking planned against a near-empty
#: ledger_orders scanned every order ever admitted, so each booking cost more than the last (10 fills: 0.4 ms at
#: the start of a run, 4.9 ms after 40 s at 1,000 orders/s). Only the booking's session state: the API's reads
#: on the same pool keep the planner's choice (off there, a summary read took 150 ms).
BEGIN_BOOKING = "BEGIN; SET LOCAL enable_seqscan = off"


class _PgBooking:
    def __init__(self, conn: asyncpg.Connection, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout
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
        account_of = {o.client_order_id: o.account_id for o in orders}
        fill_rows = [fill_values(f, account_of.get(f.client_order_id, "")) for f in fills]
        order_rows = [
            (
                o.client_order_id,
                o.status.value,
                o.filled_quantity,
                o.filled_notional,
                o.fees,
                o.venue_order_id,
                None if o.reject_reason is None else o.reject_reason.value,
                o.status_message,
                o.updated_ns,
            )
            for o in orders
        ]
        position_rows = [position_values(p) for p in positions]
        account_rows = [(a.account_id, a.cash, a.fees, a.realized_pnl, a.updated_ns) for a in accounts]
        # the ids as an array too: the planner takes ``= ANY`` to the primary key, where a join to the JSON rows
        # alone (estimated at 100 rows) became a hash join over a sequential scan of every order ever booked
        ids = [o.client_order_id for o in orders]
        args = [_json(fill_rows), _json(order_rows), _json(position_rows), _json(account_rows), booked_ns, ids]
        try:
            await self._conn.execute(_BOOK, *args, timeout=self._timeout)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateFill([f.fill_id for f in fills]) from exc


_SNAPSHOT = "SELECT " + ", ".join(f"({column}) AS {name}" for name, column in _SNAPSHOT_COLUMNS)

_LOCK_ADMISSIONS = (
    "SELECT account_id FROM ledger_admissions WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR UPDATE"
)

# NUMERIC is rendered exactly by json_agg (never in exponent form); read its numbers as Decimals, not floats
_SNAPSHOT_ROWS = msgspec.json.Decoder(list[dict[str, Any]], float_hook=Decimal)


async def _snapshot_on(conn: asyncpg.Connection, ids: list[str], timeout: float) -> dict[str, AccountSnapshot]:
    """Read the accounts, their positions and reservations in ONE statement (one consistent snapshot)."""
    row = await conn.fetchrow(_SNAPSHOT, ids, timeout=timeout)
    assert row is not None
    return _snapshots(row["accounts"], row["positions"], row["reserved"])


def _snapshots(accounts: str, positions: str, reserved: str) -> dict[str, AccountSnapshot]:
    out = {
        r["account_id"]: AccountSnapshot(
            account=account_from_row(r), seq=int(r["seq"]), token=r["token"], positions={}, reserved={}
        )
        for r in _SNAPSHOT_ROWS.decode(accounts)
    }
    for r in _SNAPSHOT_ROWS.decode(positions):
        out[r["account_id"]].positions[r["symbol"]] = position_from_row(r)
    for r in _SNAPSHOT_ROWS.decode(reserved):
        out[r["account_id"]].reserved[r["symbol"]] = quantities_from_row(r)
    return out


async def _admit_on(
    conn: asyncpg.Connection,
    orders: Sequence[OrderRecord],
    expected: Mapping[str, tuple[int, str]],
    tokens: Mapping[str, str],
    timeout: float,
    fresh: bool = False,
) -> AdmitResult:
    accounts = list(expected)
    row = await conn.fetchrow(
        _ADMIT_FRESH if fresh else _ADMIT,
        accounts,
        [expected[a][0] for a in accounts],
        [expected[a][1] for a in accounts],
        [tokens[a] for a in accounts],
        _json([order_values(r) for r in orders]),
        timeout=timeout,
    )
    assert row is not None
    if fresh and not row["ok"]:
        snapshots = _snapshots(row["snap_accounts"], row["snap_positions"], row["snap_reserved"])
        if any((s.seq, s.token) == expected.get(a) for a, s in snapshots.items()):
            # overtaken by an admission that committed while this statement waited for the account's row: the
            # statement's own snapshot predates it; a new statement sees it
            snapshots = await _snapshot_on(conn, accounts, timeout)
        return AdmitResult(ok=False, snapshots=snapshots)
    seqs = dict(zip(row["accounts"], (int(s) for s in row["seqs"]), strict=True))
    return AdmitResult(ok=bool(row["ok"]), inserted=frozenset(row["inserted"]), seqs=seqs)


def _usable(conn: asyncpg.Connection) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back when its connection was lost
        return False


class _PgAdmissionTx:
    def __init__(self, conn: asyncpg.Connection, timeout: float, snapshots: dict[str, AccountSnapshot]) -> None:
        self._conn = conn
        self._timeout = timeout
        self.snapshots = snapshots

    async def admit(
        self,
        orders: Sequence[OrderRecord],
        expected: Mapping[str, tuple[int, str]],
        tokens: Mapping[str, str],
    ) -> AdmitResult:
        return await _admit_on(self._conn, orders, expected, tokens, self._timeout)


class PostgresLedgerStore:
    """The ledger store on PostgreSQL. See the module docstring."""

    backend = "postgres"

    def __init__(self, config: DatabaseConfig, *, timeout_s: float = 5.0, pool: asyncpg.Pool | None = None) -> None:
        self.config = config
        self.timeout = timeout_s
        self._pool = pool
        self._own_pool = pool is None
        #: the connection admissions use, held out of the pool: an admission is on every order's path, and a
        #: pool checkout with a timeout costs an asyncio task and a loop turn (see :meth:`admit`)
        self._admit_conn: asyncpg.Connection | None = None
        self._admit_busy = False
        self._releasing: asyncio.Future[None] | None = None

    async def _guard(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except LedgerError:
            raise
        except _UNAVAILABLE as exc:
            raise LedgerUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from exc

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise LedgerUnavailable("the PostgreSQL ledger is not open")
        return self._pool

    async def open(self) -> None:
        async def go() -> None:
            if self._pool is None:
                # the ledger leaves no session state on a connection (its one advisory lock, in migrations, is
                # released), so connections go back to the pool without asyncpg's reset round trip
                self._pool = await create_pool(
                    self.config, schema=self.config.schema or None, reset_on_release=False, numeric_as_text=True
                )
            async with self.pool.acquire(timeout=self.timeout) as conn:
                await migrate_postgres(conn)

        await self._guard(go)

    async def close(self) -> None:
        await self._drop_admit_conn()
        if self._pool is not None and self._own_pool:
            try:
                await asyncio.wait_for(self._pool.close(), 5)
            except _UNAVAILABLE:
                self._pool.terminate()
        self._pool = None

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *args, timeout=self.timeout)
                return rows

        return await self._guard(go)

    async def _execute(self, sql: str, *args: Any) -> None:
        async def go() -> None:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                await conn.execute(sql, *args, timeout=self.timeout)

        await self._guard(go)

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def ensure_accounts(self, account_ids: Sequence[str], starting_cash: Decimal, currency: str) -> None:
        await self._execute(
            """
            WITH a AS (
                INSERT INTO ledger_accounts (account_id, currency, starting_cash, cash)
                SELECT id, $2, $3, $3 FROM unnest($1::text[]) AS id
                ON CONFLICT (account_id) DO NOTHING
            )
            INSERT INTO ledger_admissions (account_id) SELECT id FROM unnest($1::text[]) AS id
            ON CONFLICT (account_id) DO NOTHING
            """,
            list(account_ids),
            currency,
            starting_cash,
        )

    async def snapshot(self, account_ids: Sequence[str]) -> dict[str, AccountSnapshot]:
        async def go() -> dict[str, AccountSnapshot]:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                return await _snapshot_on(conn, list(account_ids), self.timeout)

        return await self._guard(go)

    async def admit(
        self,
        orders: Sequence[OrderRecord],
        expected: Mapping[str, tuple[int, str]],
        tokens: Mapping[str, str],
        *,
        fresh: bool = False,
    ) -> AdmitResult:
        async def go() -> AdmitResult:
            if self._admit_busy:  # admissions in parallel (several writers): the others use the pool
                async with self.pool.acquire(timeout=self.timeout) as conn:
                    return await _admit_on(conn, orders, expected, tokens, self.timeout, fresh)
            self._admit_busy = True
            try:
                conn = self._admit_conn
                if conn is None or not _usable(conn):
                    await self._drop_admit_conn()
                    conn = self._admit_conn = await self.pool.acquire(timeout=self.timeout)
                try:
                    return await _admit_on(conn, orders, expected, tokens, self.timeout, fresh)
                except BaseException:
                    # failed or cancelled mid-statement: the connection's state is unknown; the pool replaces it
                    self._admit_conn = None
                    conn.terminate()
                    self._releasing = asyncio.ensure_future(self.pool.release(conn))
                    raise
            finally:
                self._admit_busy = False

        return await self._guard(go)

    async def _drop_admit_conn(self) -> None:
        conn, self._admit_conn = self._admit_conn, None
        if conn is not None and self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn, timeout=self.timeout)

    @asynccontextmanager
    async def admission_lock(self, account_ids: Sequence[str]) -> AsyncIterator[_PgAdmissionTx]:
        ids = sorted(set(account_ids))  # a fixed order, so two engines locking several accounts cannot deadlock
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn, conn.transaction():
                await conn.fetch(_LOCK_ADMISSIONS, ids, timeout=self.timeout)
                yield _PgAdmissionTx(conn, self.timeout, await _snapshot_on(conn, ids, self.timeout))
        except LedgerError:
            raise
        except _UNAVAILABLE as exc:
            raise LedgerUnavailable(f"PostgreSQL unavailable during an admission: {type(exc).__name__}: {exc}") from exc

    @asynccontextmanager
    async def booking(self, account_ids: Sequence[str], keys: Sequence[tuple[str, str]]) -> AsyncIterator[_PgBooking]:
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                await conn.execute(BEGIN_BOOKING, timeout=self.timeout)
                try:
                    tx = _PgBooking(conn, self.timeout)
                    for r in await conn.fetch(
                        "SELECT * FROM ledger_accounts WHERE account_id = ANY($1::text[]) "
                        "ORDER BY account_id FOR UPDATE",
                        sorted(set(account_ids)),
                        timeout=self.timeout,
                    ):
                        tx.accounts[r["account_id"]] = account_from_row(r)
                    if keys:
                        for r in await conn.fetch(
                            "SELECT p.* FROM ledger_positions p JOIN unnest($1::text[], $2::text[]) AS k(a, s) "
                            "ON p.account_id = k.a AND p.symbol = k.s",
                            [k[0] for k in keys],
                            [k[1] for k in keys],
                            timeout=self.timeout,
                        ):
                            tx.positions[(r["account_id"], r["symbol"])] = position_from_row(r)
                    yield tx
                except BaseException:
                    try:
                        await conn.execute("ROLLBACK", timeout=self.timeout)
                    except BaseException:
                        conn.terminate()  # the pool replaces it; never back in the pool mid-transaction
                    raise
                await conn.execute("COMMIT", timeout=self.timeout)
        except LedgerError:
            raise
        except _UNAVAILABLE as exc:
            raise LedgerUnavailable(f"PostgreSQL unavailable during a booking: {type(exc).__name__}: {exc}") from exc

    async def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        rows = await self._fetch(
            "SELECT * FROM ledger_orders WHERE client_order_id = ANY($1::text[])", list(client_order_ids)
        )
        return {r["client_order_id"]: order_from_row(r) for r in rows}

    async def open_orders(self, venue: str) -> list[OrderRecord]:
        rows = await self._fetch(
            "SELECT * FROM ledger_orders WHERE venue = $1 "
            "AND status IN ('NEW', 'UNKNOWN', 'ACCEPTED', 'PARTIALLY_FILLED') ORDER BY created_ns",
            venue,
        )
        return [order_from_row(r) for r in rows]

    async def fills(
        self, *, client_order_ids: Sequence[str] | None = None, account_id: str | None = None
    ) -> list[Fill]:
        if client_order_ids is not None:
            rows = await self._fetch(
                "SELECT * FROM ledger_fills WHERE client_order_id = ANY($1::text[]) ORDER BY booked_ns, fill_id",
                list(client_order_ids),
            )
        elif account_id is not None:
            rows = await self._fetch(
                "SELECT * FROM ledger_fills WHERE account_id = $1 ORDER BY booked_ns, fill_id", account_id
            )
        else:
            rows = await self._fetch("SELECT * FROM ledger_fills ORDER BY booked_ns, fill_id")
        return [fill_from_row(r) for r in rows]

    async def existing_fill_ids(self, fill_ids: Sequence[str]) -> set[str]:
        rows = await self._fetch("SELECT fill_id FROM ledger_fills WHERE fill_id = ANY($1::text[])", list(fill_ids))
        return {r["fill_id"] for r in rows}

    async def orders(self, *, account_id: str | None = None, limit: int | None = None) -> list[OrderRecord]:
        sql = "SELECT * FROM ledger_orders"
        args: list[Any] = []
        if account_id is not None:
            sql += " WHERE account_id = $1"
            args.append(account_id)
        sql += " ORDER BY created_ns, client_order_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [order_from_row(r) for r in await self._fetch(sql, *args)]

    async def orders_page(self, query: OrderQuery) -> list[OrderRecord]:
        sql, args = orders_page_sql(query, lambda n: f"${n}")
        return [order_from_row(r) for r in await self._fetch(sql, *args)]

    async def fills_page(self, query: FillQuery) -> list[Fill]:
        sql, args = fills_page_sql(query, lambda n: f"${n}")
        return [fill_from_row(r) for r in await self._fetch(sql, *args)]

    async def positions(self, account_id: str) -> list[PositionRow]:
        rows = await self._fetch("SELECT * FROM ledger_positions WHERE account_id = $1 ORDER BY symbol", account_id)
        return [position_from_row(r) for r in rows]

    async def account(self, account_id: str) -> AccountRow | None:
        rows = await self._fetch("SELECT * FROM ledger_accounts WHERE account_id = $1", account_id)
        return account_from_row(rows[0]) if rows else None

    async def trading_state(self) -> StateRow:
        (r,) = await self._fetch("SELECT * FROM risk_trading_state WHERE id = 1")
        return StateRow(
            state=TradingState(r["state"]), reason=r["reason"], changed_by=r["changed_by"], changed_ns=r["changed_ns"]
        )

    async def set_trading_state(self, state: TradingState, reason: str, changed_by: str, now_ns: int) -> StateRow:
        await self._execute(
            "UPDATE risk_trading_state SET state = $1, reason = $2, changed_by = $3, changed_ns = $4 WHERE id = 1",
            state.value,
            reason,
            changed_by,
            now_ns,
        )
        return StateRow(state=state, reason=reason, changed_by=changed_by, changed_ns=now_ns)

    async def write_marks(self, marks: Sequence[tuple[str, Decimal, int]]) -> None:
        if not marks:
            return
        await self._execute(
            "INSERT INTO ledger_marks (symbol, price, ts_ns) SELECT * FROM unnest($1::text[], $2::numeric[], "
            "$3::bigint[]) ON CONFLICT (symbol) DO UPDATE SET price = EXCLUDED.price, ts_ns = EXCLUDED.ts_ns",
            [m[0] for m in marks],
            [m[1] for m in marks],
            [m[2] for m in marks],
        )

    async def marks(self) -> dict[str, Decimal]:
        return {r["symbol"]: r["price"] for r in await self._fetch("SELECT symbol, price FROM ledger_marks")}


__all__ = ["PostgresLedgerStore"]
