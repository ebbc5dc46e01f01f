"""Liveness and readiness (no key needed)."""

from __future__ import annotations

import asyncio

from litestar import Response, Router, get
from litestar.openapi import ResponseSpec

from tradepulse.api.schemas import Check, Health, Readiness
from tradepulse.api.services import ServicesDep

#: a dependency that does not answer within this long counts as down
CHECK_TIMEOUT_S = 2.0


@get("/health", opt={"exclude_from_auth": True}, sync_to_thread=False, summary="Liveness")
def health() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


async def _check(name: str, probe: asyncio.Future[None] | asyncio.Task[None]) -> Check:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe
    except TimeoutError:
        return Check(name=name, ok=False, detail=f"no answer within {CHECK_TIMEOUT_S:g} s")
    except Exception as exc:  # any failure of a probe means "down"; only its type is reported
        return Check(name=name, ok=False, detail=f"unreachable ({type(exc).__name__})")
    return Check(name=name, ok=True)


@get(
    "/ready",
    opt={"exclude_from_auth": True},
    summary="Readiness",
    responses={503: ResponseSpec(Readiness, description="A dependency is down (the failing check says which).")},
)
async def ready(services: ServicesDep) -> Response[Readiness]:
    """200 when the bus and the database answer; 503 naming what is down otherwise."""
    bus_name = "redis" if services.bus.name == "redis" else f"bus ({services.bus.name})"
    db_name = "postgresql" if services.ledger.backend == "postgres" else f"database ({services.ledger.backend})"
    checks = await asyncio.gather(
        _check(bus_name, asyncio.ensure_future(services.bus.ping())),
        _check(db_name, asyncio.ensure_future(services.ledger.ping())),
    )
    ok = all(c.ok for c in checks)
    body = Readiness(status="ready" if ok else "unavailable", checks=list(checks))
    return Response(body, status_code=200 if ok else 503)


router = Router(path="/api/v1", route_handlers=[health, ready], tags=["health"])
