"""Request and response models of the trading API (orders, fills, positions, account, rebalance).

msgspec Structs: Decimal money and quantities serialize as JSON strings (and are accepted as strings or
numbers); times are integers of nanoseconds since the epoch (``*_ns``). The order id of the API is the client
order id: the ledger keys orders by it, and it is unique across accounts.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradepulse.domain import Fill, Order, OrderStatus, OrderType, RejectReason, Side, TimeInForce


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/orders. ``client_order_id`` makes the call idempotent: the same id again returns the order
    it made (200), never a second one."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    strategy_id: str = "api"


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the API shows it. ``order_id`` equals ``client_order_id``."""

    order_id: str
    client_order_id: str
    account_id: str
    strategy_id: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    leaves_quantity: Decimal
    avg_fill_price: Decimal | None
    filled_notional: Decimal
    fees: Decimal
    venue_order_id: str | None
    reject_reason: RejectReason | None
    status_message: str
    created_ns: int
    updated_ns: int

    @classmethod
    def of(cls, o: Order) -> OrderView:
        return cls(
            order_id=o.client_order_id,
            client_order_id=o.client_order_id,
            account_id=o.account_id,
            strategy_id=o.strategy_id,
            symbol=o.symbol,
            side=o.side,
            order_type=o.order_type,
            time_in_force=o.time_in_force,
            quantity=o.quantity,
            limit_price=o.limit_price,
            stop_price=o.stop_price,
            status=o.status,
            filled_quantity=o.filled_quantity,
            leaves_quantity=o.leaves_quantity,
            avg_fill_price=o.avg_fill_price,
            filled_notional=o.filled_notional,
            fees=o.fees,
            venue_order_id=o.venue_order_id,
            reject_reason=o.reject_reason,
            status_message=o.status_message,
            created_ns=o.created_ns,
            updated_ns=o.updated_ns,
        )


class FillView(msgspec.Struct, frozen=True, kw_only=True):
    """A fill. ``booked_ns`` is when the ledger booked it (0 in a POST answer: not booked yet)."""

    fill_id: str
    order_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    currency: str
    liquidity: str
    ts_exchange_ns: int
    booked_ns: int

    @classmethod
    def of(cls, f: Fill) -> FillView:
        return cls(
            fill_id=f.fill_id,
            order_id=f.client_order_id,
            symbol=f.symbol,
            side=f.side,
            price=f.price,
            quantity=f.quantity,
            fee=f.fee,
            currency=f.currency,
            liquidity=f.liquidity.value,
            ts_exchange_ns=f.ts_exchange_ns,
            booked_ns=f.ts_received_ns,
        )


class OrderResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a submit or a cancel. ``outcome``: ``created`` (201), ``existing`` (200: the id was already
    used by this account), ``pending`` (202: no final answer within the wait; GET the order later), or for a
    cancel ``done`` / ``pending``. A risk rejection is a created order with status REJECTED and a reject_reason."""

    outcome: str
    order: OrderView
    fills: list[FillView]


class OrderPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of orders; pass ``next`` as ``cursor`` for the following page (null at the end)."""

    orders: list[OrderView]
    next: str | None


class FillPage(msgspec.Struct, frozen=True, kw_only=True):
    fills: list[FillView]
    next: str | None


class PositionView(msgspec.Struct, frozen=True, kw_only=True):
    """A position marked at the latest mark (``mark`` null: no price yet; its market value is then its cost)."""

    symbol: str
    quantity: Decimal
    avg_price: Decimal | None
    cost_basis: Decimal
    mark: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    fees: Decimal
    currency: str
    updated_ns: int


class AccountView(msgspec.Struct, frozen=True, kw_only=True):
    """Cash, positions at the marks, PnL and fees, exact. ``equity`` = cash + positions_value."""

    account_id: str
    currency: str
    starting_cash: Decimal
    cash: Decimal
    positions_value: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    positions: int
    updated_ns: int


class RebalanceRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/rebalance/preview and /execute: target weights (fractions of the investable value, summing
    to at most 1) for the account's current positions, priced at the latest marks. Options left out come from
    the ``rebalance`` settings. ``rebalance_id`` (required to execute) names the orders: re-executing an id
    that has orders already submits nothing new and reports them."""

    targets: dict[str, Decimal]
    rebalance_id: str | None = None
    drift_abs: Decimal | None = None
    drift_rel: Decimal | None = None
    min_trade_notional: Decimal | None = None
    cash_buffer: Decimal | None = None
    max_turnover: Decimal | None = None
    buy_only: bool = False


class PlannedOrder(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal


class PlannedPosition(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    quantity_before: Decimal
    quantity_after: Decimal
    price: Decimal
    target_weight: Decimal
    weight_before: Decimal
    weight_after: Decimal
    reason: str


class RebalancePreview(msgspec.Struct, frozen=True, kw_only=True):
    """The plan: orders (sells first), positions before and after, and the totals."""

    rebalance_id: str
    orders: list[PlannedOrder]
    positions: list[PlannedPosition]
    cash_before: Decimal
    cash_after: Decimal
    value_before: Decimal
    value_after: Decimal
    traded_notional: Decimal
    turnover: Decimal
    fees: Decimal


class RebalanceExecution(msgspec.Struct, frozen=True, kw_only=True):
    """What executing a rebalance did. ``outcome``: ``executed`` (every order final), ``pending`` (some order
    had no final answer in time), ``replayed`` (the id had orders already: nothing new was sent)."""

    rebalance_id: str
    outcome: str
    plan: RebalancePreview | None
    orders: list[OrderView]
    replanned_buys: bool
    failed: int


__all__ = [
    "AccountView",
    "FillPage",
    "FillView",
    "OrderPage",
    "OrderRequest",
    "OrderResponse",
    "OrderView",
    "PlannedOrder",
    "PlannedPosition",
    "PositionView",
    "RebalanceExecution",
    "RebalancePreview",
    "RebalanceRequest",
]
