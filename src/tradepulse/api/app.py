"""The Litestar application: routers, authentication, errors, limits, compression and metrics.

``create_app(services)`` builds the app over services that are already open (tests, the embedded runtime);
``app_factory()`` builds one from settings that opens its services in the app's lifespan (what each worker of
``tradepulse api`` runs, with uvicorn or granian).

How a handler gets at the platform: declare a parameter ``services: ServicesDep`` (``NamedDependency[Services]``);
it is resolved from ``app.state.services``. ``request.user`` is the caller's
:class:`~tradepulse.api.auth.Principal`. Each router declares the scope its routes need with
``guards=[requires(Scope.READ)]``; a handler may ask for more.

Adding an area: write ``api/routes/NAME.py`` exposing ``router = Router(path="/api/v1", ...)`` and add
``NAME.router`` to :data:`ROUTERS` below (one line). Every route is then authenticated, rate limited, measured,
documented in the OpenAPI schema (``/schema/openapi.json``) with its error responses, and fuzzed by the
schemathesis test (tests/integration/api/test_schemathesis.py), which walks every registered route.

Requests are refused with 413 beyond ``api.max_body_bytes``, and with 422 when they carry a query parameter
the route does not declare (a typo is an error, not silently ignored). Responses above ``api.gzip_min_bytes``
are gzip-compressed for clients that accept it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Litestar, Request, Router
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.params import ParameterKwarg

from tradepulse import __version__
from tradepulse.api.auth import PUBLIC_PATHS, AuthMiddleware
from tradepulse.api.errors import EXCEPTION_HANDLERS, ApiError, ErrorBody
from tradepulse.api.metrics import MetricsMiddleware, metrics
from tradepulse.api.routes import health, market, models, portfolio, risk, signals, trading, ws
from tradepulse.api.services import Services, open_services
from tradepulse.config import Settings

ROUTERS: list[Router] = [
    health.router,
    signals.router,
    market.router,
    models.router,
    risk.router,
    trading.router,
    portfolio.router,
    ws.router,
]

#: parameters Litestar fills from the request itself, never from the query string
_RESERVED = {"request", "state", "scope", "headers", "cookies", "query", "data", "socket", "body"}

_ERRORS = {
    400: ResponseSpec(ErrorBody, description="The request is malformed (e.g. the body is not valid JSON)."),
    401: ResponseSpec(ErrorBody, description="No API key, or an invalid or revoked one."),
    403: ResponseSpec(ErrorBody, description="The key's scope does not allow this."),
    413: ResponseSpec(ErrorBody, description="The request body is larger than allowed."),
    422: ResponseSpec(ErrorBody, description="A parameter or body field is invalid (`field` names it)."),
    429: ResponseSpec(ErrorBody, description="The key's rate limit is exceeded; retry after `Retry-After` seconds."),
    503: ResponseSpec(ErrorBody, description="A service the request needs (key store, bus, database) is down."),
}
_PUBLIC_ERRORS = {400: _ERRORS[400], 422: _ERRORS[422]}


def _services(state: State) -> Services:
    services: Services = state.services
    return services


def _query_names(handler: HTTPRouteHandler) -> frozenset[str]:
    """Return the query parameter names ``handler`` declares."""
    dependencies = set(handler.resolve_dependencies())
    names: set[str] = set()
    for name, definition in handler.parsed_fn_signature.parameters.items():
        if name in _RESERVED or name in dependencies:
            continue
        kwarg = definition.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.header or kwarg.cookie:
                continue
            names.add(kwarg.query or name)
        else:
            names.add(name)
    return frozenset(names)


_declared: dict[HTTPRouteHandler, frozenset[str]] = {}


async def reject_unknown_query(request: Request[Any, Any, Any]) -> None:
    """Refuse query parameters the route does not declare (422 naming the first one)."""
    if not request.scope["query_string"]:
        return
    handler = request.route_handler
    assert isinstance(handler, HTTPRouteHandler)
    allowed = _declared.get(handler)
    if allowed is None:
        allowed = _declared[handler] = _query_names(handler)
    for name in request.query_params:
        if name not in allowed and name not in request.path_params:
            raise ApiError(422, "validation_error", f"unknown query parameter {name!r}", field=f"query.{name}")


def _document_errors(routers: list[Router]) -> None:
    """Add the error responses every route can give to its OpenAPI description."""
    for router in routers:
        for route in router.routes:
            for handler in getattr(route, "route_handlers", []):
                if not isinstance(handler, HTTPRouteHandler):
                    continue
                public = bool(handler.opt.get("exclude_from_auth"))
                extra = _PUBLIC_ERRORS if public else _ERRORS
                handler.responses = {**extra, **(handler.responses or {})}


def create_app(
    services: Services | None = None,
    *,
    settings: Settings | None = None,
    lifespan: list[Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]] | None = None,
) -> Litestar:
    """Return the app over open ``services``, or (with ``settings`` only) one that opens them in its lifespan."""
    if services is None and settings is None:
        raise ValueError("create_app needs services or settings")
    cfg = (services.settings if services is not None else settings).api  # type: ignore[union-attr]
    routers = list(ROUTERS)
    _document_errors(routers)
    hooks = list(lifespan or [])
    if services is None:
        assert settings is not None

        @contextlib.asynccontextmanager
        async def open_all(app: Litestar) -> AsyncIterator[None]:
            async with open_services(settings) as opened:
                app.state.services = opened
                yield

        hooks.insert(0, open_all)
    return Litestar(
        route_handlers=[*routers, metrics],
        dependencies={"services": Provide(_services, sync_to_thread=False)},
        middleware=[
            MetricsMiddleware,
            DefineMiddleware(AuthMiddleware, exclude=PUBLIC_PATHS),
        ],
        before_request=reject_unknown_query,
        exception_handlers=EXCEPTION_HANDLERS,
        compression_config=CompressionConfig(backend="gzip", minimum_size=cfg.gzip_min_bytes, gzip_compress_level=6),
        request_max_body_size=cfg.max_body_bytes,
        openapi_config=OpenAPIConfig(title="tradepulse", version=__version__),
        state=State({"services": services} if services is not None else {}),
        lifespan=hooks,
        debug=False,
    )


def app_factory() -> Litestar:
    """Build the app from the environment's settings (service mode defaults); each server worker calls this."""
    from tradepulse.api.server import service_settings

    return create_app(settings=service_settings())


__all__ = ["ROUTERS", "app_factory", "create_app"]
