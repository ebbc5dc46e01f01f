"""What the simulated exchange and the paper broker share: the order registry, the journal, fees, latency,
reports, queries and cancels. Subclasses only decide how orders trade (:meth:`VenueCore._on_new`,
:meth:`VenueCore._on_tick`).

Prices and quantities inside a venue are integers (ticks and lots of the instrument), so matching compares
ints and every price and quantity it reports is an exact multiple of the tick and the lot.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from tradepulse.clock import LIVE_CLOCK, Clock
from tradepulse.config import VenueConfig
from tradepulse.domain import (
    Fill,
    Instrument,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    Tick,
    TimeInForce,
)
from tradepulse.execution.brokers.journal import (
    JAccepted,
    JClosed,
    JEpoch,
    JFill,
    JRefused,
    JTriggered,
    Record,
    VenueJournal,
)
from tradepulse.execution.brokers.protocol import BrokerOrderState, ExecType, VenueReport
from tradepulse.risk.instruments import InstrumentRegistry

_CENT = Decimal("0.01")
_BPS = Decimal(10_000)


class Grid:
    """An instrument's tick and lot grid: integer ticks and lots to exact Decimals and back."""

    __slots__ = ("_prices", "instrument", "lot", "tick")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.tick = instrument.tick_size
        self.lot = instrument.lot_size
        self._prices: dict[int, Decimal] = {}

    def price(self, ticks: int) -> Decimal:
        found = self._prices.get(ticks)
        if found is None:
            found = self._prices[ticks] = (self.tick * ticks).quantize(
                Decimal(1).scaleb(-self.instrument.price_precision)
            )
        return found

    def ticks(self, price: Decimal) -> int:
        return int(price / self.tick)

    def ticks_from_float(self, price: float) -> int:
        return round(price / float(self.tick))

    def quantity(self, lots: int) -> Decimal:
        return self.lot * lots

    def lots(self, quantity: Decimal) -> int:
        return int(quantity / self.lot)


@dataclass(slots=True, eq=False)
class VenueOrder:
    """The venue's copy of an order: integer quantities, its fills, and its place in the book."""

    order: Order
    grid: Grid
    seq: int
    venue_order_id: str
    lots: int
    limit_ticks: int | None
    stop_ticks: int | None
    status: OrderStatus = OrderStatus.ACCEPTED
    cum_lots: int = 0
    fills: list[Fill] = field(default_factory=list)
    triggered: bool = False
    reason: RejectReason | None = None
    message: str = ""

    @property
    def leaves(self) -> int:
        return self.lots - self.cum_lots

    @property
    def is_open(self) -> bool:
        return self.status is OrderStatus.ACCEPTED or self.status is OrderStatus.PARTIALLY_FILLED

    @property
    def buy(self) -> bool:
        return self.order.side is Side.BUY

    def state(self) -> BrokerOrderState:
        return BrokerOrderState(
            client_order_id=self.order.client_order_id,
            status=self.status,
            quantity=self.order.quantity,
            cum_quantity=self.grid.quantity(self.cum_lots),
            fills=tuple(self.fills),
            venue_order_id=self.venue_order_id,
            reason=self.reason,
            message=self.message,
        )


class LatencyModel:
    """Each call waits ``base_us`` plus an exponential ``jitter_us`` on average (seeded)."""

    def __init__(self, base_us: float, jitter_us: float, seed: int) -> None:
        self.base = base_us / 1e6
        self.jitter = jitter_us / 1e6
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not security

    def sample(self) -> float:
        if self.jitter > 0:
            return self.base + self._rng.expovariate(1.0 / self.jitter)
        return self.base

    async def wait(self) -> None:
        delay = self.sample()
        if delay > 0:
            await asyncio.sleep(delay)


class VenueCore:
    """Registry, journal, fees, latency and reports. Subclasses implement the matching."""

    kind = "venue"

    def __init__(
        self,
        venue: str,
        instruments: InstrumentRegistry,
        config: VenueConfig,
        *,
        journal: str | Path | None = None,
        clock: Clock = LIVE_CLOCK,
    ) -> None:
        self.venue = venue
        self.config = config
        self.clock = clock
        self.grids = {i.symbol: Grid(i) for i in instruments}
        self.orders: dict[str, VenueOrder] = {}
        self.latency = LatencyModel(config.latency_us, config.latency_jitter_us, config.seed)
        self._journal = VenueJournal(journal, fsync=config.journal_fsync) if journal else None
        self._records: list[Record] = []
        self._out: list[VenueReport] = []
        self._queue: list[VenueReport] = []
        self._ready = asyncio.Event()
        self._closed = False
        self._seq = 0
        self._ids = 0
        self._epoch = ""
        self._maker_rate = config.maker_fee_bps / _BPS
        self._taker_rate = config.taker_fee_bps / _BPS
        self.fills = 0

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay the journal (rebuilding open orders in their original priority), then open it for writing."""
        restored: list[VenueOrder] = []
        if self._journal is not None:
            for record in self._journal.replay():
                self._replay(record)
            self._journal.open()
        if not self._epoch:
            self._epoch = _base36(time.time_ns())
            self._records.append(JEpoch(self._epoch))
        restored = sorted((vo for vo in self.orders.values() if vo.is_open), key=lambda vo: vo.seq)
        for vo in restored:
            self._restore(vo)
        self._flush()

    def _replay(self, record: Record) -> None:
        if isinstance(record, JEpoch):
            self._epoch = record.epoch
        elif isinstance(record, JAccepted):
            vo = self._make(record.order, record.seq, record.venue_order_id)
            self.orders[record.order.client_order_id] = vo
            self._seq = max(self._seq, record.seq)
            self._ids = max(self._ids, _id_number(record.venue_order_id))
        elif isinstance(record, JRefused):
            vo = self._make(record.order, 0, "")
            vo.status, vo.reason, vo.message = OrderStatus.REJECTED, record.reason, record.message
            self.orders[record.order.client_order_id] = vo
        elif isinstance(record, JFill):
            vo = self.orders[record.fill.client_order_id]
            vo.fills.append(record.fill)
            vo.cum_lots += vo.grid.lots(record.fill.quantity)
            vo.status = OrderStatus.FILLED if vo.cum_lots == vo.lots else OrderStatus.PARTIALLY_FILLED
            self._ids = max(self._ids, _id_number(record.fill.fill_id))
        elif isinstance(record, JClosed):
            vo = self.orders[record.client_order_id]
            vo.status, vo.message = record.status, record.message
        elif isinstance(record, JTriggered):
            vo = self.orders[record.client_order_id]
            vo.triggered, vo.seq = True, record.seq
            self._seq = max(self._seq, record.seq)

    async def close(self) -> None:
        self._flush()
        self._closed = True
        self._ready.set()
        if self._journal is not None:
            self._journal.close()

    # -- the broker protocol --------------------------------------------------------------------------------

    async def submit(self, orders: Sequence[Order]) -> None:
        await self.latency.wait()
        now = self.clock.time_ns()
        for order in orders:
            known = self.orders.get(order.client_order_id)
            if known is not None:
                self._report(known, ExecType.DUPLICATE, now, message="client order id already known")
                continue
            refusal = self._validate(order)
            if refusal is not None:
                self._refuse(order, refusal[0], refusal[1], now)
                continue
            self._on_new(self._accept(order, now), now)
        self._after_batch(now)
        self._flush()

    async def cancel(self, client_order_ids: Sequence[str]) -> None:
        await self.latency.wait()
        now = self.clock.time_ns()
        for coid in client_order_ids:
            vo = self.orders.get(coid)
            if vo is not None and vo.is_open:
                self._remove(vo)
                self._close(vo, OrderStatus.CANCELED, now, "canceled on request")
        self._flush()

    async def query(self, client_order_id: str) -> BrokerOrderState | None:
        await self.latency.wait()
        vo = self.orders.get(client_order_id)
        return None if vo is None else vo.state()

    async def open_orders(self) -> list[BrokerOrderState]:
        return [vo.state() for vo in self.orders.values() if vo.is_open]

    async def reports(self) -> AsyncIterator[list[VenueReport]]:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            batch, self._queue = self._queue, []
            yield batch

    def take_reports(self) -> list[VenueReport]:
        """Return and remove every report not yet consumed: a synchronous drain, for the engine right after a call
        (:meth:`~tradepulse.execution.processor.ReportProcessor.apply_ready`), tools and tests."""
        batch, self._queue = self._queue, []
        return batch

    def on_tick(self, tick: Tick) -> None:
        grid = self.grids.get(tick.symbol)
        if grid is None:
            return
        now = self.clock.time_ns()
        self._on_tick(tick, grid, now)
        self._flush()

    def end_of_session(self) -> int:
        """Expire every open DAY order (the venue's session closed); return how many."""
        now = self.clock.time_ns()
        expired = 0
        for vo in list(self.orders.values()):
            if vo.is_open and vo.order.time_in_force is TimeInForce.DAY:
                self._remove(vo)
                self._close(vo, OrderStatus.EXPIRED, now, "DAY order expired at the session close")
                expired += 1
        self._flush()
        return expired

    # -- hooks for subclasses -------------------------------------------------------------------------------

    def _validate(self, order: Order) -> tuple[RejectReason, str] | None:
        grid = self.grids.get(order.symbol)
        if grid is None:
            return RejectReason.UNKNOWN_INSTRUMENT, f"{self.venue} does not list {order.symbol}"
        if not grid.instrument.is_valid_quantity(order.quantity):
            return RejectReason.INVALID_QUANTITY, f"quantity {order.quantity} is not a whole number of lots"
        for price in (order.limit_price, order.stop_price):
            if price is not None and not grid.instrument.is_valid_price(price):
                return RejectReason.INVALID_PRICE, f"price {price} is off the tick grid"
        return None

    def _on_new(self, vo: VenueOrder, now: int) -> None:
        raise NotImplementedError

    def _on_tick(self, tick: Tick, grid: Grid, now: int) -> None:
        raise NotImplementedError

    def _after_batch(self, now: int) -> None:
        """Run after each submitted batch (e.g. stops triggered by the batch's own trades)."""

    def _remove(self, vo: VenueOrder) -> None:
        """Take an open order out of the book (it is being canceled or expired)."""

    def _restore(self, vo: VenueOrder) -> None:
        """Put an open order replayed from the journal back where it rested."""

    # -- building blocks ------------------------------------------------------------------------------------

    def _make(self, order: Order, seq: int, venue_order_id: str) -> VenueOrder:
        grid = self.grids.get(order.symbol) or Grid(Instrument(order.symbol))
        return VenueOrder(
            order=order,
            grid=grid,
            seq=seq,
            venue_order_id=venue_order_id,
            lots=grid.lots(order.quantity),
            limit_ticks=None if order.limit_price is None else grid.ticks(order.limit_price),
            stop_ticks=None if order.stop_price is None else grid.ticks(order.stop_price),
        )

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{self.venue}:{self._epoch}:{prefix}{self._ids}"

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _accept(self, order: Order, now: int) -> VenueOrder:
        vo = self._make(order, self.next_seq(), self._next_id("O"))
        self.orders[order.client_order_id] = vo
        self._records.append(JAccepted(order, vo.seq, vo.venue_order_id))
        self._report(vo, ExecType.NEW, now)
        return vo

    def _refuse(self, order: Order, reason: RejectReason, message: str, now: int) -> None:
        vo = self._make(order, 0, "")
        vo.status, vo.reason, vo.message = OrderStatus.REJECTED, reason, message
        self.orders[order.client_order_id] = vo
        self._records.append(JRefused(order, reason, message))
        self._report(vo, ExecType.REJECTED, now, reason=reason, message=message)

    def _trade(self, vo: VenueOrder, lots: int, price_ticks: int, liquidity: Liquidity, now: int) -> Fill:
        """Fill ``lots`` of ``vo`` at ``price_ticks``; journal and report it."""
        grid = vo.grid
        price = grid.price(price_ticks)
        quantity = grid.quantity(lots)
        rate = self._maker_rate if liquidity is Liquidity.MAKER else self._taker_rate
        fee = (price * quantity * rate).quantize(_CENT, rounding=ROUND_HALF_EVEN)
        order = vo.order
        fill = Fill(
            fill_id=self._next_id("F"),
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            quantity=quantity,
            fee=fee,
            currency=grid.instrument.currency,
            liquidity=liquidity,
            venue_order_id=vo.venue_order_id,
            ts_exchange_ns=now,
            ts_received_ns=now,
        )
        vo.cum_lots += lots
        vo.fills.append(fill)
        vo.status = OrderStatus.FILLED if vo.cum_lots == vo.lots else OrderStatus.PARTIALLY_FILLED
        self.fills += 1
        self._records.append(JFill(fill))
        self._report(vo, ExecType.TRADE, now, fill=fill)
        return fill

    def _close(self, vo: VenueOrder, status: OrderStatus, now: int, message: str) -> None:
        vo.status, vo.message = status, message
        self._records.append(JClosed(vo.order.client_order_id, status, message))
        exec_type = ExecType.CANCELED if status is OrderStatus.CANCELED else ExecType.EXPIRED
        self._report(vo, exec_type, now, message=message)

    def _trigger(self, vo: VenueOrder) -> None:
        vo.triggered = True
        vo.seq = self.next_seq()
        self._records.append(JTriggered(vo.order.client_order_id, vo.seq))

    def _report(
        self,
        vo: VenueOrder,
        exec_type: ExecType,
        now: int,
        *,
        fill: Fill | None = None,
        reason: RejectReason | None = None,
        message: str = "",
    ) -> None:
        self._out.append(
            VenueReport(
                client_order_id=vo.order.client_order_id,
                exec_type=exec_type,
                status=vo.status,
                cum_quantity=vo.grid.quantity(vo.cum_lots),
                venue_order_id=vo.venue_order_id or None,
                fill=fill,
                reason=reason,
                message=message,
                ts_ns=now,
            )
        )

    def _flush(self) -> None:
        """Journal what happened, then (and only then) let the reports out."""
        if self._records:
            if self._journal is not None:
                self._journal.write(self._records)
            self._records = []
        if self._out:
            self._queue.extend(self._out)
            self._out = []
            self._ready.set()

    def remaining_stop(self, vo: VenueOrder) -> bool:
        """Return whether ``vo`` is a stop order still waiting for its trigger."""
        return vo.order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and not vo.triggered


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def _id_number(venue_id: str) -> int:
    tail = venue_id.rsplit(":", 1)[-1]
    return int(tail[1:]) if len(tail) > 1 and tail[1:].isdigit() else 0


__all__ = ["Grid", "LatencyModel", "VenueCore", "VenueOrder"]
