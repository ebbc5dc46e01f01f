"""The ledger's tables: accounts, orders, fills, positions, reservations, marks, and the trading state.

Money and quantities are NUMERIC in PostgreSQL and decimal strings (TEXT) in SQLite, never floats. Writes are
split so that admitting orders and booking fills never wait for each other:

* admissions insert orders, add to ``ledger_reserved`` and move ``ledger_admissions`` (seq, token) on: the
  optimistic-concurrency check between engines (an admission names the (seq, token) it follows, so a chain of
  admissions from one engine is never mistaken for another engine's);
* bookings insert fills and update orders, positions (with the ``released_*`` totals) and account cash.

What an account has reserved for open orders is ``reserved - released``.
"""

from __future__ import annotations

from tradepulse.storage.migrations import Migration

OPEN_STATUSES = ("NEW", "UNKNOWN", "ACCEPTED", "PARTIALLY_FILLED")
_OPEN_SQL = ", ".join(f"'{s}'" for s in OPEN_STATUSES)


def _ddl(money: str, ns: str, text: str) -> str:
    return f"""
CREATE TABLE ledger_accounts (
    account_id {text} PRIMARY KEY,
    currency {text} NOT NULL,
    starting_cash {money} NOT NULL,
    cash {money} NOT NULL,
    fees {money} NOT NULL DEFAULT 0,
    realized_pnl {money} NOT NULL DEFAULT 0,
    updated_ns {ns} NOT NULL DEFAULT 0
);
CREATE TABLE ledger_admissions (
    account_id {text} PRIMARY KEY REFERENCES ledger_accounts (account_id),
    seq {ns} NOT NULL DEFAULT 0,
    token {text} NOT NULL DEFAULT ''
);
CREATE TABLE ledger_orders (
    client_order_id {text} PRIMARY KEY,
    account_id {text} NOT NULL,
    strategy_id {text} NOT NULL,
    symbol {text} NOT NULL,
    side {text} NOT NULL,
    order_type {text} NOT NULL,
    time_in_force {text} NOT NULL,
    quantity {money} NOT NULL,
    limit_price {money},
    stop_price {money},
    reserve_price {money} NOT NULL,
    status {text} NOT NULL,
    filled_quantity {money} NOT NULL DEFAULT 0,
    filled_notional {money} NOT NULL DEFAULT 0,
    fees {money} NOT NULL DEFAULT 0,
    venue_order_id {text},
    reject_reason {text},
    status_message {text} NOT NULL DEFAULT '',
    engine {text} NOT NULL,
    venue {text} NOT NULL,
    created_ns {ns} NOT NULL,
    updated_ns {ns} NOT NULL
);
CREATE INDEX ledger_orders_open ON ledger_orders (venue) WHERE status IN ({_OPEN_SQL});
CREATE INDEX ledger_orders_account ON ledger_orders (account_id, created_ns);
CREATE TABLE ledger_fills (
    fill_id {text} PRIMARY KEY,
    client_order_id {text} NOT NULL REFERENCES ledger_orders (client_order_id),
    account_id {text} NOT NULL,
    symbol {text} NOT NULL,
    side {text} NOT NULL,
    price {money} NOT NULL,
    quantity {money} NOT NULL,
    fee {money} NOT NULL,
    currency {text} NOT NULL,
    liquidity {text} NOT NULL,
    venue_order_id {text},
    ts_exchange_ns {ns} NOT NULL,
    booked_ns {ns} NOT NULL
);
CREATE INDEX ledger_fills_order ON ledger_fills (client_order_id);
CREATE INDEX ledger_fills_account ON ledger_fills (account_id, symbol);
CREATE TABLE ledger_positions (
    account_id {text} NOT NULL,
    symbol {text} NOT NULL,
    currency {text} NOT NULL,
    quantity {money} NOT NULL DEFAULT 0,
    cost_basis {money} NOT NULL DEFAULT 0,
    realized_pnl {money} NOT NULL DEFAULT 0,
    fees {money} NOT NULL DEFAULT 0,
    released_buy_qty {money} NOT NULL DEFAULT 0,
    released_sell_qty {money} NOT NULL DEFAULT 0,
    released_buy_notional {money} NOT NULL DEFAULT 0,
    released_sell_notional {money} NOT NULL DEFAULT 0,
    updated_ns {ns} NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, symbol)
);
CREATE TABLE ledger_reserved (
    account_id {text} NOT NULL,
    symbol {text} NOT NULL,
    buy_qty {money} NOT NULL DEFAULT 0,
    sell_qty {money} NOT NULL DEFAULT 0,
    buy_notional {money} NOT NULL DEFAULT 0,
    sell_notional {money} NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, symbol)
);
CREATE TABLE ledger_marks (
    symbol {text} PRIMARY KEY,
    price {money} NOT NULL,
    ts_ns {ns} NOT NULL
);
CREATE TABLE risk_trading_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state {text} NOT NULL,
    reason {text} NOT NULL,
    changed_by {text} NOT NULL,
    changed_ns {ns} NOT NULL
);
INSERT INTO risk_trading_state (id, state, reason, changed_by, changed_ns)
    VALUES (1, 'ACTIVE', 'initial', 'migration', 0);
"""


_PAGE_INDEXES = """
CREATE INDEX ledger_fills_account_booked ON ledger_fills (account_id, booked_ns, fill_id);
CREATE INDEX ledger_orders_account_page ON ledger_orders (account_id, created_ns, client_order_id);
DROP INDEX ledger_orders_account;
"""

MIGRATIONS = [
    Migration(
        "ledger",
        1,
        "orders_fills_positions",
        postgres=_ddl("numeric", "bigint", "text"),
        sqlite=_ddl("TEXT", "INTEGER", "TEXT"),
    ),
    # the API pages an account's fills by (booked_ns, fill_id) and its orders by (created_ns, client_order_id)
    Migration(
        "ledger",
        2,
        "page_indexes",
        postgres=_PAGE_INDEXES,
        sqlite=_PAGE_INDEXES,
    ),
]
