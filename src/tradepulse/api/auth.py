"""API keys on requests: the authentication middleware, scopes, and the guards routes declare.

A request carries its key as ``X-API-Key: tp_...`` or ``Authorization: Bearer tp_...``. The middleware checks it
against the key store (a key found valid is remembered per process for ``api.key_cache_s``), counts the request
against the key's rate limit (429 with Retry-After beyond it) and sets ``request.user`` to a :class:`Principal`.
No key, a malformed, unknown, wrong or revoked key: 401. Routes opt out with ``opt={"exclude_from_auth": True}``
(health, readiness) or by path (``/metrics``, the OpenAPI schema).

Each router declares the scope it needs with ``guards=[requires(Scope.READ)]`` and single handlers may ask for
more (``guards=[requires(Scope.ADMIN)]``): a key with a lower scope gets 403.

A key belongs to one account: :func:`account_of` returns the account a request acts on (its own; an ADMIN key may
name another with ``?account=``).
"""

from __future__ import annotations

import enum
import time
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
    return guard


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
    """Keys recently found valid, per process, so a request costs no database round trip."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        hit = self._entries.get(token)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            del self._entries[token]
            return None
        return hit[0]

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token] = (principal, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticate the key and apply its rate limit. See the module docstring."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        services: Services = connection.app.state.services
        token = token_of(connection)
        if not token:
            raise NotAuthorizedException("an API key is required (X-API-Key or Authorization: Bearer)")
        principal = services.key_cache.get(token)
        if principal is None:
            try:
                key = await services.keys.verify(token)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KeyStoreError) as exc:
                raise ServiceUnavailableException("the key store is unavailable") from exc
            if key is None:
                raise NotAuthorizedException("invalid API key")
            principal = Principal.of(key)
            services.key_cache.put(token, principal)
        decision = await services.limiter.check(principal.key_id)
        if not decision.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {services.limiter.rate_per_s:g} requests/s exceeded",
                headers={"Retry-After": decision.retry_after_header},
            )
        return AuthenticationResult(user=principal, auth=principal.key_id)


__all__ = [
    "API_KEY_HEADER",
    "PUBLIC_PATHS",
    "AuthMiddleware",
    "KeyCache",
    "Principal",
    "Scope",
    "account_of",
    "requires",
    "token_of",
]
