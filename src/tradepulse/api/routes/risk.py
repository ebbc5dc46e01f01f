"""Risk: the pre-trade limits, and the trading state (the kill switch; setting it needs an ADMIN key).

Setting the state writes it to the ledger (like ``tradepulse risk set``): every engine applies it within
``risk.state_poll_ms``; HALTED cancels open orders and rejects new ones until an admin sets ACTIVE again.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, put
from litestar.params import JSONBody

from tradepulse.api.auth import Principal, Scope, requires
from tradepulse.api.services import ServicesDep
from tradepulse.config import RiskConfig
from tradepulse.domain import TradingState
from tradepulse.storage.ledger_store import StateRow


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
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


@get("/risk/limits", sync_to_thread=False, summary="Pre-trade risk limits")
def limits(services: ServicesDep) -> RiskLimits:
    return RiskLimits.of(services.settings.risk)


@get("/risk/state", summary="Trading state")
async def trading_state(services: ServicesDep) -> TradingStateOut:
    """The persisted trading state, why and by whom it was set."""
    return TradingStateOut.of(await services.ledger.trading_state())


@put("/risk/state", guards=[requires(Scope.ADMIN)], summary="Set the trading state (kill switch; admin)")
async def set_trading_state(
    request: Request[Principal, Any, Any], services: ServicesDep, data: JSONBody[SetTradingState]
) -> TradingStateOut:
    """Set the trading state; engines apply it within ``risk.state_poll_ms``."""
    who = f"api:{request.user.name} ({request.user.key_id})"
    row = await services.ledger.set_trading_state(data.state, data.reason, who, time.time_ns())
    return TradingStateOut.of(row)


router = Router(
    path="/api/v1",
    route_handlers=[limits, trading_state, set_trading_state],
    guards=[requires(Scope.READ)],
    tags=["risk"],
)
