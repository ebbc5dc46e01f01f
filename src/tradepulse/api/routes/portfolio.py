"""Positions, the account (cash, PnL at the marks) and rebalancing (preview; execute needs a TRADE key)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from tradepulse.api.auth import Principal, Scope, account_of, requires
from tradepulse.api.errors import NOT_FOUND, ErrorBody
from tradepulse.api.routes.common import Symbol
from tradepulse.api.routes.trading import Account, api_errors, trading
from tradepulse.api.services import ServicesDep
from tradepulse.api.trading_models import (
    AccountView,
    PositionView,
    RebalanceExecution,
    RebalancePreview,
    RebalanceRequest,
)


@get("/positions", summary="Positions at the latest marks")
async def positions(
    request: Request[Principal, Any, Any], services: ServicesDep, account: Account = None
) -> list[PositionView]:
    """Every position the account has had (flat ones carry realized PnL), by symbol."""
    with api_errors():
        return await trading(services).positions(account_of(request.user, account))


@get("/positions/{symbol:str}", summary="One position", responses=NOT_FOUND)
async def position(
    request: Request[Principal, Any, Any], services: ServicesDep, symbol: Symbol, account: Account = None
) -> PositionView:
    """A known instrument never traded is a flat position; an unknown symbol is a 404."""
    with api_errors():
        return await trading(services).position(symbol, account_of(request.user, account))


@get("/account", summary="Cash, positions value, equity, PnL and fees", responses=NOT_FOUND)
async def account_summary(
    request: Request[Principal, Any, Any], services: ServicesDep, account: Account = None
) -> AccountView:
    """Exact decimals (as strings): equity = cash + positions at the marks."""
    with api_errors():
        return await trading(services).account(account_of(request.user, account))


@post("/rebalance/preview", status_code=200, summary="Plan a rebalance to target weights")
async def rebalance_preview(
    request: Request[Principal, Any, Any],
    services: ServicesDep,
    data: JSONBody[RebalanceRequest],
    account: Account = None,
) -> RebalancePreview:
    """The orders (sells first) that bring the account's positions to ``targets`` at the latest marks."""
    with api_errors():
        return await trading(services).preview(data, account_of(request.user, account))


@post(
    "/rebalance/execute",
    guards=[requires(Scope.TRADE)],
    status_code=200,
    summary="Execute a rebalance (idempotent by rebalance_id)",
    responses={
        202: ResponseSpec(RebalanceExecution, description="Some order had no final answer in time."),
        409: ResponseSpec(ErrorBody, description="The rebalance id is used by another account."),
    },
)
async def rebalance_execute(
    request: Request[Principal, Any, Any],
    services: ServicesDep,
    data: JSONBody[RebalanceRequest],
    account: Account = None,
) -> Response[RebalanceExecution]:
    """Send the plan's sells, await them, then its buys, as ``rb-{rebalance_id}-{S|B}-{symbol}``. An id that
    already has orders submits nothing new: its orders are reported (``outcome: replayed``)."""
    with api_errors():
        status, answer = await trading(services).execute(data, account_of(request.user, account))
    return Response(answer, status_code=status)


router = Router(
    path="/api/v1",
    route_handlers=[positions, position, account_summary, rebalance_preview, rebalance_execute],
    guards=[requires(Scope.READ)],
    tags=["portfolio"],
)

__all__ = ["router"]
