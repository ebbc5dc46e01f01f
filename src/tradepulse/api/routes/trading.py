"""Orders and fills: submit (idempotent by client order id), get, list (filters, cursor pages), cancel; fills.

Every route acts on the key's own account (an ADMIN key may name another with ``?account=``): another account's
order is a 404, never a 403, so ids do not leak. Reads need a READ key, submitting and canceling a TRADE key.
The semantics (201 / 200 / 202 / 409 / 422) are :class:`~tradepulse.api.trading_service.TradingService`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from litestar import Request, Response, Router, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter

from tradepulse.api.auth import Principal, Scope, account_of, requires
from tradepulse.api.errors import NOT_FOUND, ApiError, ErrorBody
from tradepulse.api.routes.common import SYMBOL_PATTERN, Symbol, time_ns_param
from tradepulse.api.services import Services, ServicesDep
from tradepulse.api.trading_models import FillPage, FillView, OrderPage, OrderRequest, OrderResponse
from tradepulse.api.trading_service import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, TradingError, TradingService
from tradepulse.domain import OrderStatus, Side

#: a client order id in a path (the API's order id)
OrderId = Annotated[
    str, Parameter(pattern=r"^[A-Za-z0-9._:\-]{1,64}$", max_length=64, description="The (client) order id.")
]
_ID = r"^[A-Za-z0-9._:\-]{1,64}$"
Account = Annotated[
    str | None,
    Parameter(pattern=_ID, max_length=64, description="Act on another account (ADMIN keys only).", required=False),
]
OrderIdFilter = Annotated[
    str | None, Parameter(pattern=_ID, max_length=64, description="Only this order.", required=False)
]
Cursor = Annotated[
    str | None,
    Parameter(
        pattern=CURSOR_PATTERN,
        max_length=220,
        description="The `next` of the previous page.",
        required=False,
    ),
]
Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description=f"Page size (at most {MAX_LIMIT}).")]
Direction = Annotated[
    Literal["asc", "desc"], Parameter(description="asc: oldest first (new orders join the end); desc: newest first.")
]
SymbolFilter = Annotated[
    str | None, Parameter(pattern=SYMBOL_PATTERN, max_length=32, description="Only this symbol.", required=False)
]
SinceNs = Annotated[int | None, time_ns_param("From this time (inclusive).")]
UntilNs = Annotated[int | None, time_ns_param("Before this time (exclusive).")]

_CONFLICT = ResponseSpec(ErrorBody, description="The client order id belongs to another account.")
_SUBMIT_RESPONSES = {
    200: ResponseSpec(OrderResponse, description="This account already used the client order id: its order."),
    202: ResponseSpec(OrderResponse, description="No final answer within the wait: the order as known so far."),
    409: _CONFLICT,
}
_CANCEL_RESPONSES = {
    **NOT_FOUND,
    202: ResponseSpec(OrderResponse, description="The cancel is on its way: the order as known so far."),
    409: ResponseSpec(ErrorBody, description="The order is already final."),
}


def trading(services: Services) -> TradingService:
    """Return the services' trading service (built on first use)."""
    svc = services.trading
    if svc is None:
        svc = services.trading = TradingService.create(
            services.settings, services.ledger, services.orders, timeout_s=services.settings.api.order_timeout_s
        )
    assert isinstance(svc, TradingService)
    return svc


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn the service's refusals into API errors (same status, code and field)."""
    try:
        yield
    except TradingError as exc:
        raise ApiError(exc.status, exc.code, exc.message, field=exc.field) from None


@post(
    "/orders",
    guards=[requires(Scope.TRADE)],
    status_code=201,
    summary="Submit an order (idempotent by client_order_id)",
    responses=_SUBMIT_RESPONSES,
)
async def submit_order(
    request: Request[Principal, Any, Any], services: ServicesDep, data: JSONBody[OrderRequest], account: Account = None
) -> Response[OrderResponse]:
    """Validate, then publish to the engine and wait: MARKET / IOC / FOK until final, others until accepted.
    201 with the new order (a risk rejection is a REJECTED order with its reject_reason), 200 with the order
    this account already made with the same client_order_id (nothing executes again), 202 when no answer came
    within ``api.order_timeout_s``, 409 when another account holds the id, 422 naming the field at fault."""
    with api_errors():  # duplicate JSON keys were refused before the handler (app.check_request)
        status, answer = await trading(services).submit(data, account_of(request.user, account))
    return Response(answer, status_code=status)


@get("/orders/{order_id:str}", summary="Get an order with its fills", responses=NOT_FOUND)
async def get_order(
    request: Request[Principal, Any, Any], services: ServicesDep, order_id: OrderId, account: Account = None
) -> OrderResponse:
    """The order as booked in the ledger, with its booked fills (404: none, or another account's)."""
    with api_errors():
        return await trading(services).get(order_id, account_of(request.user, account))


@get("/orders/{order_id:str}/fills", summary="Fills of an order", responses=NOT_FOUND)
async def get_order_fills(
    request: Request[Principal, Any, Any], services: ServicesDep, order_id: OrderId, account: Account = None
) -> list[FillView]:
    with api_errors():
        return await trading(services).order_fills(order_id, account_of(request.user, account))


@get("/orders", summary="List orders (filters, cursor pages)")
async def list_orders(
    request: Request[Principal, Any, Any],
    services: ServicesDep,
    client_order_id: OrderIdFilter = None,
    symbol: SymbolFilter = None,
    status: Annotated[
        list[OrderStatus] | None, Parameter(description="Only these statuses (repeat the parameter).", required=False)
    ] = None,
    side: Annotated[Side | None, Parameter(required=False)] = None,
    since_ns: SinceNs = None,
    until_ns: UntilNs = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    order: Direction = "asc",
    account: Account = None,
) -> OrderPage:
    """The account's orders ordered by (created_ns, order id); follow ``next`` until it is null."""
    with api_errors():
        return await trading(services).list_orders(
            account_of(request.user, account),
            symbol=symbol,
            status=status or (),
            side=side,
            client_order_id=client_order_id,
            since_ns=since_ns,
            until_ns=until_ns,
            cursor=cursor,
            limit=limit,
            order=order,
        )


@delete(
    "/orders/{order_id:str}",
    guards=[requires(Scope.TRADE)],
    status_code=200,
    summary="Cancel an order",
    responses=_CANCEL_RESPONSES,
)
async def cancel_order(
    request: Request[Principal, Any, Any], services: ServicesDep, order_id: OrderId, account: Account = None
) -> Response[OrderResponse]:
    """Cancel an open order and wait for it to end: 200 with the final order (CANCELED, or FILLED if the fill
    came first), 202 if the engine did not answer in time, 404 (none or another account's), 409 (already final)."""
    with api_errors():
        status, answer = await trading(services).cancel(order_id, account_of(request.user, account))
    return Response(answer, status_code=status)


@get("/fills", summary="List fills (filters, cursor pages)")
async def list_fills(
    request: Request[Principal, Any, Any],
    services: ServicesDep,
    symbol: SymbolFilter = None,
    side: Annotated[Side | None, Parameter(required=False)] = None,
    order_id: OrderIdFilter = None,
    since_ns: SinceNs = None,
    until_ns: UntilNs = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    order: Direction = "asc",
    account: Account = None,
) -> FillPage:
    """The account's fills in booking order (time bounds on booked_ns); follow ``next`` until it is null."""
    with api_errors():
        return await trading(services).list_fills(
            account_of(request.user, account),
            symbol=symbol,
            side=side,
            order_id=order_id,
            since_ns=since_ns,
            until_ns=until_ns,
            cursor=cursor,
            limit=limit,
            order=order,
        )


router = Router(
    path="/api/v1",
    route_handlers=[submit_order, get_order, get_order_fills, list_orders, cancel_order, list_fills],
    guards=[requires(Scope.READ)],
    tags=["trading"],
)

__all__ = ["Symbol", "api_errors", "router", "trading"]
