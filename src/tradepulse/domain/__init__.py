"""Pure value types and rules of the trading domain. No I/O, and nothing else of ours is imported here.

Money, quantities and prices of orders, fills, positions and cash are :class:`~decimal.Decimal`; market
observations (ticks, bars) and model outputs are floats.
"""

from __future__ import annotations

from tradepulse.domain.batch import BAR_INTERVALS, BarBatch, TickBatch, interval_seconds
from tradepulse.domain.enums import (
    TERMINAL_STATUSES,
    Liquidity,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    SignalAction,
    TimeInForce,
    TradingState,
)
from tradepulse.domain.fills import Fill
from tradepulse.domain.instruments import Instrument, InstrumentError
from tradepulse.domain.market import Bar, Tick
from tradepulse.domain.messages import Message, stage_durations, stamp
from tradepulse.domain.money import Money, to_decimal
from tradepulse.domain.orders import (
    TRANSITIONS,
    CancelOrder,
    InvalidTransition,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderEventKind,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderUnknown,
    SubmitOrder,
)
from tradepulse.domain.positions import Account, Position
from tradepulse.domain.reports import TERMINAL_EVENT_KINDS, ExecutionReport, ReportItem, is_terminal_item
from tradepulse.domain.signals import Signal

#: Every concrete message type that may travel on the bus. The codec decodes exactly these.
MESSAGE_TYPES: tuple[type[Message], ...] = (
    Tick,
    Bar,
    Signal,
    SubmitOrder,
    CancelOrder,
    Order,
    OrderAccepted,
    OrderRejected,
    OrderPartiallyFilled,
    OrderFilled,
    OrderCanceled,
    OrderExpired,
    OrderUnknown,
    ExecutionReport,
)

__all__ = [
    "BAR_INTERVALS",
    "MESSAGE_TYPES",
    "TERMINAL_EVENT_KINDS",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "Account",
    "Bar",
    "BarBatch",
    "CancelOrder",
    "ExecutionReport",
    "Fill",
    "Instrument",
    "InstrumentError",
    "InvalidTransition",
    "Liquidity",
    "Message",
    "Money",
    "Order",
    "OrderAccepted",
    "OrderCanceled",
    "OrderEvent",
    "OrderEventKind",
    "OrderExpired",
    "OrderFilled",
    "OrderPartiallyFilled",
    "OrderRejected",
    "OrderStatus",
    "OrderType",
    "OrderUnknown",
    "Position",
    "RejectReason",
    "ReportItem",
    "Side",
    "Signal",
    "SignalAction",
    "SubmitOrder",
    "Tick",
    "TickBatch",
    "TimeInForce",
    "TradingState",
    "interval_seconds",
    "is_terminal_item",
    "stage_durations",
    "stamp",
    "to_decimal",
]
