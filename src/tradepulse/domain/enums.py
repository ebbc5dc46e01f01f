"""Enumerations shared by orders, fills and signals."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """Return +1 for BUY and -1 for SELL."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    NEW = "NEW"
    #: sent to the broker, but the call timed out: the broker may or may not have it until a query says
    UNKNOWN = "UNKNOWN"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class RejectReason(StrEnum):
    """Why an order was refused. Risk checks, the engine and brokers each use these codes."""

    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INSTRUMENT_NOT_TRADABLE = "INSTRUMENT_NOT_TRADABLE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    MAX_ORDER_QUANTITY = "MAX_ORDER_QUANTITY"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    PRICE_COLLAR = "PRICE_COLLAR"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    RATE_LIMIT = "RATE_LIMIT"
    TRADING_HALTED = "TRADING_HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    #: the order reached an engine after its deadline (its own, or ``risk.max_order_age_ms`` after it was
    #: sent); it was never sent to a broker
    STALE_ORDER = "STALE_ORDER"
    #: the broker never received the order (its submit timed out or the engine crashed); it was not resent
    LOST_AT_BROKER = "LOST_AT_BROKER"
    NO_LIQUIDITY = "NO_LIQUIDITY"
    MARKET_CLOSED = "MARKET_CLOSED"
    BROKER_ERROR = "BROKER_ERROR"
    LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class TradingState(StrEnum):
    """The kill switch. REDUCING admits only orders that shrink a position; HALTED admits none."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class SignalAction(StrEnum):
    SELL = "SELL"
    HOLD = "HOLD"
    BUY = "BUY"


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"
