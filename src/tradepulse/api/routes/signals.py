"""Signals: the latest per symbol (``/api/signals`` as the seed names it, and ``/api/v1/signals``) and history.

Both answer from the in-memory :class:`~tradepulse.api.signal_board.SignalBoard` (no database, no bus round
trip): the latest-signals body is encoded once (and gzip-compressed once) and reused until a new signal arrives or
``api.signals_cache_s`` passes.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get
from litestar.params import Parameter

from tradepulse.api.auth import Scope, requires
from tradepulse.api.compression import encoded_response
from tradepulse.api.routes.common import Symbol
from tradepulse.api.schemas import SignalList
from tradepulse.api.services import Services, ServicesDep


@get(["/signals", "/v1/signals"], sync_to_thread=False, summary="Latest signal per symbol")
def latest_signals(request: Request[Any, Any, Any]) -> Response[SignalList]:
    """The latest model signal of every symbol, sorted by symbol."""
    # the body is a SignalList encoded once and cached with its gzip form (bytes pass through unencoded); the
    # annotation documents it. The services come from the app's state, not as a dependency: the hottest route
    # skips Litestar's dependency resolution (profiled)
    services: Services = request.app.state.services
    cached = services.signals.latest_body()
    return encoded_response(request, cached, services.settings.api.gzip_min_bytes)  # type: ignore[return-value]


@get("/v1/signals/{symbol:str}/history", sync_to_thread=False, summary="Recent signals of a symbol")
def signal_history(
    services: ServicesDep,
    symbol: Symbol,
    limit: Annotated[int, Parameter(ge=1, le=10_000, description="At most this many, newest first.")] = 100,
) -> SignalList:
    """The most recent signals of ``symbol``, newest first (the last ``api.signals_history`` are kept)."""
    return SignalList(signals=services.signals.recent(symbol, limit))


router = Router(
    path="/api", route_handlers=[latest_signals, signal_history], guards=[requires(Scope.READ)], tags=["signals"]
)
