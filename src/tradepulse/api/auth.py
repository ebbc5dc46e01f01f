"""API keys on requests: the authentication middleware, scopes, and the guards routes declare.

A request carries its key as ``X-API-Key: tp_...`` or ``Authorization: Bearer tp_...``. The middleware checks it
against the key store (a key found valid is remembered per process for ``api.key_cache_s``, looked up once at a
time and refreshed ahead of expiry while in use: :class:`KeyCache`), counts the request
against the key's rate limit (429 with Retry-After beyond it) and sets ``request.user`` to a :class:`Principal`.
No key, a malformed, unknown, wrong or revoked key: 401. Routes opt out with ``opt={"exclude_from_auth": True}``
(health, readiness) or by path (``/metrics``, the OpenAPI schema).

Each router declares the scope it needs with ``guards=[requires(Scope.READ)]`` and single handlers may ask for
more (``guards=[requires(Scope.ADMIN)]``): a key with a lower scope gets 403.

A key belongs to one account: :func:`account_of` returns the account a request acts on (its own; an ADMIN key may
name another with ``?account=``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, ServiceUnavailableException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Guard

from tradepulse.api.errors import ApiError
from tradepulse.storage.keys import ApiKey, KeyStoreError, ScopeName

if TYPE_CHECKING:
    from tradepulse.api.services import Services

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
#: paths that need no key (besides routes marked exclude_from_auth)
PUBLIC_PATHS = ["^/metrics$", "^/schema"]


class Scope(enum.IntEnum):
    """What a key may do; each scope includes the ones below it."""

    READ = 1
    TRADE = 2
    ADMIN = 3

    @classmethod
    def from_name(cls, name: ScopeName | str) -> Scope:
        return cls[name.upper()]

    @property
    def label(self) -> ScopeName:
        return self.name.lower()  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``request.user`` on every authenticated request."""

    key_id: str
    name: str
    account_id: str
    scope: Scope

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key.key_id, key.name, key.account_id, Scope.from_name(key.scope))


def requires(scope: Scope) -> Guard:
    """Return a guard refusing requests whose key lacks ``scope`` (401 without a principal, 403 below scope)."""

    # async on purpose: Litestar runs a sync guard in a thread pool, a thread hop on every request (profiled)
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise NotAuthorizedException("an API key is required")
        if principal.scope < scope:
            raise PermissionDeniedException(f"this key's scope is {principal.scope.label}; {scope.label} is needed")

    guard.__name__ = f"requires_{scope.label}"
    guard.required_scope = scope  # type: ignore[attr-defined]
    return guard


#: a route handler's ``opt`` key for the scope its ``requires`` guards ask (set by :func:`hoist_scope_guards`)
REQUIRED_SCOPE = "required_scope"


def hoist_scope_guards(routes: Iterable[tuple[str, BaseRouteHandler]]) -> None:
    """Check the ``requires`` guards of authenticated handlers in :class:`AuthMiddleware` instead of as guards.

    Litestar copies the route handler for every guard call (``copy(handler)`` per request and guard), which
    profiled at about 5 % of a request; the middleware compares the principal's scope with the highest scope the
    handler's guards ask (``opt["required_scope"]``), after the key and its rate limit, exactly where the guard
    would have refused (403). Other guards stay guards; handlers excluded from authentication keep theirs.
    ``routes``: (the route's full path, a handler of it) of every route of the app.
    """
    for path, handler in routes:
        public = any(re.search(pattern, path) for pattern in PUBLIC_PATHS)
        if handler.opt.get("exclude_from_auth") or public:
            continue
        guards = handler.resolve_guards()
        ours = [g for g in guards if isinstance(getattr(g, "required_scope", None), Scope)]
        if not ours:
            continue
        handler.opt[REQUIRED_SCOPE] = max(g.required_scope for g in ours)  # type: ignore[attr-defined]
        handler._resolved_guards = [g for g in guards if g not in ours]  # Litestar's cache of resolve_guards()


def account_of(principal: Principal, account: str | None) -> str:
    """Return the account a request acts on: the key's own, or ``account`` if the key is ADMIN (403 otherwise)."""
    if account is None or account == principal.account_id:
        return principal.account_id
    if principal.scope < Scope.ADMIN:
        raise ApiError(403, "forbidden", "only an admin key may act on another account", field="query.account")
    return account


def token_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Return the key a request carries (X-API-Key, or Authorization: Bearer), if any."""
    headers = connection.headers
    token = headers.get(API_KEY_HEADER)
    if token:
        return token.strip()
    auth = headers.get("authorization")
    if auth:
        kind, _, value = auth.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class KeyCache:
    """Keys recently found valid, per process, so a request costs no database round trip.

    A key is looked up once at a time: while its lookup runs, every other request of that key waits for the same
    answer (single flight) instead of going to the store too. A key in use is looked up again shortly before its
    entry expires (``refresh_s`` ahead, in the background, by the first request that finds it due) while the
    entry still serves, so a busy key never finds its entry expired and never waits. An entry is valid for
    ``ttl_s`` from the moment the lookup that made it *started*, whatever a later refresh does: a key revoked in
    the store stops working within ``ttl_s`` (a refresh that finds it gone drops the entry at once).
    """

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 10_000,
        *,
        refresh_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self.max_entries = max_entries
        #: how long before expiry a used entry is looked up again (default: a fifth of the TTL, at most 1 s)
        self.refresh_s = min(ttl_s / 5, 1.0) if refresh_s is None else refresh_s
        self._entries: dict[str, tuple[Principal, float, float]] = {}
        self._inflight: dict[str, asyncio.Task[Principal | None]] = {}
        #: lookups made in the store (a test and a benchmark count them)
        self.lookups = 0

    def get(self, token: str) -> Principal | None:
        hit = self._entries.get(token)
        if hit is None:
            return None
        if hit[1] < self._clock():
            del self._entries[token]
            return None
        return hit[0]

    def put(self, token: str, principal: Principal, *, started: float | None = None) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        expires = (self._clock() if started is None else started) + self.ttl_s
        self._entries[token] = (principal, expires, expires - self.refresh_s)

    def clear(self) -> None:
        self._entries.clear()

    async def principal(self, token: str, verify: Callable[[str], Awaitable[ApiKey | None]]) -> Principal | None:
        """Return the principal of ``token`` (None for an unknown, wrong or revoked key), from the cache or with
        one ``verify`` at a time per token. A ``verify`` error is raised to every request waiting for it."""
        hit = self._entries.get(token)
        if hit is not None:
            now = self._clock()
            if now < hit[2]:
                return hit[0]
            if now < hit[1]:
                if token not in self._inflight:  # due for refresh: one lookup in the background, the entry serves
                    self._start(token, verify)
                return hit[0]
            del self._entries[token]
        lookup = self._inflight.get(token) or self._start(token, verify)
        # shielded: a request that gives up (client gone) does not cancel the lookup others wait for
        return await asyncio.shield(lookup)

    def _start(self, token: str, verify: Callable[[str], Awaitable[ApiKey | None]]) -> asyncio.Task[Principal | None]:
        task = asyncio.get_running_loop().create_task(self._lookup(token, verify), name="api-key-lookup")
        self._inflight[token] = task
        task.add_done_callback(self._done)
        return task

    async def _lookup(self, token: str, verify: Callable[[str], Awaitable[ApiKey | None]]) -> Principal | None:
        started = self._clock()
        self.lookups += 1
        try:
            key = await verify(token)
        finally:
            del self._inflight[token]
        if key is None:
            self._entries.pop(token, None)  # revoked (or never valid): refused from now on
            return None
        principal = Principal.of(key)
        self.put(token, principal, started=started)
        return principal

    @staticmethod
    def _done(task: asyncio.Task[Principal | None]) -> None:
        # a refresh has no waiter: its error is logged here (the entry serves until it expires, then requests
        # look the key up themselves and see the error)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("key cache: a key lookup failed (%s)", type(exc).__name__)


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticate the key and apply its rate limit. See the module docstring."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        services: Services = connection.app.state.services
        token = token_of(connection)
        if not token:
            raise NotAuthorizedException("an API key is required (X-API-Key or Authorization: Bearer)")
        try:
            principal = await services.key_cache.principal(token, services.keys.verify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error, KeyStoreError) as exc:
            raise ServiceUnavailableException("the key store is unavailable") from exc
        if principal is None:
            raise NotAuthorizedException("invalid API key")
        decision = await services.limiter.check(principal.key_id)
        if not decision.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {services.limiter.rate_per_s:g} requests/s exceeded",
                headers={"Retry-After": decision.retry_after_header},
            )
        handler = connection.scope.get("route_handler")
        needed = handler.opt.get(REQUIRED_SCOPE) if handler is not None else None
        if needed is not None and principal.scope < needed:
            raise PermissionDeniedException(f"this key's scope is {principal.scope.label}; {needed.label} is needed")
        return AuthenticationResult(user=principal, auth=principal.key_id)


__all__ = [
    "API_KEY_HEADER",
    "PUBLIC_PATHS",
    "AuthMiddleware",
    "KeyCache",
    "Principal",
    "Scope",
    "account_of",
    "hoist_scope_guards",
    "requires",
    "token_of",
]
