"""One shape for every error the API returns, and the handlers that produce it.

Every error body is ``{"error": {"code": "...", "message": "...", "field": "body.quantity" | null}}``. Validation
errors are 422 and name the field (``body.<path>``, ``query.<name>``, ``path.<name>``, ``header.<name>``).
A server error is a 500 with a generic message: the exception is logged (type, route, traceback, never request
headers or bodies, so no key or secret reaches the log) and never returned.

Handlers raise :class:`ApiError` for their own errors (``raise ApiError(404, "not_found", "no order o-1")``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap

from tradepulse.api.schemas import ErrorBody, ErrorDetail

log = logging.getLogger("tradepulse.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
    504: "timeout",
}
_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.DOTALL)
_NAMED = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]*)`")


class ApiError(HTTPException):
    """An error a handler returns on purpose, with its code and (for bad input) the field at fault."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=message, status_code=status_code, headers=headers)
        self.code = code
        self.field = field


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = msgspec.json.encode(ErrorBody(error=ErrorDetail(code=code, message=message, field=field)))
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def field_from_msgspec(message: str, prefix: str = "body") -> tuple[str, str | None]:
    """Split msgspec's ``Expected `int`, got `str` - at `$.quantity``` into (message, ``body.quantity``).

    A missing or unknown field is named in the message itself (``Object missing required field `reason```); it is
    appended to the path.
    """
    match = _AT.match(message)
    if match is None:  # pragma: no cover - the pattern matches any string
        return message, None
    text, where = match.group(1), match.group(2)
    named = _NAMED.match(text)
    if where is None and named is None:
        return text, None
    path = (where or "").lstrip(".").replace("[", ".").replace("]", "")
    if named is not None:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return text, f"{prefix}.{path}" if path else prefix


def _validation(exc: ValidationException) -> tuple[str, str | None]:
    """Return (message, field path) of Litestar's first validation error."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        raw_source = item.get("source") or "body"
        source = str(getattr(raw_source, "value", raw_source))
        text, nested = field_from_msgspec(str(item.get("message") or exc.detail), source)
        key = item.get("key")
        if source == "body":
            # a body error's key is the top-level field; msgspec's "at `$.a.b`" path, when given, is more precise
            field = nested if nested not in (None, "body") or not key or key == "data" else f"body.{key}"
        else:
            field = f"{source}.{key}" if key else nested
        return text, field
    return field_from_msgspec(str(exc.detail))


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if isinstance(exc, ApiError):
        return error_response(status, exc.code, exc.detail, exc.field, headers)
    if isinstance(exc, ValidationException):
        message, field = _validation(exc)
        return error_response(422, "validation_error", message, field)
    if status == 400 and "- at `$" in exc.detail:
        # a body that is valid JSON but not the declared type (msgspec names the path)
        message, field = field_from_msgspec(exc.detail)
        return error_response(422, "validation_error", message, field)
    if status >= 500:
        log.error("%s %s -> %d: %s", request.method, _route(request), status, exc.detail)
    return error_response(status, _CODES.get(status, "error"), exc.detail or _CODES.get(status, "error"), None, headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("%s %s -> 500: %s", request.method, _route(request), type(exc).__name__, exc_info=exc)
    return error_response(500, "internal", "internal server error")


def _route(request: Request[Any, Any, Any]) -> str:
    return str(request.scope.get("path_template") or request.url.path)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}

#: the OpenAPI description of a 404, for handlers that look something up: ``@get(..., responses=NOT_FOUND)``
NOT_FOUND = {404: ResponseSpec(ErrorBody, description="Not found.")}

__all__ = [
    "EXCEPTION_HANDLERS",
    "NOT_FOUND",
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "error_response",
    "field_from_msgspec",
]
