"""Risk: the pre-trade limits, and the trading state (the kill switch; setting it needs an ADMIN key).

Setting the state writes it to the ledger (like ``tradepulse risk set``): every engine applies it within
``risk.state_poll_ms``; HALTED cancels open orders and rejects new ones until an admin sets ACTIVE again.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Router, get, put
from litestar.params import JSONBody

from tradepulse.api.auth import Principal, Scope, requires
from tradepulse.api.schemas import RiskLimits, SetTradingState, TradingStateOut
from tradepulse.api.services import ServicesDep


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
