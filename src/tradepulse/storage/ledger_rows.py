"""Conversions between ledger rows and domain values, shared by the PostgreSQL and SQLite stores."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tradepulse.domain import (
    Fill,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
    TimeInForce,
)
from tradepulse.storage.ledger_store import AccountRow, OrderRecord, PositionRow, Quantities

ORDER_COLUMNS = (
    "client_order_id",
    "account_id",
    "strategy_id",
    "symbol",
    "side",
    "order_type",
    "time_in_force",
    "quantity",
    "limit_price",
    "stop_price",
    "reserve_price",
    "status",
    "filled_quantity",
    "filled_notional",
    "fees",
    "venue_order_id",
    "reject_reason",
    "status_message",
    "engine",
    "venue",
    "created_ns",
    "updated_ns",
)

FILL_COLUMNS = (
    "fill_id",
    "client_order_id",
    "account_id",
    "symbol",
    "side",
    "price",
    "quantity",
    "fee",
    "currency",
    "liquidity",
    "venue_order_id",
    "ts_exchange_ns",
)

POSITION_COLUMNS = (
    "account_id",
    "symbol",
    "currency",
    "quantity",
    "cost_basis",
    "realized_pnl",
    "fees",
    "released_buy_qty",
    "released_sell_qty",
    "released_buy_notional",
    "released_sell_notional",
    "updated_ns",
)

ACCOUNT_COLUMNS = ("account_id", "currency", "starting_cash", "cash", "fees", "realized_pnl", "updated_ns")


def dec(value: Any) -> Decimal:
    """Return a stored number as a Decimal (PostgreSQL gives Decimals, SQLite decimal strings)."""
    return value if isinstance(value, Decimal) else Decimal(value)


def opt_dec(value: Any) -> Decimal | None:
    return None if value is None else dec(value)


def order_values(record: OrderRecord) -> tuple[Any, ...]:
    o = record.order
    return (
        o.client_order_id,
        o.account_id,
        o.strategy_id,
        o.symbol,
        o.side.value,
        o.order_type.value,
        o.time_in_force.value,
        o.quantity,
        o.limit_price,
        o.stop_price,
        record.reserve_price,
        o.status.value,
        o.filled_quantity,
        o.filled_notional,
        o.fees,
        o.venue_order_id,
        None if o.reject_reason is None else o.reject_reason.value,
        o.status_message,
        record.engine,
        record.venue,
        o.created_ns,
        o.updated_ns,
    )


def order_from_row(row: Mapping[str, Any]) -> OrderRecord:
    reason = row["reject_reason"]
    order = Order(
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        quantity=dec(row["quantity"]),
        order_type=OrderType(row["order_type"]),
        limit_price=opt_dec(row["limit_price"]),
        stop_price=opt_dec(row["stop_price"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        strategy_id=row["strategy_id"],
        account_id=row["account_id"],
        status=OrderStatus(row["status"]),
        filled_quantity=dec(row["filled_quantity"]),
        filled_notional=dec(row["filled_notional"]),
        fees=dec(row["fees"]),
        venue_order_id=row["venue_order_id"],
        reject_reason=None if reason is None else RejectReason(reason),
        status_message=row["status_message"],
        created_ns=int(row["created_ns"]),
        updated_ns=int(row["updated_ns"]),
    )
    return OrderRecord(order=order, reserve_price=dec(row["reserve_price"]), engine=row["engine"], venue=row["venue"])


def fill_values(fill: Fill, account_id: str) -> tuple[Any, ...]:
    return (
        fill.fill_id,
        fill.client_order_id,
        account_id,
        fill.symbol,
        fill.side.value,
        fill.price,
        fill.quantity,
        fill.fee,
        fill.currency,
        fill.liquidity.value,
        fill.venue_order_id,
        fill.ts_exchange_ns,
    )


def fill_from_row(row: Mapping[str, Any]) -> Fill:
    return Fill(
        fill_id=row["fill_id"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        price=dec(row["price"]),
        quantity=dec(row["quantity"]),
        fee=dec(row["fee"]),
        currency=row["currency"],
        liquidity=Liquidity(row["liquidity"]),
        venue_order_id=row["venue_order_id"],
        ts_exchange_ns=int(row["ts_exchange_ns"]),
        ts_received_ns=int(row.get("booked_ns") or 0),
    )


def position_values(row: PositionRow) -> tuple[Any, ...]:
    p, r = row.position, row.released
    return (
        p.account_id,
        p.symbol,
        p.currency,
        p.quantity,
        p.cost_basis,
        p.realized_pnl,
        p.fees,
        r.buy_qty,
        r.sell_qty,
        r.buy_notional,
        r.sell_notional,
        p.updated_ns,
    )


def position_from_row(row: Mapping[str, Any]) -> PositionRow:
    return PositionRow(
        position=Position(
            account_id=row["account_id"],
            symbol=row["symbol"],
            currency=row["currency"],
            quantity=dec(row["quantity"]),
            cost_basis=dec(row["cost_basis"]),
            realized_pnl=dec(row["realized_pnl"]),
            fees=dec(row["fees"]),
            updated_ns=int(row["updated_ns"]),
        ),
        released=Quantities(
            buy_qty=dec(row["released_buy_qty"]),
            sell_qty=dec(row["released_sell_qty"]),
            buy_notional=dec(row["released_buy_notional"]),
            sell_notional=dec(row["released_sell_notional"]),
        ),
    )


def account_from_row(row: Mapping[str, Any]) -> AccountRow:
    return AccountRow(
        account_id=row["account_id"],
        currency=row["currency"],
        starting_cash=dec(row["starting_cash"]),
        cash=dec(row["cash"]),
        fees=dec(row["fees"]),
        realized_pnl=dec(row["realized_pnl"]),
        updated_ns=int(row["updated_ns"]),
    )


def quantities_from_row(row: Mapping[str, Any]) -> Quantities:
    return Quantities(
        buy_qty=dec(row["buy_qty"]),
        sell_qty=dec(row["sell_qty"]),
        buy_notional=dec(row["buy_notional"]),
        sell_notional=dec(row["sell_notional"]),
    )
