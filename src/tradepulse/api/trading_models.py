"""Request and response models of the trading API (orders, fills, positions, account, rebalance).

msgspec Structs: Decimal money and quantities serialize as JSON strings, and requests give them as strings too
(``"10"``, ``"101.25"``: never a binary float on the way in, and the schema says exactly what is accepted);
times are integers of nanoseconds since the epoch (``*_ns``). The order id of the API is the client
order id: the ledger keys orders by it, and it is unique across accounts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from tradepulse.domain import Fill, Order, OrderStatus, OrderType, RejectReason, Side, TimeInForce

#: client order ids, strategy ids: 1-64 of ``A-Z a-z 0-9 . _ : -``
ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, description="1-64 characters of A-Z a-z 0-9 . _ : -")]
SymbolName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,31}$", description="An instrument.")]
#: a positive decimal as a string: up to 15 integer digits and 12 decimals (not zero)
POSITIVE_DECIMAL = r"^(?!0*(\.0*)?$)[0-9]{1,15}(\.[0-9]{1,12})?$"
#: a non-negative decimal as a string
DECIMAL = r"^[0-9]{1,15}(\.[0-9]{1,12})?$"
PositiveDecimal = Annotated[
    str, msgspec.Meta(pattern=POSITIVE_DECIMAL, description='A decimal > 0 as a string (e.g. "10", "101.25").')
]
NonNegativeDecimal = Annotated[
    str, msgspec.Meta(pattern=DECIMAL, description='A decimal >= 0 as a string (e.g. "0.25").')
]
ValidFor = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=86_400_000,
        description="Milliseconds after the API received the order within which an engine may still admit it; "
        "later it is rejected STALE_ORDER and never executes.",
    ),
]
RebalanceId = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9._\-]{1,24}$", description="Names the orders: rb-{id}-{S|B}-{symbol}.")
]


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/orders. ``client_order_id`` makes the call idempotent: the same id again returns the order
    it made (200), never a second one."""

    client_order_id: Id
    symbol: SymbolName
    side: Side
    quantity: PositiveDecimal
    order_type: OrderType = OrderType.MARKET
    limit_price: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    strategy_id: Id = "api"
    #: an engine may admit the order up to this many ms after the API received it; later it is rejected
    #: STALE_ORDER and never executes (none: the engines' ``risk.max_order_age_ms`` only)
    valid_for_ms: ValidFor | None = None


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
    """An order with its fills. ``outcome`` of a submit: ``created`` (201), ``existing`` (200: the id was already
    used by this account; nothing executed again), ``pending`` (202: no answer within the wait; GET it later); of a
    cancel: ``done`` (200: the order is final) or ``pending`` (202); of a GET: ``current`` (as booked). A risk
    rejection is a created order with status REJECTED and its reject_reason."""

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
    """POST /api/v1/rebalance/preview: targets for the account's current positions, priced at the latest marks:
    weights (fractions of the investable value, summing to at most 1) or, with ``target_unit: "quantity"``,
    shares per symbol. Symbols held but not named are sold. Options left out come from the ``rebalance``
    settings. ``rebalance_id`` names the orders (default: a hash of the inputs)."""

    #: symbol -> target, a decimal string: a weight, or shares with ``target_unit: "quantity"``
    targets: dict[str, str]
    target_unit: Literal["weight", "quantity"] = "weight"
    rebalance_id: RebalanceId | None = None
    drift_abs: NonNegativeDecimal | None = None
    drift_rel: NonNegativeDecimal | None = None
    min_trade_notional: NonNegativeDecimal | None = None
    cash_buffer: NonNegativeDecimal | None = None
    max_turnover: NonNegativeDecimal | None = None
    buy_only: bool = False


class RebalanceExecuteRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/rebalance/execute: as the preview, with a required ``rebalance_id``. Re-executing an id
    that has orders already submits nothing new and reports them."""

    #: symbol -> target, a decimal string: a weight, or shares with ``target_unit: "quantity"``
    targets: dict[str, str]
    target_unit: Literal["weight", "quantity"] = "weight"
    rebalance_id: RebalanceId
    drift_abs: NonNegativeDecimal | None = None
    drift_rel: NonNegativeDecimal | None = None
    min_trade_notional: NonNegativeDecimal | None = None
    cash_buffer: NonNegativeDecimal | None = None
    max_turnover: NonNegativeDecimal | None = None
    buy_only: bool = False

    def plan_request(self) -> RebalanceRequest:
        return RebalanceRequest(**{f: getattr(self, f) for f in self.__struct_fields__})


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
    "RebalanceExecuteRequest",
    "RebalanceExecution",
    "RebalancePreview",
    "RebalanceRequest",
]
