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
are gzip-compressed for clients that accept it (:mod:`tradepulse.api.compression`; cached bodies are compressed
once).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, Reference, SecurityScheme
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute

from tradepulse import __version__
from tradepulse.api.auth import PUBLIC_PATHS, AuthMiddleware, hoist_scope_guards
from tradepulse.api.compression import GzipMiddleware
from tradepulse.api.errors import EXCEPTION_HANDLERS, ApiError, ErrorBody
from tradepulse.api.metrics import MetricsMiddleware, metrics
from tradepulse.api.routes import health, market, models, portfolio, risk, signals, trading, ws
from tradepulse.api.services import Services, open_services
from tradepulse.config import Settings
from tradepulse.execution.gcpolicy import freeze_now

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


async def check_request(request: Request[Any, Any, Any]) -> None:
    """Refuse what the route would otherwise accept silently: query parameters it does not declare, and a JSON
    body naming a key twice (a parser keeps one value, not necessarily the one a proxy or a log showed)."""
    if request.scope["query_string"]:
        handler = request.route_handler
        assert isinstance(handler, HTTPRouteHandler)
        allowed = _declared.get(handler)
        if allowed is None:
            allowed = _declared[handler] = _query_names(handler)
        for name in request.query_params:
            if name not in allowed and name not in request.path_params:
                raise ApiError(422, "validation_error", f"unknown query parameter {name!r}", field=f"query.{name}")
    if request.method in _BODY_METHODS:
        body = await request.body()  # read once (Litestar keeps it for the handler); over the size limit: 413
        if body:
            _no_duplicate_keys(body)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _no_duplicate_keys(body: bytes) -> None:
    """Raise 422 naming the first key an object of ``body`` holds twice; leave other faults to the decoder."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                raise ApiError(422, "validation_error", f"duplicate key {key!r}", field=f"body.{key}")
            seen[key] = value
        return seen

    try:
        json.loads(body, object_pairs_hook=pairs)
    except ValueError:  # not JSON (or not UTF-8): the route's own decoding says so, with its status
        return


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
                if not public:
                    handler.security = [{"ApiKey": []}]


def _struct_types(annotation: Any) -> list[msgspec.inspect.StructType]:
    """Return every Struct type reachable from ``annotation`` (nested fields, lists, unions, ...)."""
    found: dict[type, msgspec.inspect.StructType] = {}

    def walk(node: Any) -> None:
        if isinstance(node, msgspec.inspect.StructType):
            if node.cls in found:
                return
            found[node.cls] = node
            for f in node.fields:
                walk(f.type)
            return
        if isinstance(node, msgspec.inspect.Type):
            for value in _slots(node):
                if isinstance(value, msgspec.inspect.Type):
                    walk(value)
                elif isinstance(value, tuple):
                    for item in value:
                        walk(item)

    try:
        walk(msgspec.inspect.type_info(annotation))
    except TypeError:  # not a type msgspec knows (e.g. a Litestar upload); nothing to tighten
        return []
    return list(found.values())


def _slots(node: Any) -> list[Any]:
    return [getattr(node, name) for name in getattr(type(node), "__struct_fields__", ())]


def _forbid_unknown_in_schema(app: Litestar, routers: list[Router]) -> None:
    """Mark request bodies that refuse unknown fields (``forbid_unknown_fields``) ``additionalProperties: false``,
    so the OpenAPI schema says what the API really does."""
    components = app.openapi_schema.components.schemas or {}
    for router in routers:
        for route in router.routes:
            for handler in getattr(route, "route_handlers", []):
                if not isinstance(handler, HTTPRouteHandler):
                    continue
                data = handler.parsed_fn_signature.parameters.get("data")
                if data is None:
                    continue
                for struct in _struct_types(data.annotation):
                    schema = components.get(struct.cls.__name__)
                    if struct.forbid_unknown_fields and schema is not None and not isinstance(schema, Reference):
                        schema.additional_properties = False


def _rebind_options_handlers(app: Litestar) -> None:
    """Make every path's automatic OPTIONS handler list all of the path's methods in ``Allow``.

    Litestar binds that handler to the route as first built for the path, so the methods a later handler adds to
    the same path (``PUT /api/v1/risk/state`` after its ``GET``) were missing from ``Allow`` (schemathesis ST205).
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            closure = getattr(handler.fn, "__closure__", None)
            if "OPTIONS" not in handler.http_methods or not closure:
                continue
            for cell in closure:
                if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                    cell.cell_contents = route


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
    app = Litestar(
        route_handlers=[*routers, metrics],
        dependencies={"services": Provide(_services, sync_to_thread=False)},
        middleware=[
            MetricsMiddleware,
            DefineMiddleware(GzipMiddleware, minimum_size=cfg.gzip_min_bytes),
            DefineMiddleware(AuthMiddleware, exclude=PUBLIC_PATHS),
        ],
        before_request=check_request,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=cfg.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="tradepulse",
            version=__version__,
            description="The tradepulse trading platform's API. Send an API key as `X-API-Key` (or a Bearer token).",
            components=Components(
                security_schemes={
                    "ApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header")
                }
            ),
        ),
        state=State({"services": services} if services is not None else {}),
        lifespan=hooks,
        debug=False,
        # logging is the process's business (setup_logging); Litestar's default would add its own root handler
        logging_config=None,
    )
    _forbid_unknown_in_schema(app, routers)
    _rebind_options_handlers(app)
    hoist_scope_guards((route.path, h) for route in app.routes for h in getattr(route, "route_handlers", []))
    return app


def app_factory() -> Litestar:
    """Build the app from the environment's settings (service mode defaults); each server worker calls this."""
    from tradepulse.api.server import service_settings
    from tradepulse.observability.logging import setup_logging

    settings = service_settings()
    setup_logging(settings.log_level)  # a worker process logs like the launcher
    return create_app(settings=settings, lifespan=[_freeze_heap])


@contextlib.asynccontextmanager
async def _freeze_heap(app: Litestar) -> AsyncIterator[None]:
    """Once the worker's services are open (the lifespan hook after them): collect, then freeze what is alive
    (libraries, the app, its caches), so the collections that requests trigger never walk it again (see
    :mod:`tradepulse.execution.gcpolicy`; the signal service does the same)."""
    freeze_now()
    yield


__all__ = ["ROUTERS", "app_factory", "create_app"]
