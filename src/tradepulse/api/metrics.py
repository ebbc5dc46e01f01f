"""Request metrics and ``/metrics``: one registry, whether one process serves the API or several.

``http_request_duration_ms`` is labelled by the route *template* (``/api/v1/orders/{client_order_id}``), never the
raw path, so the number of series stays bounded whatever clients send.

With several worker processes, ``tradepulse api`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start: every process then writes its samples there, and ``/metrics`` in any worker
aggregates all of them (prometheus_client's multiprocess mode), so one scrape sees the whole API.
"""

from __future__ import annotations

import os
import time
from typing import Any

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tradepulse.observability.metrics import HTTP_REQUEST_DURATION

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsMiddleware:
    """Observe every routed HTTP request's duration by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # raised by a middleware (401, 429, ...) and turned into a response by the app's outer handler
            status = int(getattr(exc, "status_code", 500))
            raise
        finally:
            key = (method, scope.get("path_template") or "unmatched", status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = HTTP_REQUEST_DURATION.labels(key[0], key[1], str(status))
            child.observe((time.perf_counter() - started) * 1000.0)


def _registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


@get("/metrics", include_in_schema=False, sync_to_thread=False, opt={"exclude_from_auth": True})
def metrics() -> Response[bytes]:
    """Prometheus exposition of every metric of every API process."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


__all__ = ["MULTIPROC_ENV", "MetricsMiddleware", "metrics"]
