"""Paged, filtered reads of orders and fills, shared by the PostgreSQL and SQLite ledger stores.

Pages use keyset pagination on a stable, unique ordering: orders by ``(created_ns, client_order_id)``, fills by
``(booked_ns, fill_id)``. Neither key ever changes once a row is written, so walking the pages with the cursor
of each page's last row visits every row that existed when the walk started exactly once, even while new rows
arrive (they sort after the cursor in ascending walks) and other rows change status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from tradepulse.domain import OrderStatus, Side

#: the largest page a store returns (callers asking for more get this many)
MAX_PAGE = 1_000


class OrderQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which orders of one account, in which order, after which key. Time bounds are on ``created_ns``:
    ``since_ns`` inclusive, ``until_ns`` exclusive."""

    account_id: str
    symbol: str | None = None
    statuses: tuple[OrderStatus, ...] = ()
    side: Side | None = None
    client_order_id: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    #: the (created_ns, client_order_id) of the last row of the previous page
    after: tuple[int, str] | None = None
    descending: bool = False
    limit: int = 100


class FillQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which fills of one account. Time bounds are on ``booked_ns`` (when the ledger booked the fill)."""

    account_id: str
    symbol: str | None = None
    side: Side | None = None
    client_order_id: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    #: the (booked_ns, fill_id) of the last row of the previous page
    after: tuple[int, str] | None = None
    descending: bool = False
    limit: int = 100


def _page_sql(
    table: str,
    time_col: str,
    id_col: str,
    q: OrderQuery | FillQuery,
    param: Callable[[int], str],
) -> tuple[str, list[Any]]:
    args: list[Any] = []

    def p(value: Any) -> str:
        args.append(value)
        return param(len(args))

    where = [f"account_id = {p(q.account_id)}"]
    if q.symbol is not None:
        where.append(f"symbol = {p(q.symbol)}")
    if q.side is not None:
        where.append(f"side = {p(q.side.value)}")
    if q.client_order_id is not None:
        where.append(f"client_order_id = {p(q.client_order_id)}")
    if isinstance(q, OrderQuery) and q.statuses:
        where.append(f"status IN ({', '.join(p(s.value) for s in q.statuses)})")
    if q.since_ns is not None:
        where.append(f"{time_col} >= {p(q.since_ns)}")
    if q.until_ns is not None:
        where.append(f"{time_col} < {p(q.until_ns)}")
    if q.after is not None:
        op = "<" if q.descending else ">"
        where.append(f"({time_col}, {id_col}) {op} ({p(q.after[0])}, {p(q.after[1])})")
    direction = "DESC" if q.descending else "ASC"
    limit = max(1, min(int(q.limit), MAX_PAGE))
    sql = (
        f"SELECT * FROM {table} WHERE {' AND '.join(where)} "
        f"ORDER BY {time_col} {direction}, {id_col} {direction} LIMIT {limit}"
    )
    return sql, args


def orders_page_sql(q: OrderQuery, param: Callable[[int], str]) -> tuple[str, list[Any]]:
    """Return the SQL and arguments of one page of orders (``param(n)`` spells the n-th placeholder)."""
    return _page_sql("ledger_orders", "created_ns", "client_order_id", q, param)


def fills_page_sql(q: FillQuery, param: Callable[[int], str]) -> tuple[str, list[Any]]:
    """Return the SQL and arguments of one page of fills (``param(n)`` spells the n-th placeholder)."""
    return _page_sql("ledger_fills", "booked_ns", "fill_id", q, param)


__all__ = ["MAX_PAGE", "FillQuery", "OrderQuery", "fills_page_sql", "orders_page_sql"]
