"""Request and response models of the API's routes besides trading's (:mod:`tradepulse.api.trading_models`):
errors, health, signals, market data, models, risk.

msgspec Structs over the domain types only (no Litestar, no services), so that the routes and the Python client
(:mod:`tradepulse.api.client`) share them without the client importing the server.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from tradepulse.domain import Signal, SignalAction, Tick, TradingState

if TYPE_CHECKING:
    from tradepulse.config import RiskConfig
    from tradepulse.storage.ledger_store import StateRow

#: free text the API stores (reasons, names): no control characters (PostgreSQL text cannot hold NUL, and a
#: newline in a reason would forge log lines); use as ``msgspec.Meta(pattern=NO_CONTROL_CHARS, max_length=...)``
NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]*$"


# -- errors ----------------------------------------------------------------------------------------------------


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str
    field: str | None = None


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The body of every error response."""

    error: ErrorDetail


# -- health ----------------------------------------------------------------------------------------------------


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ok: bool
    #: what is wrong (no addresses or credentials), or "" when ok
    detail: str = ""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    checks: list[Check]


# -- signals ---------------------------------------------------------------------------------------------------


class SignalOut(msgspec.Struct, frozen=True, kw_only=True):
    """A model signal as the API returns it (``price`` is a decimal string; times are ``*_ns`` integers)."""

    symbol: str
    action: SignalAction
    confidence: float
    model_version: str
    ts_ns: int
    price: Decimal | None = None
    #: P(SELL), P(HOLD), P(BUY)
    probabilities: tuple[float, float, float] | None = None

    @classmethod
    def of(cls, s: Signal) -> SignalOut:
        return cls(
            symbol=s.symbol,
            action=s.action,
            confidence=s.confidence,
            model_version=s.model_version,
            ts_ns=s.ts_ns,
            price=s.price,
            probabilities=s.probabilities,
        )


class SignalList(msgspec.Struct, frozen=True, kw_only=True):
    signals: list[SignalOut]


# -- market data -----------------------------------------------------------------------------------------------


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """The latest tick of a symbol: last trade and the prevailing quote."""

    symbol: str
    ts_ns: int
    price: float
    size: float
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @classmethod
    def of(cls, t: Tick) -> Quote:
        return cls(
            symbol=t.symbol,
            ts_ns=t.ts_ns,
            price=t.price,
            size=t.size,
            bid=t.bid,
            ask=t.ask,
            bid_size=t.bid_size,
            ask_size=t.ask_size,
        )


class QuoteList(msgspec.Struct, frozen=True, kw_only=True):
    quotes: list[Quote]


class TickOut(msgspec.Struct, frozen=True, kw_only=True, array_like=False):
    ts_ns: int
    price: float
    size: float
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class TickList(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    start_ns: int
    end_ns: int
    ticks: list[TickOut]


class BarOut(msgspec.Struct, frozen=True, kw_only=True):
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    #: null where nothing traded
    vwap: float | None
    trades: int


class BarList(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    interval: str
    bars: list[BarOut]


# -- models ----------------------------------------------------------------------------------------------------


class ModelSummary(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    kind: str
    created: str
    promoted: bool


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    promoted: str | None
    models: list[ModelSummary]


class ModelDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A model version and what its training measured (walk-forward metrics, the random-walk control, ...)."""

    version: str
    kind: str
    created: str
    promoted: bool
    metrics: dict[str, Any]
    params: dict[str, Any]
    labels: dict[str, Any]
    validation: dict[str, Any]
    data: dict[str, Any]
    training_seconds: float | None = None


# -- risk ------------------------------------------------------------------------------------------------------


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The pre-trade limits engines enforce (amounts are decimal strings; every limit is inclusive)."""

    accounts: list[str]
    currency: str
    max_order_quantity: Decimal
    max_order_notional: Decimal
    price_collar: Decimal
    max_position: Decimal
    max_gross_exposure: Decimal
    check_cash: bool
    fee_reserve_bps: Decimal
    allow_short: bool
    max_orders_per_s: int
    max_daily_loss: Decimal

    @classmethod
    def of(cls, r: RiskConfig) -> RiskLimits:
        return cls(
            accounts=list(r.accounts),
            currency=r.currency,
            max_order_quantity=r.max_order_quantity,
            max_order_notional=r.max_order_notional,
            price_collar=r.price_collar,
            max_position=r.max_position,
            max_gross_exposure=r.max_gross_exposure,
            check_cash=r.check_cash,
            fee_reserve_bps=r.fee_reserve_bps,
            allow_short=r.allow_short,
            max_orders_per_s=r.max_orders_per_s,
            max_daily_loss=r.max_daily_loss,
        )


class TradingStateOut(msgspec.Struct, frozen=True, kw_only=True):
    state: TradingState
    reason: str
    changed_by: str
    changed_ns: int

    @classmethod
    def of(cls, row: StateRow) -> TradingStateOut:
        return cls(state=row.state, reason=row.reason, changed_by=row.changed_by, changed_ns=row.changed_ns)


class SetTradingState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The kill switch: ACTIVE, REDUCING (only orders that shrink a position) or HALTED."""

    state: TradingState
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=NO_CONTROL_CHARS)]


__all__ = [
    "NO_CONTROL_CHARS",
    "BarList",
    "BarOut",
    "Check",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "ModelDetail",
    "ModelList",
    "ModelSummary",
    "Quote",
    "QuoteList",
    "Readiness",
    "RiskLimits",
    "SetTradingState",
    "SignalList",
    "SignalOut",
    "TickList",
    "TickOut",
    "TradingStateOut",
]
