"""Python client of the tradepulse REST and WebSocket API.

:class:`Client` (blocking, an ``httpx.Client`` with keep-alive) and :class:`AsyncClient` (an
``httpx.AsyncClient``) have the same methods and decode every answer into the API's OWN response models
(:mod:`tradepulse.api.trading_models`, :mod:`tradepulse.api.schemas`), so client and server cannot drift. Money and
quantities are :class:`~decimal.Decimal` both ways (the API sends decimal strings; a binary float is refused).

    with Client("http://127.0.0.1:8000", "tp_...") as api:
        answer = api.submit_order("AAPL", "BUY", Decimal("10"))
        print(answer.outcome, answer.order.status, answer.order.avg_fill_price)
        for order in api.iter_orders(status=["FILLED"]):
            ...

Errors are one hierarchy: :class:`ApiError` (``status``, ``code``, ``message``, ``field``) with
:class:`Unauthorized` (401), :class:`Forbidden` (403), :class:`NotFound` (404), :class:`Conflict` (409),
:class:`ValidationError` (422), :class:`RateLimited` (429, ``retry_after`` seconds), :class:`ServerError` (5xx),
:class:`ConnectionFailed` (no answer, after the retries) and :class:`StreamClosed` (the WebSocket ended).

Retries:

- ``submit_order`` sends a client order id (``client_order_id``, or a new uuid4-based one), and on a transport
  error, a timeout or a 502/503/504 it sends the SAME id again, at most ``retries`` times (the engine is
  idempotent by client order id: a repeat answers the order the first attempt made, ``outcome: "existing"``).
  If every attempt fails, :class:`ConnectionFailed` carries the ``client_order_id`` to retry with later.
- reads (GET) retry the same way; ``cancel_order`` and ``rebalance_*``/``set_trading_state`` do not (a
  repeated execute is safe by ``rebalance_id``, but the caller decides).
- a 429 is retried after its ``Retry-After`` (at most ``rate_limit_retries`` times and only when it asks for at
  most ``max_retry_after`` seconds); otherwise :class:`RateLimited` is raised with ``retry_after``.

Live data: ``AsyncClient.stream(channels, symbols)`` opens ``/api/v1/ws``; iterate it for typed
:class:`StreamEvent` s (``data`` is the platform's own message: :class:`~tradepulse.domain.Signal`,
:class:`~tradepulse.domain.Tick`, an order event or :class:`~tradepulse.domain.Order`, a
:class:`~tradepulse.domain.Fill`):

    async with AsyncClient(url, key) as api, api.stream(["signals", "orders"], ["AAPL"]) as live:
        async for event in live:
            print(event.channel, event.symbol, event.data)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tradepulse import __version__
from tradepulse.api.schemas import (
    BarList,
    ErrorBody,
    ErrorDetail,
    Health,
    ModelDetail,
    ModelList,
    Quote,
    QuoteList,
    Readiness,
    RiskLimits,
    SetTradingState,
    SignalList,
    SignalOut,
    TickList,
    TradingStateOut,
)
from tradepulse.api.trading_models import (
    AccountView,
    FillPage,
    FillView,
    OrderPage,
    OrderRequest,
    OrderResponse,
    OrderView,
    PositionView,
    RebalanceExecuteRequest,
    RebalanceExecution,
    RebalancePreview,
    RebalanceRequest,
)
from tradepulse.domain import (
    Fill,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderType,
    OrderUnknown,
    Side,
    Signal,
    Tick,
    TimeInForce,
    TradingState,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
S = TypeVar("S")

#: default seconds for connect/read/write (above the server's order wait, api.order_timeout_s = 5 s)
DEFAULT_TIMEOUT_S: Final = 10.0
#: the most a 429 may ask the client to wait before it raises RateLimited instead
DEFAULT_MAX_RETRY_AFTER_S: Final = 10.0
_RETRY_STATUSES: Final = frozenset({502, 503, 504})
_BACKOFF_S: Final = 0.1
_BACKOFF_MAX_S: Final = 2.0

DecimalLike = Decimal | int | str


# -- errors ----------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the API (or no answer: ``status`` 0). ``field`` names the input at fault (422:
    ``body.quantity``, ``query.limit``, ...). ``client_order_id`` is set on errors of ``submit_order``: the id
    to submit again with (a repeat never executes twice)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        client_order_id: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.client_order_id = client_order_id


class Unauthorized(ApiError):
    """401: no key, or an invalid or revoked one."""


class Forbidden(ApiError):
    """403: the key's scope does not allow this."""


class NotFound(ApiError):
    """404: no such thing (or another account's)."""


class Conflict(ApiError):
    """409: the client order id belongs to another account, or the order is already final."""


class ValidationError(ApiError):
    """422: a parameter or body field is invalid; ``field`` names it."""


class RateLimited(ApiError):
    """429: the key's rate limit is exceeded; retry after ``retry_after`` seconds."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        client_order_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, field, client_order_id=client_order_id)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server (or a service it needs) failed."""


class ConnectionFailed(ApiError):
    """No answer: the connection failed or timed out (after the retries). For a submit, the order may or may
    not exist: submit again with ``client_order_id`` (or get it) to find out; it never executes twice."""


class StreamClosed(ApiError):
    """The WebSocket ended: ``close_code`` and the server's reason (e.g. 1008 ``slow consumer: ...``)."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(0, "stream_closed", f"closed with {close_code}" + (f": {reason}" if reason else ""))
        self.close_code = close_code
        self.reason = reason


_BY_STATUS: Final[dict[int, type[ApiError]]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
    429: RateLimited,
}

_error_decoder = msgspec.json.Decoder(ErrorBody)


def _retry_after(value: str | None) -> float | None:
    """Return the seconds of a ``Retry-After`` header (whole seconds), or None if absent or not a number."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:  # an HTTP date: not what this API sends; the caller decides
        return None
    return seconds if seconds >= 0 else None


def error_of(response: httpx.Response, *, client_order_id: str | None = None) -> ApiError:
    """Return the :class:`ApiError` an error ``response`` stands for."""
    status = response.status_code
    try:
        detail = _error_decoder.decode(response.content).error
    except msgspec.DecodeError:  # not the API's error shape (a proxy's page, ...): keep a short excerpt
        text = response.text[:200].strip() or response.reason_phrase
        detail = ErrorDetail(code="http_error", message=text)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    if cls is RateLimited:
        return RateLimited(
            status,
            detail.code,
            detail.message,
            detail.field,
            client_order_id=client_order_id,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    return cls(status, detail.code, detail.message, detail.field, client_order_id=client_order_id)


# -- values in -------------------------------------------------------------------------------------------------


def new_client_order_id() -> str:
    """Return a fresh client order id (``tp-`` and a uuid4 in hex: 35 characters the API accepts)."""
    return f"tp-{uuid.uuid4().hex}"


def decimal_text(value: DecimalLike, name: str) -> str:
    """Return ``value`` as the plain decimal string the API takes (``Decimal("1E+2")`` -> ``"100"``).

    A float is refused (a binary float is not the amount it looks like): pass a Decimal, an int or a string.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"{name}: pass a Decimal, an int or a decimal string, not {type(value).__name__}")
    if isinstance(value, str):
        return value
    d = Decimal(value)
    if not d.is_finite():
        raise ValueError(f"{name}: must be finite, got {value}")
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _optional_decimal(value: DecimalLike | None, name: str) -> str | None:
    return None if value is None else decimal_text(value, name)


def _params(**values: Any) -> dict[str, Any]:
    """Return the query parameters that are set (enums by value, lists as repeated parameters)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out[name] = [str(v) for v in value]
        else:
            out[name] = str(value)
    return out


# -- calls -----------------------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return decoder


def _reader(kind: type[T]) -> Callable[[bytes], T]:
    """Return a function decoding JSON into ``kind`` (one cached msgspec decoder per type)."""
    decode: Callable[[bytes], T] = _decoder(kind).decode
    return decode


def _then(kind: type[S], convert: Callable[[S], T]) -> Callable[[bytes], T]:
    decode = _reader(kind)
    return lambda body: convert(decode(body))


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request and how to read its answer (the sync and async clients share these)."""

    method: str
    path: str
    decode: Callable[[bytes], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: bytes | None = None
    #: safe to send again after a transport error or a 502/503/504 (reads, and submits by client order id)
    retry: bool = False
    #: statuses whose body is the answer (others are errors)
    ok: frozenset[int] = frozenset({200})
    client_order_id: str | None = None

    def result(self, response: httpx.Response) -> T:
        if response.status_code not in self.ok:
            raise error_of(response, client_order_id=self.client_order_id)
        try:
            return self.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ApiError(
                response.status_code,
                "invalid_response",
                f"the answer to {self.method} {self.path} is not what the API describes: {exc}",
                client_order_id=self.client_order_id,
            ) from None


_READ = frozenset({200})
_SUBMIT = frozenset({200, 201, 202})
_CANCEL = frozenset({200, 202})


def _get(path: str, kind: type[T], **params: Any) -> _Call[T]:
    return _Call("GET", path, _reader(kind), _params(**params), retry=True)


def _get_as(path: str, kind: type[S], convert: Callable[[S], T], **params: Any) -> _Call[T]:
    return _Call("GET", path, _then(kind, convert), _params(**params), retry=True)


def _json(model: msgspec.Struct) -> bytes:
    return _encoder.encode(model)


class _Calls:
    """The API's routes as :class:`_Call` s."""

    @staticmethod
    def submit(
        symbol: str,
        side: Side | str,
        quantity: DecimalLike,
        *,
        order_type: OrderType | str,
        limit_price: DecimalLike | None,
        stop_price: DecimalLike | None,
        time_in_force: TimeInForce | str,
        client_order_id: str | None,
        strategy_id: str,
        account: str | None,
        valid_for_ms: int | None = None,
    ) -> _Call[OrderResponse]:
        coid = client_order_id or new_client_order_id()
        request = OrderRequest(
            client_order_id=coid,
            symbol=symbol,
            side=Side(side),
            quantity=decimal_text(quantity, "quantity"),
            order_type=OrderType(order_type),
            limit_price=_optional_decimal(limit_price, "limit_price"),
            stop_price=_optional_decimal(stop_price, "stop_price"),
            time_in_force=TimeInForce(time_in_force),
            strategy_id=strategy_id,
            valid_for_ms=valid_for_ms,
        )
        return _Call(
            "POST",
            "/api/v1/orders",
            _reader(OrderResponse),
            _params(account=account),
            _json(request),
            retry=True,
            ok=_SUBMIT,
            client_order_id=coid,
        )

    @staticmethod
    def orders(**filters: Any) -> _Call[OrderPage]:
        return _get("/api/v1/orders", OrderPage, **filters)

    @staticmethod
    def fills(**filters: Any) -> _Call[FillPage]:
        return _get("/api/v1/fills", FillPage, **filters)

    @staticmethod
    def rebalance(
        path: str,
        model: type[RebalanceRequest] | type[RebalanceExecuteRequest],
        kind: type[T],
        targets: Mapping[str, DecimalLike],
        options: dict[str, Any],
        account: str | None,
    ) -> _Call[T]:
        decimals = ("drift_abs", "drift_rel", "min_trade_notional", "cash_buffer", "max_turnover")
        body: dict[str, Any] = {k: (_optional_decimal(v, k) if k in decimals else v) for k, v in options.items()}
        request = model(targets={s: decimal_text(t, f"targets.{s}") for s, t in targets.items()}, **body)
        ok = _CANCEL if kind is RebalanceExecution else _READ
        return _Call("POST", path, _reader(kind), _params(account=account), _json(request), ok=ok)


def _first(signals: SignalList) -> SignalOut | None:
    return signals.signals[0] if signals.signals else None


def _signals(signals: SignalList) -> list[SignalOut]:
    return signals.signals


def _quotes(quotes: QuoteList) -> list[Quote]:
    return quotes.quotes


def _order_filters(
    client_order_id: str | None,
    symbol: str | None,
    status: Iterable[OrderStatus | str] | None,
    side: Side | str | None,
    since_ns: int | None,
    until_ns: int | None,
    limit: int | None,
    order: Literal["asc", "desc"] | None,
    account: str | None,
) -> dict[str, Any]:
    return {
        "client_order_id": client_order_id,
        "symbol": symbol,
        "status": None if status is None else [OrderStatus(s).value for s in status],
        "side": None if side is None else Side(side).value,
        "since_ns": since_ns,
        "until_ns": until_ns,
        "limit": limit,
        "order": order,
        "account": account,
    }


def _fill_filters(
    symbol: str | None,
    side: Side | str | None,
    order_id: str | None,
    since_ns: int | None,
    until_ns: int | None,
    limit: int | None,
    order: Literal["asc", "desc"] | None,
    account: str | None,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": None if side is None else Side(side).value,
        "order_id": order_id,
        "since_ns": since_ns,
        "until_ns": until_ns,
        "limit": limit,
        "order": order,
        "account": account,
    }


def _rebalance_options(
    target_unit: Literal["weight", "quantity"],
    drift_abs: DecimalLike | None,
    drift_rel: DecimalLike | None,
    min_trade_notional: DecimalLike | None,
    cash_buffer: DecimalLike | None,
    max_turnover: DecimalLike | None,
    buy_only: bool,
) -> dict[str, Any]:
    return {
        "target_unit": target_unit,
        "drift_abs": drift_abs,
        "drift_rel": drift_rel,
        "min_trade_notional": min_trade_notional,
        "cash_buffer": cash_buffer,
        "max_turnover": max_turnover,
        "buy_only": buy_only,
    }


# -- retry policy ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often a call is sent again. ``retries``: after a transport error, a timeout or a 502/503/504 (only
    calls that are safe to repeat); ``rate_limit_retries``: after a 429 asking for at most ``max_retry_after``
    seconds (any call: a 429 means the request was not processed)."""

    retries: int = 3
    rate_limit_retries: int = 2
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER_S

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1, 2, ...) after a transport error."""
        return float(min(_BACKOFF_MAX_S, _BACKOFF_S * 2 ** (attempt - 1)))


_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _Attempts:
    """The state of one call's attempts: what to do after each outcome (wait, or raise)."""

    def __init__(self, call: _Call[Any], policy: RetryPolicy) -> None:
        self.call = call
        self.policy = policy
        self.failures = 0
        self.limited = 0

    def after_error(self, exc: httpx.TransportError) -> float:
        """Return the seconds to wait before sending again, or raise :class:`ConnectionFailed`."""
        call = self.call
        if call.retry and isinstance(exc, _RETRYABLE) and self.failures < self.policy.retries:
            self.failures += 1
            log.info("%s %s: %s; retry %d", call.method, call.path, type(exc).__name__, self.failures)
            return self.policy.backoff(self.failures)
        message = f"{call.method} {call.path}: {type(exc).__name__}: {exc}".rstrip(": ")
        if call.client_order_id is not None:
            message += f" (the order may exist: submit again with client_order_id={call.client_order_id!r})"
        raise ConnectionFailed(0, "connection_failed", message, client_order_id=call.client_order_id) from exc

    def after_answer(self, response: httpx.Response) -> float | None:
        """Return the seconds to wait before sending again, or None to take ``response`` as the answer."""
        status = response.status_code
        if status == 429 and self.limited < self.policy.rate_limit_retries:
            wait = _retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait <= self.policy.max_retry_after:
                self.limited += 1
                return wait
        if (
            status in _RETRY_STATUSES
            and status not in self.call.ok
            and self.call.retry
            and self.failures < self.policy.retries
        ):
            self.failures += 1
            return self.policy.backoff(self.failures)
        return None


def _headers(api_key: str) -> dict[str, str]:
    return {
        "X-API-Key": api_key,
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"tradepulse-client/{__version__}",
    }


# -- the blocking client ---------------------------------------------------------------------------------------


class Client:
    """The API over one keep-alive ``httpx.Client``; use it as a context manager (or call :meth:`close`).

    ``transport`` replaces httpx's (a proxy, a test double); ``retry`` sets the retries (see the module doc).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: _Call[T]) -> T:
        attempts = _Attempts(call, self.retry)
        while True:
            try:
                response = self._http.request(call.method, call.path, params=call.params, content=call.body)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            wait = attempts.after_answer(response)
            if wait is None:
                return call.result(response)
            time.sleep(wait)

    # health

    def health(self) -> Health:
        return self._run(_get("/api/v1/health", Health))

    def ready(self) -> Readiness:
        """Readiness: ``status`` is ``ready``, or ``unavailable`` with the failing check (a 503 is an answer)."""
        return self._run(_Call("GET", "/api/v1/ready", _reader(Readiness), retry=True, ok=frozenset({200, 503})))

    # signals

    def signals(self) -> list[SignalOut]:
        """The latest signal of every symbol, by symbol."""
        return self._run(_get_as("/api/v1/signals", SignalList, _signals))

    def signal(self, symbol: str) -> SignalOut | None:
        """The latest signal of ``symbol`` (None if there is none yet)."""
        return self._run(_get_as(f"/api/v1/signals/{symbol}/history", SignalList, _first, limit=1))

    def signal_history(self, symbol: str, limit: int | None = None) -> list[SignalOut]:
        """Recent signals of ``symbol``, newest first."""
        return self._run(_get_as(f"/api/v1/signals/{symbol}/history", SignalList, _signals, limit=limit))

    # market data

    def quotes(self) -> list[Quote]:
        return self._run(_get_as("/api/v1/market/quotes", QuoteList, _quotes))

    def quote(self, symbol: str) -> Quote:
        """The latest tick of ``symbol`` (:class:`NotFound` if there is none)."""
        return self._run(_get(f"/api/v1/market/{symbol}/quote", Quote))

    def ticks(
        self, symbol: str, *, start_ns: int | None = None, end_ns: int | None = None, limit: int | None = None
    ) -> TickList:
        return self._run(
            _get(f"/api/v1/market/{symbol}/ticks", TickList, start_ns=start_ns, end_ns=end_ns, limit=limit)
        )

    def bars(
        self,
        symbol: str,
        interval: str = "1m",
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> BarList:
        return self._run(
            _get(
                f"/api/v1/market/{symbol}/bars",
                BarList,
                interval=interval,
                start_ns=start_ns,
                end_ns=end_ns,
                limit=limit,
            )
        )

    # models

    def models(self) -> ModelList:
        return self._run(_get("/api/v1/models", ModelList))

    def promoted_model(self) -> ModelDetail:
        return self._run(_get("/api/v1/models/promoted", ModelDetail))

    def model(self, version: str) -> ModelDetail:
        return self._run(_get(f"/api/v1/models/{version}", ModelDetail))

    # risk

    def risk_limits(self) -> RiskLimits:
        return self._run(_get("/api/v1/risk/limits", RiskLimits))

    def trading_state(self) -> TradingStateOut:
        return self._run(_get("/api/v1/risk/state", TradingStateOut))

    def set_trading_state(self, state: TradingState | str, reason: str) -> TradingStateOut:
        """Set the kill switch (ADMIN key)."""
        body = _json(SetTradingState(state=TradingState(state), reason=reason))
        return self._run(_Call("PUT", "/api/v1/risk/state", _reader(TradingStateOut), body=body))

    # orders

    def submit_order(
        self,
        symbol: str,
        side: Side | str,
        quantity: DecimalLike,
        *,
        order_type: OrderType | str = OrderType.MARKET,
        limit_price: DecimalLike | None = None,
        stop_price: DecimalLike | None = None,
        time_in_force: TimeInForce | str = TimeInForce.DAY,
        client_order_id: str | None = None,
        strategy_id: str = "api",
        account: str | None = None,
        valid_for_ms: int | None = None,
    ) -> OrderResponse:
        """Submit an order; the answer's ``order.client_order_id`` is its id (a new uuid4-based one unless
        given). ``outcome``: ``created``, ``existing`` (the id was used already: its order, nothing executed
        again) or ``pending`` (no final answer in time: :meth:`get_order` it later). Transport errors and
        timeouts are retried with the SAME id. ``valid_for_ms``: an engine that reads the order later than this
        after the API received it rejects it (``STALE_ORDER``) instead of executing it."""
        return self._run(
            _Calls.submit(
                symbol,
                side,
                quantity,
                order_type=order_type,
                limit_price=limit_price,
                stop_price=stop_price,
                time_in_force=time_in_force,
                client_order_id=client_order_id,
                strategy_id=strategy_id,
                account=account,
                valid_for_ms=valid_for_ms,
            )
        )

    def get_order(self, order_id: str, *, account: str | None = None) -> OrderResponse:
        """An order (by its client order id) with its fills."""
        return self._run(_get(f"/api/v1/orders/{order_id}", OrderResponse, account=account))

    def order_fills(self, order_id: str, *, account: str | None = None) -> list[FillView]:
        return self._run(_get(f"/api/v1/orders/{order_id}/fills", list[FillView], account=account))

    def orders(
        self,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        status: Iterable[OrderStatus | str] | None = None,
        side: Side | str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> OrderPage:
        """One page of orders; pass its ``next`` as ``cursor`` for the following one (null at the end)."""
        filters = _order_filters(client_order_id, symbol, status, side, since_ns, until_ns, limit, order, account)
        return self._run(_Calls.orders(cursor=cursor, **filters))

    def iter_orders(
        self,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        status: Iterable[OrderStatus | str] | None = None,
        side: Side | str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> Iterator[OrderView]:
        """Every order matching the filters, page after page (``limit`` is the page size)."""
        filters = _order_filters(client_order_id, symbol, status, side, since_ns, until_ns, limit, order, account)
        cursor: str | None = None
        while True:
            page = self._run(_Calls.orders(cursor=cursor, **filters))
            yield from page.orders
            if page.next is None:
                return
            cursor = page.next

    def cancel_order(self, order_id: str, *, account: str | None = None) -> OrderResponse:
        """Cancel an open order: ``outcome`` ``done`` (final: CANCELED, or FILLED if the fill came first) or
        ``pending``; :class:`Conflict` if it is already final."""
        return self._run(
            _Call("DELETE", f"/api/v1/orders/{order_id}", _reader(OrderResponse), _params(account=account), ok=_CANCEL)
        )

    # fills

    def fills(
        self,
        *,
        symbol: str | None = None,
        side: Side | str | None = None,
        order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> FillPage:
        filters = _fill_filters(symbol, side, order_id, since_ns, until_ns, limit, order, account)
        return self._run(_Calls.fills(cursor=cursor, **filters))

    def iter_fills(
        self,
        *,
        symbol: str | None = None,
        side: Side | str | None = None,
        order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> Iterator[FillView]:
        filters = _fill_filters(symbol, side, order_id, since_ns, until_ns, limit, order, account)
        cursor: str | None = None
        while True:
            page = self._run(_Calls.fills(cursor=cursor, **filters))
            yield from page.fills
            if page.next is None:
                return
            cursor = page.next

    # portfolio

    def positions(self, *, account: str | None = None) -> list[PositionView]:
        return self._run(_get("/api/v1/positions", list[PositionView], account=account))

    def position(self, symbol: str, *, account: str | None = None) -> PositionView:
        return self._run(_get(f"/api/v1/positions/{symbol}", PositionView, account=account))

    def account(self, *, account: str | None = None) -> AccountView:
        return self._run(_get("/api/v1/account", AccountView, account=account))

    def rebalance_preview(
        self,
        targets: Mapping[str, DecimalLike],
        *,
        target_unit: Literal["weight", "quantity"] = "weight",
        rebalance_id: str | None = None,
        drift_abs: DecimalLike | None = None,
        drift_rel: DecimalLike | None = None,
        min_trade_notional: DecimalLike | None = None,
        cash_buffer: DecimalLike | None = None,
        max_turnover: DecimalLike | None = None,
        buy_only: bool = False,
        account: str | None = None,
    ) -> RebalancePreview:
        options = _rebalance_options(
            target_unit, drift_abs, drift_rel, min_trade_notional, cash_buffer, max_turnover, buy_only
        )
        return self._run(
            _Calls.rebalance(
                "/api/v1/rebalance/preview",
                RebalanceRequest,
                RebalancePreview,
                targets,
                {**options, "rebalance_id": rebalance_id},
                account,
            )
        )

    def rebalance_execute(
        self,
        targets: Mapping[str, DecimalLike],
        rebalance_id: str,
        *,
        target_unit: Literal["weight", "quantity"] = "weight",
        drift_abs: DecimalLike | None = None,
        drift_rel: DecimalLike | None = None,
        min_trade_notional: DecimalLike | None = None,
        cash_buffer: DecimalLike | None = None,
        max_turnover: DecimalLike | None = None,
        buy_only: bool = False,
        account: str | None = None,
    ) -> RebalanceExecution:
        """Execute (TRADE key); the same ``rebalance_id`` again submits nothing new (``outcome: replayed``)."""
        options = _rebalance_options(
            target_unit, drift_abs, drift_rel, min_trade_notional, cash_buffer, max_turnover, buy_only
        )
        return self._run(
            _Calls.rebalance(
                "/api/v1/rebalance/execute",
                RebalanceExecuteRequest,
                RebalanceExecution,
                targets,
                {**options, "rebalance_id": rebalance_id},
                account,
            )
        )


# -- the asyncio client ----------------------------------------------------------------------------------------


class AsyncClient:
    """:class:`Client`'s methods as coroutines over one keep-alive ``httpx.AsyncClient``, plus :meth:`stream`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._api_key = api_key
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: _Call[T]) -> T:
        attempts = _Attempts(call, self.retry)
        while True:
            try:
                response = await self._http.request(call.method, call.path, params=call.params, content=call.body)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            wait = attempts.after_answer(response)
            if wait is None:
                return call.result(response)
            await asyncio.sleep(wait)

    # health

    async def health(self) -> Health:
        return await self._run(_get("/api/v1/health", Health))

    async def ready(self) -> Readiness:
        return await self._run(_Call("GET", "/api/v1/ready", _reader(Readiness), retry=True, ok=frozenset({200, 503})))

    # signals

    async def signals(self) -> list[SignalOut]:
        return await self._run(_get_as("/api/v1/signals", SignalList, _signals))

    async def signal(self, symbol: str) -> SignalOut | None:
        return await self._run(_get_as(f"/api/v1/signals/{symbol}/history", SignalList, _first, limit=1))

    async def signal_history(self, symbol: str, limit: int | None = None) -> list[SignalOut]:
        return await self._run(_get_as(f"/api/v1/signals/{symbol}/history", SignalList, _signals, limit=limit))

    # market data

    async def quotes(self) -> list[Quote]:
        return await self._run(_get_as("/api/v1/market/quotes", QuoteList, _quotes))

    async def quote(self, symbol: str) -> Quote:
        return await self._run(_get(f"/api/v1/market/{symbol}/quote", Quote))

    async def ticks(
        self, symbol: str, *, start_ns: int | None = None, end_ns: int | None = None, limit: int | None = None
    ) -> TickList:
        return await self._run(
            _get(f"/api/v1/market/{symbol}/ticks", TickList, start_ns=start_ns, end_ns=end_ns, limit=limit)
        )

    async def bars(
        self,
        symbol: str,
        interval: str = "1m",
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> BarList:
        return await self._run(
            _get(
                f"/api/v1/market/{symbol}/bars",
                BarList,
                interval=interval,
                start_ns=start_ns,
                end_ns=end_ns,
                limit=limit,
            )
        )

    # models

    async def models(self) -> ModelList:
        return await self._run(_get("/api/v1/models", ModelList))

    async def promoted_model(self) -> ModelDetail:
        return await self._run(_get("/api/v1/models/promoted", ModelDetail))

    async def model(self, version: str) -> ModelDetail:
        return await self._run(_get(f"/api/v1/models/{version}", ModelDetail))

    # risk

    async def risk_limits(self) -> RiskLimits:
        return await self._run(_get("/api/v1/risk/limits", RiskLimits))

    async def trading_state(self) -> TradingStateOut:
        return await self._run(_get("/api/v1/risk/state", TradingStateOut))

    async def set_trading_state(self, state: TradingState | str, reason: str) -> TradingStateOut:
        body = _json(SetTradingState(state=TradingState(state), reason=reason))
        return await self._run(_Call("PUT", "/api/v1/risk/state", _reader(TradingStateOut), body=body))

    # orders

    async def submit_order(
        self,
        symbol: str,
        side: Side | str,
        quantity: DecimalLike,
        *,
        order_type: OrderType | str = OrderType.MARKET,
        limit_price: DecimalLike | None = None,
        stop_price: DecimalLike | None = None,
        time_in_force: TimeInForce | str = TimeInForce.DAY,
        client_order_id: str | None = None,
        strategy_id: str = "api",
        account: str | None = None,
        valid_for_ms: int | None = None,
    ) -> OrderResponse:
        """See :meth:`Client.submit_order`."""
        return await self._run(
            _Calls.submit(
                symbol,
                side,
                quantity,
                order_type=order_type,
                limit_price=limit_price,
                stop_price=stop_price,
                time_in_force=time_in_force,
                client_order_id=client_order_id,
                strategy_id=strategy_id,
                account=account,
                valid_for_ms=valid_for_ms,
            )
        )

    async def get_order(self, order_id: str, *, account: str | None = None) -> OrderResponse:
        return await self._run(_get(f"/api/v1/orders/{order_id}", OrderResponse, account=account))

    async def order_fills(self, order_id: str, *, account: str | None = None) -> list[FillView]:
        return await self._run(_get(f"/api/v1/orders/{order_id}/fills", list[FillView], account=account))

    async def orders(
        self,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        status: Iterable[OrderStatus | str] | None = None,
        side: Side | str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> OrderPage:
        filters = _order_filters(client_order_id, symbol, status, side, since_ns, until_ns, limit, order, account)
        return await self._run(_Calls.orders(cursor=cursor, **filters))

    async def iter_orders(
        self,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        status: Iterable[OrderStatus | str] | None = None,
        side: Side | str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> AsyncIterator[OrderView]:
        filters = _order_filters(client_order_id, symbol, status, side, since_ns, until_ns, limit, order, account)
        cursor: str | None = None
        while True:
            page = await self._run(_Calls.orders(cursor=cursor, **filters))
            for item in page.orders:
                yield item
            if page.next is None:
                return
            cursor = page.next

    async def cancel_order(self, order_id: str, *, account: str | None = None) -> OrderResponse:
        return await self._run(
            _Call("DELETE", f"/api/v1/orders/{order_id}", _reader(OrderResponse), _params(account=account), ok=_CANCEL)
        )

    # fills

    async def fills(
        self,
        *,
        symbol: str | None = None,
        side: Side | str | None = None,
        order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> FillPage:
        filters = _fill_filters(symbol, side, order_id, since_ns, until_ns, limit, order, account)
        return await self._run(_Calls.fills(cursor=cursor, **filters))

    async def iter_fills(
        self,
        *,
        symbol: str | None = None,
        side: Side | str | None = None,
        order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        account: str | None = None,
    ) -> AsyncIterator[FillView]:
        filters = _fill_filters(symbol, side, order_id, since_ns, until_ns, limit, order, account)
        cursor: str | None = None
        while True:
            page = await self._run(_Calls.fills(cursor=cursor, **filters))
            for item in page.fills:
                yield item
            if page.next is None:
                return
            cursor = page.next

    # portfolio

    async def positions(self, *, account: str | None = None) -> list[PositionView]:
        return await self._run(_get("/api/v1/positions", list[PositionView], account=account))

    async def position(self, symbol: str, *, account: str | None = None) -> PositionView:
        return await self._run(_get(f"/api/v1/positions/{symbol}", PositionView, account=account))

    async def account(self, *, account: str | None = None) -> AccountView:
        return await self._run(_get("/api/v1/account", AccountView, account=account))

    async def rebalance_preview(
        self,
        targets: Mapping[str, DecimalLike],
        *,
        target_unit: Literal["weight", "quantity"] = "weight",
        rebalance_id: str | None = None,
        drift_abs: DecimalLike | None = None,
        drift_rel: DecimalLike | None = None,
        min_trade_notional: DecimalLike | None = None,
        cash_buffer: DecimalLike | None = None,
        max_turnover: DecimalLike | None = None,
        buy_only: bool = False,
        account: str | None = None,
    ) -> RebalancePreview:
        options = _rebalance_options(
            target_unit, drift_abs, drift_rel, min_trade_notional, cash_buffer, max_turnover, buy_only
        )
        return await self._run(
            _Calls.rebalance(
                "/api/v1/rebalance/preview",
                RebalanceRequest,
                RebalancePreview,
                targets,
                {**options, "rebalance_id": rebalance_id},
                account,
            )
        )

    async def rebalance_execute(
        self,
        targets: Mapping[str, DecimalLike],
        rebalance_id: str,
        *,
        target_unit: Literal["weight", "quantity"] = "weight",
        drift_abs: DecimalLike | None = None,
        drift_rel: DecimalLike | None = None,
        min_trade_notional: DecimalLike | None = None,
        cash_buffer: DecimalLike | None = None,
        max_turnover: DecimalLike | None = None,
        buy_only: bool = False,
        account: str | None = None,
    ) -> RebalanceExecution:
        options = _rebalance_options(
            target_unit, drift_abs, drift_rel, min_trade_notional, cash_buffer, max_turnover, buy_only
        )
        return await self._run(
            _Calls.rebalance(
                "/api/v1/rebalance/execute",
                RebalanceExecuteRequest,
                RebalanceExecution,
                targets,
                {**options, "rebalance_id": rebalance_id},
                account,
            )
        )

    # live

    def stream(
        self,
        channels: Sequence[str] = (),
        symbols: Sequence[str] | None = None,
        *,
        account: str | None = None,
        queue_max: int = 1_000,
    ) -> Stream:
        """A live feed over ``/api/v1/ws`` subscribed to ``channels`` (signals, quotes, orders, fills) for
        ``symbols`` (None: every symbol). Use ``async with`` (or iterate it directly: it connects on first use
        and closes when the iteration ends)."""
        return Stream(
            _ws_url(self.base_url, account),
            self._api_key,
            channels,
            symbols,
            open_timeout=self.timeout,
            queue_max=queue_max,
        )


# -- the live stream -------------------------------------------------------------------------------------------


def _ws_url(base_url: str, account: str | None) -> str:
    url = httpx.URL(base_url)
    scheme = "wss" if url.scheme == "https" else "ws"
    out = url.copy_with(scheme=scheme, path=url.path.rstrip("/") + "/api/v1/ws")
    if account is not None:
        out = out.copy_merge_params({"account": account})
    return str(out)


class Welcome(msgspec.Struct, frozen=True, kw_only=True):
    """The server's first message: the connection's account and heartbeat period."""

    account_id: str
    channels: list[str]
    heartbeat_s: float
    queue_max: int


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a subscribe or unsubscribe: what it applied to."""

    type: str
    channels: list[str]
    symbols: list[str]


OrderUpdate = (
    Order
    | OrderAccepted
    | OrderRejected
    | OrderPartiallyFilled
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | OrderUnknown
)
StreamData = Signal | Tick | OrderUpdate | Fill

#: channel -> the type of its frames' ``data`` (the platform's own messages)
_DATA: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "signals": msgspec.json.Decoder(Signal),
    "quotes": msgspec.json.Decoder(Tick),
    "orders": msgspec.json.Decoder(OrderUpdate),
    "fills": msgspec.json.Decoder(Fill),
}


class StreamEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One live message: a Signal (``signals``), a Tick (``quotes``), an order event or Order (``orders``),
    a Fill (``fills``). ``account_id`` is set on the private channels (orders, fills)."""

    channel: str
    symbol: str
    data: StreamData
    account_id: str | None = None


class _Incoming(msgspec.Struct, frozen=True, kw_only=True):
    """Any server message, read shallowly (``data`` is decoded by channel afterwards)."""

    type: str | None = None
    channel: str | None = None
    symbol: str = ""
    account_id: str | None = None
    #: empty on control messages
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    id: str | int | None = None
    error: ErrorDetail | None = None
    channels: list[str] | None = None
    symbols: list[str] | None = None


_incoming = msgspec.json.Decoder(_Incoming)
_welcome = msgspec.json.Decoder(Welcome)

#: close code -> the error it stands for
_CLOSES: Final[dict[int, tuple[type[ApiError], int, str]]] = {
    4401: (Unauthorized, 401, "unauthorized"),
    4403: (Forbidden, 403, "forbidden"),
}
#: heartbeats missed before the connection counts as dead
_MISSED_BEATS: Final = 3
_END: Final = object()


def _closed_error(exc: ConnectionClosed) -> ApiError | None:
    """Return the error a close stands for, or None for a normal close (1000)."""
    frame = exc.rcvd
    code, reason = (frame.code, frame.reason) if frame is not None else (1006, "connection lost")
    if code == 1000:
        return None
    mapped = _CLOSES.get(code)
    if mapped is not None:
        cls, status, name = mapped
        return cls(status, name, reason)
    return StreamClosed(code, reason)


class Stream:
    """A live WebSocket feed: an async iterator of :class:`StreamEvent` s.

    One reader task takes every server message: answers to :meth:`subscribe`, :meth:`unsubscribe` and
    :meth:`ping` resolve those calls; feed frames queue (at most ``queue_max``) for the iterator. A consumer that
    stops reading stops the reader too, and the server then cuts the connection off as a slow consumer
    (:class:`StreamClosed`, 1008) rather than let anything grow. Heartbeats need no answer; when none (nor
    anything else) arrives for three heartbeat periods, the connection counts as dead (:class:`StreamClosed`).
    The iteration ends after :meth:`close` or a normal close; other closes raise (4401 :class:`Unauthorized`,
    4403 :class:`Forbidden`, else :class:`StreamClosed`).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        channels: Sequence[str] = (),
        symbols: Sequence[str] | None = None,
        *,
        open_timeout: float = DEFAULT_TIMEOUT_S,
        queue_max: int = 1_000,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._initial = (list(channels), None if symbols is None else list(symbols))
        self.open_timeout = open_timeout
        self.welcome: Welcome | None = None
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_max)
        self._waiting: dict[str, asyncio.Future[_Incoming]] = {}
        self._ids = 0
        self._reader: asyncio.Task[None] | None = None
        self._failure: ApiError | None = None
        self._closing = False
        #: the reader has ended (nothing more will be queued)
        self._done = False

    async def __aenter__(self) -> Stream:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, read the welcome, and subscribe to the channels given at creation."""
        if self._ws is not None:
            return
        try:
            ws = await connect(
                self.url,
                additional_headers={"X-API-Key": self._api_key},
                open_timeout=self.open_timeout,
                user_agent_header=f"tradepulse-client/{__version__}",
                max_size=4 * 1024 * 1024,
            )
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ConnectionFailed(0, "connection_failed", f"websocket {self.url}: {exc}") from exc
        self._ws = ws
        try:
            async with asyncio.timeout(self.open_timeout):
                first = await ws.recv()
            self.welcome = _welcome.decode(first)
        except ConnectionClosed as exc:
            self._ws = None
            raise _closed_error(exc) or StreamClosed(1000, "closed before the welcome") from None
        except (TimeoutError, msgspec.DecodeError) as exc:
            await ws.close()
            self._ws = None
            raise ConnectionFailed(0, "connection_failed", f"websocket {self.url}: no welcome ({exc})") from None
        self._reader = asyncio.ensure_future(self._read(ws, self.welcome.heartbeat_s * _MISSED_BEATS))
        channels, symbols = self._initial
        if channels:
            await self.subscribe(channels, symbols)

    async def subscribe(self, channels: Sequence[str], symbols: Sequence[str] | None = None) -> Subscription:
        """Add ``channels`` x ``symbols`` (None: every symbol); :class:`ValidationError` names a bad one."""
        return await self._op("subscribe", channels, symbols)

    async def unsubscribe(self, channels: Sequence[str], symbols: Sequence[str] | None = None) -> Subscription:
        return await self._op("unsubscribe", channels, symbols)

    async def ping(self) -> None:
        """Round-trip a ping through the server (its answer comes in order with the feed)."""
        await self._request({"op": "ping"})

    async def _op(self, op: str, channels: Sequence[str], symbols: Sequence[str] | None) -> Subscription:
        message: dict[str, Any] = {"op": op, "channels": list(channels)}
        if symbols is not None:
            message["symbols"] = list(symbols)
        answer = await self._request(message)
        return Subscription(type=answer.type or op, channels=answer.channels or [], symbols=answer.symbols or [])

    async def _request(self, message: dict[str, Any]) -> _Incoming:
        ws = self._ws
        if ws is None:
            raise StreamClosed(1000, "the stream is not open")
        if self._failure is not None:
            raise self._failure
        self._ids += 1
        op_id = f"c{self._ids}"
        future: asyncio.Future[_Incoming] = asyncio.get_running_loop().create_future()
        self._waiting[op_id] = future
        try:
            await ws.send(_encoder.encode({**message, "id": op_id}).decode())
            async with asyncio.timeout(self.open_timeout):
                answer = await future
        except ConnectionClosed as exc:
            raise _closed_error(exc) or StreamClosed(1000, "closed") from None
        except TimeoutError:
            raise ConnectionFailed(0, "timeout", f"no answer to {message['op']} within {self.open_timeout} s") from None
        finally:
            self._waiting.pop(op_id, None)
        if answer.type == "error":
            detail = answer.error or ErrorDetail(code="error", message="error")
            cls = ValidationError if detail.code == "validation_error" else ApiError
            status = 422 if cls is ValidationError else 503 if detail.code == "unavailable" else 400
            raise cls(status, detail.code, detail.message, detail.field)
        return answer

    async def _read(self, ws: ClientConnection, silence_s: float) -> None:
        failure: ApiError | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(silence_s):
                        text = await ws.recv()
                except TimeoutError:
                    failure = StreamClosed(1006, f"no heartbeat for {silence_s:g} s")
                    await ws.close()
                    return
                event = self._dispatch(text)
                if event is not None:
                    await self._queue.put(event)
        except ConnectionClosed as exc:
            failure = None if self._closing else _closed_error(exc)
        except msgspec.DecodeError as exc:
            failure = StreamClosed(1002, f"a message the client cannot read: {exc}")
            await ws.close()
        finally:
            self._failure = failure
            self._done = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(failure or StreamClosed(1000, "closed"))
            # a full queue needs no marker: once the consumer has drained it, __anext__ sees _done
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_END)

    def _dispatch(self, text: str | bytes) -> StreamEvent | None:
        """Return the feed event of one server message, or None for a control message (handled here)."""
        message = _incoming.decode(text)
        if message.channel is not None and message.data:
            decoder = _DATA.get(message.channel)
            if decoder is None:  # a channel this client does not know (a newer server): skip it
                return None
            return StreamEvent(
                channel=message.channel,
                symbol=message.symbol,
                data=decoder.decode(message.data),
                account_id=message.account_id,
            )
        if message.id is not None:
            future = self._waiting.get(str(message.id))
            if future is not None and not future.done():
                future.set_result(message)
                return None
        if message.type == "error" and message.error is not None:
            log.warning("stream: %s: %s", message.error.code, message.error.message)
        return None

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._ws is None and not self._closing and not self._done:
            await self.open()
        item = _END if self._done and self._queue.empty() else await self._queue.get()
        if item is _END:
            await self.close()
            if self._failure is not None:
                raise self._failure
            raise StopAsyncIteration
        assert isinstance(item, StreamEvent)
        return item

    async def close(self) -> None:
        """Close the connection (normal close) and stop the reader; the iteration then ends."""
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(OSError, ConnectionClosed):
                await ws.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._done = True
        while not self._queue.empty():  # what was not read is dropped: the iteration ends here
            self._queue.get_nowait()


__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Stream",
    "StreamClosed",
    "StreamData",
    "StreamEvent",
    "Subscription",
    "Unauthorized",
    "ValidationError",
    "Welcome",
    "decimal_text",
    "error_of",
    "new_client_order_id",
]
