"""The trading service behind the API: orders, fills, positions, account, rebalance, for one account at a time.

It sits over the ledger store (what is booked) and the order client (what the engine says now), and knows no
HTTP: every method takes the caller's ``account_id`` and raises a :class:`TradingError` (with the HTTP status,
an error code and the field at fault) for what the caller got wrong. The routes map those to responses.

Submitting an order (:meth:`TradingService.submit`):

* the request is checked first (types, finite positive numbers of sane size, the symbol is an instrument, price
  on the tick, quantity on the lot): a bad one is a 422 naming the field, and nothing is published;
* every valid request is published through the :class:`~tradepulse.client.OrderClient` (no ledger lookup
  first: the engine is idempotent by client order id). A repeated id is answered by the engine with the order
  as it stands (an ``Order`` item), never executed again: the same account gets it back with its fills
  (``existing``, 200), another account a 409;
* a new one is awaited: MARKET, IOC and FOK orders
  until final, the others until the venue accepted them (or they ended); no answer within
  ``timeout_s`` gives ``pending`` (202) with what is known. A risk rejection is a normal outcome: the order
  exists (in the ledger too), with status REJECTED and its ``reject_reason``, answered as ``created`` (201).
  422 is only for requests the engine never saw.

Orders and fills are listed by pages (keyset cursors over the ledger's stable orderings, see
:mod:`tradepulse.storage.ledger_pages`).

Reads follow the reports (read-your-writes): the answer to a POST is built from the engine's reports, which
arrive a few milliseconds before the engine books them in the ledger. The service follows every report on the
``reports`` stream (:meth:`TradingService.order_item`), remembering the fills and final states not seen booked
yet, and a read of an order, or of an account's positions, cash, orders or fills, first waits (up to
``booking_wait_s``, polling the ledger) until the ledger has booked what was reported for it. So a GET after a
FILLED answer shows the fill; if the ledger does not book in time (it is down), the GET answers with what is
booked.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, Inexact, localcontext
from typing import Any, Literal

import msgspec

from tradepulse.api.trading_models import (
    AccountView,
    FillPage,
    FillView,
    OrderPage,
    OrderRequest,
    OrderResponse,
    OrderView,
    PlannedOrder,
    PlannedPosition,
    PositionView,
    RebalanceExecuteRequest,
    RebalanceExecution,
    RebalancePreview,
    RebalanceRequest,
)
from tradepulse.bus import BusUnavailable
from tradepulse.client import OrderClient, OrderResult, OrderTimeout, Wait
from tradepulse.client import fold_order as fold
from tradepulse.config import Settings
from tradepulse.domain import (
    Fill,
    Order,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    OrderType,
    ReportItem,
    Side,
    SubmitOrder,
    TimeInForce,
    is_terminal_item,
)
from tradepulse.domain.money import EXACT
from tradepulse.portfolio.cli import options_from
from tradepulse.portfolio.ledger import AccountSummary, Ledger
from tradepulse.portfolio.rebalance import RebalancePlan, RebalanceProblem, Security, build_problem, rebalance
from tradepulse.portfolio.rebalance_execute import ExecutionError, execute_plan
from tradepulse.portfolio.rebalance_problem import MAX_WEIGHT_DECIMALS, RebalanceInputError, RebalanceOptions
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.storage.ledger_pages import FillQuery, OrderQuery
from tradepulse.storage.ledger_store import LedgerStore, LedgerUnavailable, OrderRecord

#: the largest page the API serves, and the default
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
#: numbers in requests: below 10**15 and at most 12 decimals (so 1e308 or a 40-digit decimal is a 422)
MAX_MAGNITUDE = Decimal(10) ** 15
MAX_DECIMALS = 12
#: an account's ledger summary serves GET positions / account this long (seconds), see TradingService._summary
SUMMARY_TTL_S = 0.05
#: ... but none is cached while the account had an order event this recently (its fills may still be booking)
SUMMARY_QUIET_S = 1.0
#: how long a read waits for the ledger to book what the reports already said (see the module docstring)
BOOKING_WAIT_S = 0.5
#: how often the ledger is polled meanwhile
BOOKING_POLL_S = 0.003
_REBALANCE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,24}$")
_STRATEGY_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
REBALANCE_PREFIX = "rb"


@dataclass(slots=True)
class _Reported:
    """What the reports said about one order that the ledger may not have booked yet."""

    at: float
    terminal: bool = False
    filled: Decimal = Decimal(0)
    fill_ids: set[str] = field(default_factory=set)

    def booked_in(self, order: Order) -> bool:
        return (order.is_terminal or not self.terminal) and order.filled_quantity >= self.filled


class TradingError(Exception):
    """A request the service refuses; ``status`` is the HTTP status, ``field`` the path at fault."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(TradingError):
    status = 404
    code = "not_found"


class Conflict(TradingError):
    status = 409
    code = "conflict"


class InvalidRequest(TradingError):
    status = 422
    code = "validation_error"


class Unavailable(TradingError):
    """The ledger or the bus cannot be reached: nothing was done (or, for a submit, nothing is known yet)."""

    status = 503
    code = "unavailable"


def _decimal(text: str | Decimal, field: str) -> Decimal:
    """Return ``text`` as a finite Decimal below 1e15 with at most 12 decimals, or raise naming ``field``."""
    try:
        value = text if isinstance(text, Decimal) else Decimal(text.strip())
    except (ArithmeticError, ValueError):
        raise InvalidRequest(f"{text!r} is not a decimal number", field=field) from None
    if not value.is_finite():
        raise InvalidRequest(f"{value} is not a finite number", field=field)
    if abs(value) >= MAX_MAGNITUDE:
        raise InvalidRequest(f"must be < 1e15, got {value}", field=field)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise InvalidRequest(f"at most {MAX_DECIMALS} decimals, got {value}", field=field)
    return value


def _opt_decimal(text: str | Decimal | None, field: str) -> Decimal | None:
    return None if text is None else _decimal(text, field)


def _check_number(value: Decimal | None, field: str) -> None:
    if value is None:
        return
    if not value.is_finite():
        raise InvalidRequest(f"{value} is not a finite number", field=field)
    if value <= 0:
        raise InvalidRequest(f"must be > 0, got {value}", field=field)
    if value >= MAX_MAGNITUDE:
        raise InvalidRequest(f"must be < 1e15, got {value}", field=field)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise InvalidRequest(f"at most {MAX_DECIMALS} decimals, got {value}", field=field)


def _fills_of(result: OrderResult) -> list[FillView]:
    return [FillView.of(f) for f in result.fills]


#: a page cursor: the last row's sort key, ``{ns}_{id}``. Any string of this form is a position in the ordering
#: (so every cursor the schema admits is accepted: one past every row gives an empty page).
CURSOR_PATTERN = r"^[0-9]{1,19}_[^\u0000]{1,200}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_MAX_NS = 2**63 - 1


def _encode_cursor(ns: int, key: str) -> str:
    return f"{ns}_{key}"


def _decode_cursor(cursor: str) -> tuple[int, str]:
    if not _CURSOR.match(cursor):
        raise InvalidRequest("not a cursor (the `next` of a page: digits, '_', an id)", field="query.cursor")
    ns, _, key = cursor.partition("_")
    return min(int(ns), _MAX_NS), key


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"must be in 1..{MAX_LIMIT}, got {limit}", field="query.limit")
    return limit


def _check_window(since_ns: int | None, until_ns: int | None) -> None:
    for name, value in (("since_ns", since_ns), ("until_ns", until_ns)):
        if value is not None and not 0 <= value < 2**63:
            raise InvalidRequest("must be in 0..2**63-1", field=f"query.{name}")


@dataclass
class TradingService:
    """Orders, fills, positions, account and rebalancing over ``store`` and ``client`` (see the module docs)."""

    settings: Settings
    store: LedgerStore
    client: OrderClient
    instruments: InstrumentRegistry
    timeout_s: float = 5.0
    #: how long an account's ledger summary serves GET positions / account (0: never cached); see _summary
    summary_ttl_s: float = SUMMARY_TTL_S
    #: no summary is cached while the account had an order event this recently (its fills may still be booking)
    summary_quiet_s: float = SUMMARY_QUIET_S
    #: how long a read waits for the ledger to book what was reported (0: never waits); see order_item
    booking_wait_s: float = BOOKING_WAIT_S
    _summaries: dict[str, tuple[float, asyncio.Task[AccountSummary | None]]] = field(default_factory=dict)
    _last_event: dict[str, float] = field(default_factory=dict)
    #: per account, by client order id (oldest first): reported fills and final states not seen booked yet
    _reported: dict[str, dict[str, _Reported]] = field(default_factory=dict)

    @classmethod
    def create(
        cls, settings: Settings, store: LedgerStore, client: OrderClient, *, timeout_s: float = 5.0
    ) -> TradingService:
        svc = cls(settings, store, client, InstrumentRegistry.from_settings(settings), timeout_s)
        client.listeners.append(svc.order_event)
        client.item_listeners.append(svc.order_item)
        return svc

    def order_item(self, item: ReportItem) -> None:
        """A report item on ``reports`` (any process's order): remember a fill or a final state until a read sees
        it booked, or ``booking_wait_s`` has passed (then the ledger had its chance)."""
        if isinstance(item, Order) or self.booking_wait_s <= 0:
            return  # the engine's answer to a repeated id: the order as it stands, nothing new to book
        fill = item.fill if isinstance(item, OrderFilled | OrderPartiallyFilled) else None
        terminal = is_terminal_item(item)
        account_id = getattr(item, "account_id", "")
        if (fill is None and not terminal) or not account_id:
            return
        now = time.monotonic()
        orders = self._reported.setdefault(account_id, {})
        while orders:  # drop what is too old to wait for (insertion order is age order)
            oldest = next(iter(orders))
            if now - orders[oldest].at < self.booking_wait_s:
                break
            del orders[oldest]
        entry = orders.pop(item.client_order_id, None) or _Reported(now)
        entry.at = now
        orders[item.client_order_id] = entry  # to the end: the newest
        if fill is not None and fill.fill_id not in entry.fill_ids:
            entry.fill_ids.add(fill.fill_id)
            entry.filled += fill.quantity
        entry.terminal = entry.terminal or terminal

    async def _booked(self, account_id: str, order_id: str | None = None) -> None:
        """Wait (up to ``booking_wait_s``) until the ledger has booked what the reports said about the account's
        orders (or about ``order_id`` alone)."""
        orders = self._reported.get(account_id)
        if not orders:
            return
        now = time.monotonic()
        waiting = {
            coid: entry
            for coid, entry in orders.items()
            if (order_id is None or coid == order_id) and now - entry.at < self.booking_wait_s
        }
        deadline = now + self.booking_wait_s
        while waiting:
            records: dict[str, OrderRecord] = await self._ledger(self.store.get_orders(list(waiting)))
            for coid, entry in list(waiting.items()):
                record = records.get(coid)
                if record is not None and entry.booked_in(record.order):
                    del waiting[coid]
                    if orders.get(coid) is entry:
                        del orders[coid]
            if not waiting or time.monotonic() >= deadline:
                return
            await asyncio.sleep(BOOKING_POLL_S)

    def order_event(self, account_id: str) -> None:
        """An order event of ``account_id`` (any process's, from the reports stream; or this process's own
        answer): drop its cached summary and cache none for ``summary_quiet_s``."""
        self._last_event[account_id] = time.monotonic()
        self._summaries.pop(account_id, None)

    async def _summary(self, account_id: str) -> AccountSummary | None:
        """The account's ledger summary, one read shared by concurrent requests and cached for ``summary_ttl_s``
        from the moment its read started, unless the account had an order event within ``summary_quiet_s`` (see
        :meth:`order_event`): a GET may show marks up to ``summary_ttl_s`` old, an order's bookings as now."""
        await self._booked(account_id)
        now = time.monotonic()
        if self.summary_ttl_s <= 0 or now - self._last_event.get(account_id, -math.inf) < self.summary_quiet_s:
            return await self._read_summary(account_id)
        entry = self._summaries.get(account_id)
        if entry is None or now - entry[0] >= self.summary_ttl_s:
            task = asyncio.get_running_loop().create_task(self._read_summary(account_id))
            entry = self._summaries[account_id] = (now, task)
            task.add_done_callback(lambda t: self._read_done(account_id, t))
        return await asyncio.shield(entry[1])  # a request that goes away never cancels the shared read

    async def _read_summary(self, account_id: str) -> AccountSummary | None:
        summary: AccountSummary | None = await self._ledger(Ledger(self.store).summary(account_id))
        return summary

    def _read_done(self, account_id: str, task: asyncio.Task[AccountSummary | None]) -> None:
        if task.cancelled() or task.exception() is not None:  # a failed read is never served again
            entry = self._summaries.get(account_id)
            if entry is not None and entry[1] is task:
                del self._summaries[account_id]

    # -- orders -------------------------------------------------------------------------------------------------

    def validate(self, req: OrderRequest, account_id: str) -> SubmitOrder:
        """Return the submit command for ``req``, or raise InvalidRequest naming the field (body.*)."""
        instrument = self.instruments.get(req.symbol)
        if instrument is None:
            raise InvalidRequest(f"unknown symbol {req.symbol!r}", field="body.symbol")
        if not instrument.tradable:
            raise InvalidRequest(f"{req.symbol} is not tradable", field="body.symbol")
        quantity = _decimal(req.quantity, "body.quantity")
        prices = {name: _opt_decimal(getattr(req, name), f"body.{name}") for name in ("limit_price", "stop_price")}
        _check_number(quantity, "body.quantity")
        for name, price in prices.items():
            _check_number(price, f"body.{name}")
        if not instrument.is_valid_quantity(quantity):
            raise InvalidRequest(
                f"{quantity} is not a whole number of lots of {instrument.lot_size}", field="body.quantity"
            )
        for name, price in prices.items():
            if price is not None and not instrument.is_valid_price(price):
                raise InvalidRequest(f"{price} is not on the tick {instrument.tick_size}", field=f"body.{name}")
        if not _STRATEGY_ID.match(req.strategy_id):
            raise InvalidRequest("must be 1-64 characters of A-Z a-z 0-9 . _ : -", field="body.strategy_id")
        now = time.time_ns()
        try:
            return SubmitOrder(
                client_order_id=req.client_order_id,
                symbol=req.symbol,
                side=req.side,
                quantity=quantity,
                order_type=req.order_type,
                limit_price=prices["limit_price"],
                stop_price=prices["stop_price"],
                time_in_force=req.time_in_force,
                strategy_id=req.strategy_id,
                account_id=account_id,
                ts_ns=now,
                deadline_ns=0 if req.valid_for_ms is None else now + req.valid_for_ms * 1_000_000,
            )
        except ValueError as exc:  # the domain's own checks name the field first: "limit_price: required ..."
            name, _, message = str(exc).partition(": ")
            field = name if name in OrderRequest.__struct_fields__ else None
            raise InvalidRequest(message or str(exc), field=None if field is None else f"body.{field}") from None

    @staticmethod
    def wait_for(order_type: OrderType, tif: TimeInForce) -> Wait:
        """MARKET, IOC and FOK orders end at once, so they are awaited until final; the others until accepted."""
        if order_type is OrderType.MARKET or tif in (TimeInForce.IOC, TimeInForce.FOK):
            return "terminal"
        return "accepted"

    async def _ledger(self, coro: Any) -> Any:
        try:
            return await coro
        except LedgerUnavailable as exc:
            raise Unavailable(f"the ledger is unavailable: {exc}") from None

    async def _record(self, client_order_id: str) -> OrderRecord | None:
        records: dict[str, OrderRecord] = await self._ledger(self.store.get_orders([client_order_id]))
        return records.get(client_order_id)

    async def submit(self, req: OrderRequest, account_id: str) -> tuple[int, OrderResponse]:
        """Submit an order for ``account_id``; return (HTTP status, answer). See the module docstring."""
        cmd = self.validate(req, account_id)
        # No ledger lookup first: the engine is idempotent by client order id and answers a repeated one with the
        # order as it stands (an ``Order`` item), whose account decides 200 (ours) or 409 (another's).
        try:
            result = await self.client.submit(
                cmd,
                timeout=self.timeout_s,
                until=self.wait_for(cmd.order_type, cmd.time_in_force),
                until_for=self._wait_for_order,
            )
        except OrderTimeout:
            return await self._pending(cmd)
        except BusUnavailable as exc:
            raise Unavailable(f"the order bus is unavailable: {exc}") from None
        answer = next((e for e in result.events if isinstance(e, Order)), None)
        if answer is not None:
            # the engine answered as for a duplicate: an earlier (or concurrent) submit of this id got in first
            if answer.account_id != account_id:
                raise Conflict(f"client order id {cmd.client_order_id!r} is taken", field="body.client_order_id")
            return 200, await self._existing(fold(answer, result.events), result.events)
        # The wait follows the client order id, so a concurrent submit of the same id by another account could
        # end it with that order's reports. Each report names the account of its order: when they all name this
        # one, the order is ours (no ledger round trip); otherwise (another account, or an engine whose reports
        # name none) the ledger says: the order is in it before any report of it (admission comes first).
        if not result.events or any(getattr(e, "account_id", "") != account_id for e in result.events):
            owner = await self._record(cmd.client_order_id)
            if owner is not None and owner.order.account_id != account_id:
                raise Conflict(f"client order id {cmd.client_order_id!r} is taken", field="body.client_order_id")
        order = fold(Order.from_submit(cmd), result.events)
        return 201, OrderResponse(outcome="created", order=OrderView.of(order), fills=_fills_of(result))

    def _wait_for_order(self, order: Order) -> Wait:
        """The wait for the engine's answer to a repeated id follows the stored order, not the repeated request."""
        return self.wait_for(order.order_type, order.time_in_force)

    async def _existing(self, order: Order, events: Sequence[Any]) -> OrderResponse:
        """Answer a repeated client order id with ``order`` as the engine (or the ledger) has it: its booked fills
        and any the engine reported that are not booked yet (the ledger books a moment after the reports)."""
        fills: list[Fill] = await self._ledger(self.store.fills(client_order_ids=[order.client_order_id]))
        known = {f.fill_id for f in fills}
        for item in events:
            fill = getattr(item, "fill", None)
            if isinstance(fill, Fill) and fill.fill_id not in known:
                fills.append(fill)
                known.add(fill.fill_id)
        return OrderResponse(outcome="existing", order=OrderView.of(order), fills=[FillView.of(f) for f in fills])

    async def _pending(self, cmd: SubmitOrder) -> tuple[int, OrderResponse]:
        """No answer in time: the ledger says what is known. An order of another account is a 409; one of this
        account admitted before this request was made (its ``created_ns``, the engine's clock, is older than the
        request's ``ts_ns``) is a repeated id (200, ``existing``); anything else is ``pending`` (202)."""
        record = await self._record(cmd.client_order_id)
        if record is None:
            return 202, OrderResponse(outcome="pending", order=OrderView.of(Order.from_submit(cmd)), fills=[])
        if record.order.account_id != cmd.account_id:
            raise Conflict(f"client order id {cmd.client_order_id!r} is taken", field="body.client_order_id")
        if record.order.created_ns < cmd.ts_ns:
            return 200, await self._existing(record.order, [])
        fills: list[Fill] = await self._ledger(self.store.fills(client_order_ids=[cmd.client_order_id]))
        return 202, OrderResponse(
            outcome="pending", order=OrderView.of(record.order), fills=[FillView.of(f) for f in fills]
        )

    async def get(self, order_id: str, account_id: str) -> OrderResponse:
        """Return one of the account's orders with its booked fills (once what was reported is booked, see the
        module docstring); 404 for another account's or none."""
        await self._booked(account_id, order_id)
        record = await self._record(order_id)
        if record is None or record.order.account_id != account_id:
            raise NotFound(f"no order {order_id!r}")
        fills: list[Fill] = await self._ledger(self.store.fills(client_order_ids=[order_id]))
        return OrderResponse(outcome="current", order=OrderView.of(record.order), fills=[FillView.of(f) for f in fills])

    async def list_orders(
        self,
        account_id: str,
        *,
        symbol: str | None = None,
        status: Sequence[OrderStatus] = (),
        side: Side | None = None,
        client_order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
        order: Literal["asc", "desc"] = "asc",
    ) -> OrderPage:
        """Return a page of the account's orders, oldest first (``order="desc"``: newest first)."""
        _check_limit(limit)
        _check_window(since_ns, until_ns)
        query = OrderQuery(
            account_id=account_id,
            symbol=symbol,
            statuses=tuple(status),
            side=side,
            client_order_id=client_order_id,
            since_ns=since_ns,
            until_ns=until_ns,
            after=None if cursor is None else _decode_cursor(cursor),
            descending=order == "desc",
            limit=limit + 1,
        )
        await self._booked(account_id)
        rows: list[OrderRecord] = await self._ledger(self.store.orders_page(query))
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1].order if more else None
        return OrderPage(
            orders=[OrderView.of(r.order) for r in rows],
            next=None if last is None else _encode_cursor(last.created_ns, last.client_order_id),
        )

    async def list_fills(
        self,
        account_id: str,
        *,
        symbol: str | None = None,
        side: Side | None = None,
        order_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
        order: Literal["asc", "desc"] = "asc",
    ) -> FillPage:
        """Return a page of the account's fills in booking order (time bounds are on ``booked_ns``)."""
        _check_limit(limit)
        _check_window(since_ns, until_ns)
        query = FillQuery(
            account_id=account_id,
            symbol=symbol,
            side=side,
            client_order_id=order_id,
            since_ns=since_ns,
            until_ns=until_ns,
            after=None if cursor is None else _decode_cursor(cursor),
            descending=order == "desc",
            limit=limit + 1,
        )
        await self._booked(account_id)
        rows: list[Fill] = await self._ledger(self.store.fills_page(query))
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more else None
        return FillPage(
            fills=[FillView.of(f) for f in rows],
            next=None if last is None else _encode_cursor(last.ts_received_ns, last.fill_id),
        )

    async def order_fills(self, order_id: str, account_id: str) -> list[FillView]:
        """Return the booked fills of one of the account's orders (404 as for :meth:`get`)."""
        return (await self.get(order_id, account_id)).fills

    async def cancel(self, order_id: str, account_id: str) -> tuple[int, OrderResponse]:
        """Cancel one of the account's open orders: 200 once final (canceled, or filled meanwhile), 202 if no
        answer came in time, 404 for none or another account's, 409 when it is already final."""
        record = await self._record(order_id)
        if record is None or record.order.account_id != account_id:
            raise NotFound(f"no order {order_id!r}")
        if record.order.is_terminal:
            raise Conflict(f"order {order_id!r} is already {record.order.status}")
        try:
            result = await self.client.cancel(order_id, record.order.symbol, timeout=self.timeout_s)
        except OrderTimeout:
            now = await self.get(order_id, account_id)
            return 202, OrderResponse(outcome="pending", order=now.order, fills=now.fills)
        except BusUnavailable as exc:
            raise Unavailable(f"the order bus is unavailable: {exc}") from None
        order = fold(record.order, result.events)
        fills: list[Fill] = await self._ledger(self.store.fills(client_order_ids=[order_id]))
        known = {f.fill_id for f in fills}
        fills.extend(f for f in result.fills if f.fill_id not in known)
        return 200, OrderResponse(outcome="done", order=OrderView.of(order), fills=[FillView.of(f) for f in fills])

    # -- positions and account ------------------------------------------------------------------------------

    async def positions(self, account_id: str) -> list[PositionView]:
        """Return the account's positions (flat ones too: they carry realized PnL), by symbol."""
        summary = await self._summary(account_id)
        if summary is None:
            raise NotFound(f"no account {account_id!r}")
        return [
            PositionView(
                symbol=line.position.symbol,
                quantity=line.position.quantity,
                avg_price=line.position.avg_price,
                cost_basis=line.position.cost_basis,
                mark=line.mark,
                market_value=line.market_value,
                unrealized_pnl=line.unrealized_pnl,
                realized_pnl=line.position.realized_pnl,
                fees=line.position.fees,
                currency=line.position.currency,
                updated_ns=line.position.updated_ns,
            )
            for line in summary.positions
        ]

    async def position(self, symbol: str, account_id: str) -> PositionView:
        """Return one position; a known instrument never traded is flat; an unknown symbol is a 404."""
        for p in await self.positions(account_id):
            if p.symbol == symbol:
                return p
        instrument = self.instruments.get(symbol)
        if instrument is None:
            raise NotFound(f"no position in {symbol!r} (not an instrument)")
        marks: dict[str, Decimal] = await self._ledger(self.store.marks())
        zero = Decimal(0)
        return PositionView(
            symbol=symbol,
            quantity=zero,
            avg_price=None,
            cost_basis=zero,
            mark=marks.get(symbol),
            market_value=zero,
            unrealized_pnl=zero,
            realized_pnl=zero,
            fees=zero,
            currency=instrument.currency,
            updated_ns=0,
        )

    async def account(self, account_id: str) -> AccountView:
        """Return cash, the positions' value at the marks, equity, realized and unrealized PnL and fees."""
        summary = await self._summary(account_id)
        if summary is None:
            raise NotFound(f"no account {account_id!r}")
        a = summary.account
        return AccountView(
            account_id=a.account_id,
            currency=a.currency,
            starting_cash=a.starting_cash,
            cash=a.cash,
            positions_value=summary.equity - a.cash,
            equity=summary.equity,
            realized_pnl=summary.realized_pnl,
            unrealized_pnl=summary.unrealized_pnl,
            fees=summary.fees,
            positions=sum(1 for line in summary.positions if line.position.quantity != 0),
            updated_ns=a.updated_ns,
        )

    # -- rebalancing -------------------------------------------------------------------------------------------

    async def _problem(self, req: RebalanceRequest, account_id: str) -> RebalanceProblem:
        account = await self._ledger(self.store.account(account_id))
        if account is None:
            raise NotFound(f"no account {account_id!r}")
        key = "targets"
        named = {symbol: _decimal(value, f"body.targets.{symbol}") for symbol, value in req.targets.items()}
        rows = await self._ledger(self.store.positions(account_id))
        holdings = {r.position.symbol: r.position.quantity for r in rows if r.position.quantity != 0}
        marks: dict[str, Decimal] = await self._ledger(self.store.marks())
        securities = []
        for symbol in sorted(set(named) | set(holdings)):
            where = f"body.{key}.{symbol}" if symbol in named else f"positions.{symbol}"
            instrument = self.instruments.get(symbol)
            if instrument is None:
                raise InvalidRequest(f"unknown symbol {symbol!r}", field=where)
            price = marks.get(symbol)
            if price is None:
                raise InvalidRequest(f"no price for {symbol} yet (no mark in the ledger)", field=where)
            securities.append(Security(instrument=instrument, price=price))
        flags = {
            "drift_abs": _opt_decimal(req.drift_abs, "body.drift_abs"),
            "drift_rel": _opt_decimal(req.drift_rel, "body.drift_rel"),
            "min_trade_notional": _opt_decimal(req.min_trade_notional, "body.min_trade_notional"),
            "cash_buffer": _opt_decimal(req.cash_buffer, "body.cash_buffer"),
            "max_turnover": _opt_decimal(req.max_turnover, "body.max_turnover"),
            "fee_per_order": None,
            "fee_rate": None,
            "fee_precision": None,
            "fractional_step": None,
        }
        for name, value in flags.items():
            if value is not None and (not value.is_finite() or abs(value) >= MAX_MAGNITUDE):
                raise InvalidRequest(f"{value} is not a finite number below 1e15", field=f"body.{name}")
        try:
            options = options_from(self.settings.rebalance, **flags)
            if req.buy_only:
                options = msgspec.structs.replace(options, allow_sells=False)
            if req.target_unit == "weight":
                targets = named
            else:
                targets = _weights_of(named, {s.symbol: s for s in securities}, account.cash, holdings, options)
            return build_problem(
                cash=account.cash, holdings=holdings, securities=securities, targets=targets, options=options
            )
        except (RebalanceInputError, ValueError) as exc:
            raise InvalidRequest(str(exc), field=_rebalance_field(exc, key)) from None

    def _preview(self, plan: RebalancePlan, rebalance_id: str, account_id: str) -> RebalancePreview:
        ids = {
            (o.side, o.symbol): o.client_order_id
            for o in plan.submit_orders(
                strategy_id=self.settings.rebalance.strategy_id,
                account_id=account_id,
                prefix=REBALANCE_PREFIX,
                key=rebalance_id,
            )
        }
        return RebalancePreview(
            rebalance_id=rebalance_id,
            orders=[
                PlannedOrder(
                    client_order_id=ids[(t.side, t.symbol)],
                    symbol=t.symbol,
                    side=t.side,
                    quantity=t.quantity,
                    price=t.price,
                    notional=t.notional,
                    fee=t.fee,
                )
                for t in plan.trades
            ],
            positions=[
                PlannedPosition(
                    symbol=p.symbol,
                    quantity_before=p.quantity_before,
                    quantity_after=p.quantity_after,
                    price=p.price,
                    target_weight=p.target_weight,
                    weight_before=p.weight_before,
                    weight_after=p.weight_after,
                    reason=p.reason.label,
                )
                for p in plan.positions
            ],
            cash_before=plan.cash_before,
            cash_after=plan.cash_after,
            value_before=plan.value_before,
            value_after=plan.value_after,
            traded_notional=plan.traded_notional,
            turnover=plan.turnover,
            fees=plan.fees,
        )

    def _rebalance_id(self, req: RebalanceRequest, *, required: bool) -> str | None:
        rid = req.rebalance_id
        if rid is None:
            if required:
                raise InvalidRequest("required to execute (it names the orders)", field="body.rebalance_id")
            return None
        if not _REBALANCE_ID.match(rid):
            raise InvalidRequest("must be 1-24 characters of A-Z a-z 0-9 . _ -", field="body.rebalance_id")
        return rid

    async def preview(self, req: RebalanceRequest, account_id: str) -> RebalancePreview:
        """Return the plan that brings the account's positions to the target weights at the latest marks."""
        rid = self._rebalance_id(req, required=False)
        problem = await self._problem(req, account_id)
        plan = rebalance(problem)
        return self._preview(plan, rid or problem.fingerprint(), account_id)

    def _candidate_ids(self, rid: str, symbols: Sequence[str]) -> list[str]:
        universe = sorted(set(symbols) | set(self.instruments.symbols))
        return [f"{REBALANCE_PREFIX}-{rid}-{s}-{symbol}" for symbol in universe for s in ("S", "B")]

    async def execute(
        self, request: RebalanceRequest | RebalanceExecuteRequest, account_id: str
    ) -> tuple[int, RebalanceExecution]:
        """Execute the plan (sells, then buys) with client order ids ``rb-{rebalance_id}-{S|B}-{symbol}``.

        An id that already has orders in the ledger is not executed again: its orders are reported
        (``replayed``). Returns 200 when every order is final, 202 when some had no answer in time."""
        req = request.plan_request() if isinstance(request, RebalanceExecuteRequest) else request
        rid = self._rebalance_id(req, required=True)
        assert rid is not None
        named = req.targets
        for symbol in named:
            if symbol not in self.instruments:
                raise InvalidRequest(f"unknown symbol {symbol!r}", field=f"body.targets.{symbol}")
            if len(f"{REBALANCE_PREFIX}-{rid}-S-{symbol}") > 64:
                raise InvalidRequest(
                    "rebalance_id + symbol make a client order id over 64 characters", field="body.rebalance_id"
                )
        candidates = self._candidate_ids(rid, list(named))
        existing: dict[str, OrderRecord] = await self._ledger(self.store.get_orders(candidates))
        if any(r.order.account_id != account_id for r in existing.values()):
            raise Conflict(f"rebalance id {rid!r} is used by another account", field="body.rebalance_id")
        if existing:
            orders = sorted((r.order for r in existing.values()), key=lambda o: (o.created_ns, o.client_order_id))
            return 200, RebalanceExecution(
                rebalance_id=rid,
                outcome="replayed",
                plan=None,
                orders=[OrderView.of(o) for o in orders],
                replanned_buys=False,
                failed=sum(1 for o in orders if o.status is not OrderStatus.FILLED),
            )
        problem = await self._problem(req, account_id)
        plan = rebalance(problem)
        preview = self._preview(plan, rid, account_id)
        timeout = self.timeout_s

        async def submit(cmd: SubmitOrder) -> Order:
            cmd = msgspec.structs.replace(cmd, ts_ns=time.time_ns())
            result = await self.client.submit(cmd, timeout=timeout, until="terminal")
            return fold(Order.from_submit(cmd), result.events)

        try:
            done = await execute_plan(
                plan,
                submit,
                strategy_id=self.settings.rebalance.strategy_id,
                account_id=account_id,
                prefix=REBALANCE_PREFIX,
                key=rid,
            )
        except (OrderTimeout, ExecutionError):
            known: dict[str, OrderRecord] = await self._ledger(self.store.get_orders(candidates))
            orders = sorted((r.order for r in known.values()), key=lambda o: (o.created_ns, o.client_order_id))
            return 202, RebalanceExecution(
                rebalance_id=rid,
                outcome="pending",
                plan=preview,
                orders=[OrderView.of(o) for o in orders],
                replanned_buys=False,
                failed=sum(1 for o in orders if o.is_terminal and o.status is not OrderStatus.FILLED),
            )
        except BusUnavailable as exc:
            raise Unavailable(f"the order bus is unavailable: {exc}") from None
        return 200, RebalanceExecution(
            rebalance_id=rid,
            outcome="executed",
            plan=preview,
            orders=[OrderView.of(o) for o in done.orders],
            replanned_buys=done.replanned_buys is not None,
            failed=len(done.unfilled),
        )


def _weights_of(
    quantities: dict[str, Decimal],
    securities: dict[str, Security],
    cash: Decimal,
    holdings: dict[str, Decimal],
    options: RebalanceOptions,
) -> dict[str, Decimal]:
    """Return target weights that make the rebalancer aim at ``quantities``: each symbol's value at its price over
    the investable value (cash + holdings at the prices - the cash buffer), to the weights' 12 decimals (the
    nearest lot of that weight is the quantity asked for, short of constraints such as cash or drift bands)."""
    with localcontext(EXACT) as ctx:
        ctx.traps[Inexact] = False
        value = cash + sum((q * securities[s].price for s, q in holdings.items()), Decimal(0))
        investable = value - options.cash_buffer
        if investable <= 0:
            raise RebalanceInputError(None, "targets", f"nothing to invest (value {value})")
        step = Decimal(1).scaleb(-MAX_WEIGHT_DECIMALS)
        weights = {}
        for symbol, qty in quantities.items():
            instrument = securities[symbol].instrument
            if not qty.is_finite() or qty < 0 or qty >= MAX_MAGNITUDE:
                raise RebalanceInputError(symbol, "quantity", f"must be a finite number in 0..1e15, got {qty}")
            if qty != 0 and not instrument.is_valid_quantity(qty):
                raise RebalanceInputError(
                    symbol, "quantity", f"{qty} is not a whole number of lots of {instrument.lot_size}"
                )
            weights[symbol] = (qty * securities[symbol].price / investable).quantize(step, rounding=ROUND_HALF_EVEN)
    return weights


def _rebalance_field(exc: Exception, key: str = "targets") -> str | None:
    if isinstance(exc, RebalanceInputError):
        if exc.symbol is not None:
            return f"body.{key}.{exc.symbol}"
        return f"body.{exc.field}" if exc.field in RebalanceRequest.__struct_fields__ else f"body.{key}"
    return None


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "TradingError",
    "TradingService",
    "Unavailable",
]
