"""The execution engine: consume orders as a consumer-group member, check risk, write the ledger first, route to
the broker, report on ``reports``, book fills; recover on start; drain on stop.

One engine process holds one venue connection (``venue``: e.g. ``sim:engine-1``) and the orders it admitted
there. Several engines share the ``orders:{p}`` partitions as members of the group ``engine``: each entry goes
to one of them, a duplicated or redelivered order is answered from the ledger and never executed again, and
risk limits stay exact across engines because admissions are serialized per account by the ledger. See
:mod:`.admission` (the write path), :mod:`.processor` (venue reports), :mod:`.recovery` (reconciliation) and
:mod:`.booker` (the ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from tradepulse.bus import BusUnavailable, Consumer, GroupMissing, Transport
from tradepulse.bus.streams import TICKS, engine_stream, order_streams
from tradepulse.clock import LIVE_CLOCK, Clock
from tradepulse.config import Settings
from tradepulse.domain import OrderRejected, RejectReason, ReportItem, Tick, TradingState
from tradepulse.domain.money import ZERO
from tradepulse.execution.admission import Admission
from tradepulse.execution.booker import Booker
from tradepulse.execution.brokers.protocol import Broker, BrokerError
from tradepulse.execution.processor import ReportProcessor
from tradepulse.execution.publisher import ReportPublisher
from tradepulse.execution.recovery import Resolver, reconcile
from tradepulse.execution.state import EngineState
from tradepulse.execution.tracking import RecentOrders
from tradepulse.observability.latency import StageLatency
from tradepulse.portfolio.ledger import BookItem, Ledger
from tradepulse.risk.book import AccountRisk
from tradepulse.risk.engine import RiskEngine
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.storage.ledger_store import (
    AccountSnapshot,
    AdmissionTx,
    LedgerStore,
    LedgerUnavailable,
    Quantities,
)

log = logging.getLogger(__name__)

ENGINE_GROUP = "engine"


async def cancel_and_wait(tasks: Sequence[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while they run: on Python 3.11 a cancellation that
    arrives just as an inner ``asyncio.wait_for`` completes is swallowed (redis-py uses wait_for), and a task
    that swallowed one would otherwise never stop."""
    pending = {t for t in tasks if not t.done()}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn; failures were logged where they happened
    if pending:
        log.error("%d tasks did not stop: %s", len(pending), [t.get_name() for t in pending])


def account_view(snap: AccountSnapshot) -> AccountRisk:
    """Return the risk view of an account from its committed ledger state."""
    view = AccountRisk(snap.account.account_id, snap.account.cash, seq=snap.seq, token=snap.token)
    for symbol in set(snap.positions) | set(snap.reserved):
        row = snap.positions.get(symbol)
        reserved = snap.reserved.get(symbol, Quantities())
        released = row.released if row is not None else Quantities()
        exp = view.exposure(symbol)
        if row is not None:
            exp.position = row.position.quantity
            avg = row.position.avg_price
            if avg is not None:
                exp.fallback_price = abs(avg)
        exp.buy_qty = reserved.buy_qty - released.buy_qty
        exp.sell_qty = reserved.sell_qty - released.sell_qty
        exp.buy_notional = reserved.buy_notional - released.buy_notional
        exp.sell_notional = reserved.sell_notional - released.sell_notional
        view.reserved_buy_notional += exp.buy_notional
        if not exp.fallback_price and exp.buy_qty:
            exp.fallback_price = exp.buy_notional / exp.buy_qty
    return view


class ExecutionEngine:
    """One engine process's worth of execution. ``start`` recovers and starts consuming; ``stop`` drains."""

    def __init__(
        self,
        settings: Settings,
        bus: Transport,
        store: LedgerStore,
        broker: Broker,
        *,
        clock: Clock = LIVE_CLOCK,
        instruments: InstrumentRegistry | None = None,
        latency: StageLatency | None = None,
    ) -> None:
        cfg = settings.execution
        self.settings = settings
        self.config = cfg
        self.bus = bus
        self.store = store
        self.broker = broker
        self.clock = clock
        self.name = cfg.engine_name
        self.instruments = instruments or InstrumentRegistry.from_settings(settings)
        self.state = EngineState(name=self.name, venue=broker.venue, recent=RecentOrders(cfg.recent_orders))
        self.risk = RiskEngine(settings.risk, self.instruments, clock)
        self.ledger = Ledger(store)
        self.latency = latency
        self.publisher = ReportPublisher(bus, self.name, max_items=cfg.report_batch)
        self.booker = Booker(
            self.ledger, retry_s=cfg.ledger_retry_ms / 1000.0, interval_s=cfg.book_interval_ms / 1000.0
        )
        self.processor = ReportProcessor(
            broker=broker,
            orders=self.state.orders,
            recent=self.state.recent,
            accounts=lambda: self.state.accounts,
            publisher=self.publisher,
            booker=self.booker,
            attention=self.state.attention,
            on_terminal=self._on_terminal,
        )
        self.resolver = Resolver(self.state, broker, self.processor, cfg)
        self.admission = Admission(
            config=cfg,
            state=self.state,
            store=store,
            broker=broker,
            risk=self.risk,
            processor=self.processor,
            publisher=self.publisher,
            bus=bus,
            locked=self.locked_accounts,
            fresh_views=self.fresh_views,
            on_ledger_down=self._ledger_down,
        )
        self.consumer: Consumer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._baseline: dict[str, tuple[dt.date, Decimal]] = {}
        self.terminal = 0
        self.started_ns = 0
        self._stopping = False

    @property
    def streams(self) -> list[str]:
        return [*order_streams(self.settings.bus.order_partitions), engine_stream(self.name)]

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the ledger, recover (reconcile with the venue), then consume the order streams."""
        self.started_ns = time.time_ns()
        risk = self.settings.risk
        await self.store.open()
        await self.store.ensure_accounts(list(risk.accounts), risk.starting_cash, risk.currency)
        self.risk.state = (await self.store.trading_state()).state
        await self.reload_accounts(list(risk.accounts))
        await self.broker.start()
        self.publisher.start()
        self.booker.start()
        self.processor.start()
        await reconcile(self.state, self.store, self.broker, self.processor, self.config)
        self.resolver.start()
        self._spawn(self._follow_ticks(), "ticks")
        self._spawn(self._poll_state(), "trading-state")
        self._spawn(self._write_marks(), "marks")
        self._spawn(self._watch_ledger(), "ledger-watch")
        if self.risk.state is TradingState.HALTED:
            await self._cancel_all("trading is HALTED")
        self.consumer = Consumer(
            self.bus,
            group=ENGINE_GROUP,
            name=self.name,
            streams=self.streams,
            handler=self.admission.handle,
            config=msgspec.structs.replace(self.settings.bus, read_count=self.config.max_batch),
            batch_window_ms=self.config.batch_window_ms,
            max_in_flight=self._in_flight_limit,
        )
        self.consumer.start()
        await self.consumer.wait_started()
        log.info("engine %s started at %s (%d open orders)", self.name, self.state.venue, len(self.state.orders))

    def _in_flight_limit(self) -> int:
        """One batch at a time (natural batching), more while an account is contended: another engine admits
        for it too, and one turn of the ledger's lock then admits every batch waiting for it."""
        cfg = self.config
        return cfg.max_in_flight_contended if self.admission.contended() else cfg.max_in_flight_batches

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.append(task)

    async def stop(self, timeout: float | None = None) -> bool:
        """Stop consuming, finish in-flight work (venue answers, reports, bookings), close. Return whether all
        of it finished within ``timeout`` (default ``execution.drain_timeout_s``)."""
        limit = self.config.drain_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + limit
        if self.consumer is not None:
            await self.consumer.close(timeout=max(0.1, deadline - time.monotonic()))
        done = await self.processor.drain(max(0.1, deadline - time.monotonic()))
        done = await self.publisher.drain(max(0.1, deadline - time.monotonic())) and done
        done = await self.booker.drain(max(0.1, deadline - time.monotonic())) and done
        await self._cancel_tasks()
        await self.admission.close()
        await self.resolver.close()
        await self.processor.close()
        await self.publisher.close(max(0.1, deadline - time.monotonic()))
        await self.booker.close(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            await self.broker.close()
        await self.store.close()
        log.info("engine %s stopped (%s)", self.name, "drained" if done else "drain timed out")
        return done

    async def abort(self) -> None:
        """Stop at once without draining, as a crash would (tests use it for in-process crash steps)."""
        if self.consumer is not None:
            await self.consumer.kill()
        await self._cancel_tasks()
        await self.admission.close()
        await self.resolver.close()
        await self.processor.close()
        for task in (self.publisher._task, self.booker._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await self.broker.close()
        await self.store.close()

    async def _cancel_tasks(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    # -- risk view ------------------------------------------------------------------------------------------

    async def reload_accounts(self, account_ids: Sequence[str]) -> None:
        """Rebuild the risk view of ``account_ids`` from the ledger, plus this engine's changes the ledger does not
        have yet: fills and closes not booked, and reservations of admissions still in flight."""
        async with self.booker.lock:
            self.state.accounts.update(self._views(await self.store.snapshot(account_ids)))

    @contextlib.asynccontextmanager
    async def locked_accounts(self, account_ids: Sequence[str]) -> AsyncIterator[AdmissionTx]:
        """Lock the accounts' admissions in the ledger, rebuild their risk view from what is committed now, and
        yield the admission transaction (commits when the block exits): for accounts other engines trade too."""
        async with self.booker.lock, self.store.admission_lock(account_ids) as tx:
            self.state.accounts.update(self._views(tx.snapshots))
            yield tx

    @contextlib.asynccontextmanager
    async def fresh_views(self) -> AsyncIterator[Callable[[Mapping[str, AccountSnapshot]], None]]:
        """Hold the booker's lock and yield what rebuilds accounts' risk views from snapshots read meanwhile (with
        this engine's changes the ledger does not have yet, as :meth:`reload_accounts`)."""

        def refresh(snapshots: Mapping[str, AccountSnapshot]) -> None:
            self.state.accounts.update(self._views(snapshots))

        async with self.booker.lock:
            yield refresh

    def _views(self, snapshots: Mapping[str, AccountSnapshot]) -> dict[str, AccountRisk]:
        # called holding the booker's lock: a booking is either in the snapshot or still in unbooked(), never both
        views = {a: account_view(s) for a, s in snapshots.items()}
        for item in self.booker.unbooked():
            view = views.get(item.order.account_id)
            if view is None:
                continue
            o = item.order
            for fill in item.fills:
                view.fill(o.symbol, o.side, fill.quantity, fill.price, fill.fee, item.reserve_price)
            if item.release_quantity:
                view.release(o.symbol, o.side, item.release_quantity, item.reserve_price)
        for cmd, decision in self.admission.reserved_in_flight():
            view = views.get(cmd.account_id)
            if view is not None:
                view.reserve(cmd.symbol, cmd.side, cmd.quantity, decision.reserve_price)
        return views

    # -- background work ------------------------------------------------------------------------------------

    async def _follow_ticks(self) -> None:
        after = "$"
        delay = 0.05
        block = self.settings.bus.block_ms
        while not self._stopping:
            try:
                deliveries, after = await self.bus.tail(TICKS, after, count=1_000, block_ms=block)
            except (BusUnavailable, GroupMissing) as exc:
                log.warning("ticks: %s; retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            for delivery in deliveries:
                tick = delivery.message
                if not isinstance(tick, Tick):
                    continue
                try:
                    self.state.marks.update(tick, self.instruments.get(tick.symbol))
                    self.broker.on_tick(tick)
                except Exception:
                    log.exception("tick %s %s could not be applied", tick.symbol, delivery.entry_id)

    async def _poll_state(self) -> None:
        interval = self.settings.risk.state_poll_ms / 1000.0
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                row = await self.store.trading_state()
            except LedgerUnavailable:
                continue
            if row.state is not self.risk.state:
                log.warning(
                    "trading state %s -> %s (%s, by %s)", self.risk.state, row.state, row.reason, row.changed_by
                )
                await self._apply_state(row.state)
            await self._check_daily_loss()

    async def _apply_state(self, state: TradingState) -> None:
        self.risk.state = state
        if state is TradingState.HALTED:
            await self._cancel_all("trading is HALTED")

    async def set_trading_state(self, state: TradingState, reason: str, changed_by: str = "admin") -> None:
        """Persist a new trading state (the admin call) and apply it here at once; other engines poll it."""
        await self.store.set_trading_state(state, reason, changed_by, time.time_ns())
        await self._apply_state(state)

    async def _cancel_all(self, why: str) -> None:
        open_ids = [coid for coid, t in self.state.orders.items() if t.order.status.is_open]
        if not open_ids:
            return
        now = time.time_ns()
        for coid in open_ids:
            self.state.orders[coid].cancel_requested_ns = now
            self.state.attention.add(coid)
        log.warning("%s: canceling %d open orders", why, len(open_ids))
        with contextlib.suppress(BrokerError, TimeoutError):
            await asyncio.wait_for(self.broker.cancel(open_ids), self.config.broker_timeout_ms / 1000.0)

    async def _check_daily_loss(self) -> None:
        limit = self.settings.risk.max_daily_loss
        if not limit or self.risk.state is TradingState.HALTED:
            return
        today = dt.datetime.now(dt.UTC).date()
        marks = self.state.marks
        for account_id, view in self.state.accounts.items():
            equity = view.cash + sum(
                (e.position * marks.price_or(s, e.fallback_price) for s, e in view.symbols.items() if e.position),
                ZERO,
            )
            base = self._baseline.get(account_id)
            if base is None or base[0] != today:
                self._baseline[account_id] = (today, equity)
                continue
            if base[1] - equity > limit:
                reason = f"{account_id} lost {base[1] - equity} today (limit {limit})"
                log.error("kill switch: %s; HALTED until an admin resumes trading", reason)
                await self.set_trading_state(TradingState.HALTED, reason, f"engine {self.name}")
                return

    async def _write_marks(self) -> None:
        while not self._stopping:
            await asyncio.sleep(1.0)
            now = time.time_ns()
            with contextlib.suppress(LedgerUnavailable):
                await self.store.write_marks([(s, p, now) for s, p in self.state.marks.items()])

    def _ledger_down(self) -> None:
        self.state.ledger_ok = False

    async def _watch_ledger(self) -> None:
        interval = self.config.ledger_retry_ms / 1000.0
        while not self._stopping:
            await asyncio.sleep(interval)
            if self.ledger_available:
                if self.state.ghosts:
                    await self._resolve_ghosts()
                continue
            try:
                await self.store.ping()
            except LedgerUnavailable:
                continue
            if not self.state.ledger_ok:
                log.warning("ledger available again: admitting new orders")
                await self.reload_accounts(list(self.settings.risk.accounts))
            self.state.ledger_ok = True

    async def _resolve_ghosts(self) -> None:
        """Close orders whose admission committed although the engine saw the ledger fail (it refused them)."""
        ghosts = list(self.state.ghosts)
        try:
            stored = await self.store.get_orders(ghosts)
        except LedgerUnavailable:
            return
        items: list[BookItem] = []
        now = time.time_ns()
        for coid, record in stored.items():
            o = record.order
            if record.venue == self.state.venue and o.status.value == "NEW" and coid not in self.state.orders:
                closed = o.apply(
                    OrderRejected(
                        client_order_id=coid,
                        account_id=o.account_id,
                        symbol=o.symbol,
                        reason=RejectReason.LEDGER_UNAVAILABLE,
                        message="refused: the ledger answered too late; the order was never sent",
                        ts_ns=now,
                    )
                )
                items.append(BookItem(order=closed, reserve_price=record.reserve_price, release_quantity=o.quantity))
                self.state.recent.add(closed)
        self.booker.put(items)
        self.state.ghosts.difference_update(ghosts)

    # -- observation ----------------------------------------------------------------------------------------

    def _on_terminal(self, item: ReportItem) -> None:
        self.terminal += 1
        if self.latency is not None and "submit" in item.stamps:
            self.latency.record(item.stamps)

    @property
    def ledger_available(self) -> bool:
        """Whether the ledger answers both admissions and bookings (while it does not, new orders are refused)."""
        return self.state.ledger_ok and self.booker.available

    def equity(self) -> Decimal:
        marks = self.state.marks
        total = ZERO
        for view in self.state.accounts.values():
            total += view.cash
            for symbol, e in view.symbols.items():
                if e.position:
                    total += e.position * marks.price_or(symbol, e.fallback_price)
        return total

    def panel_rows(self) -> list[tuple[str, str]]:
        c = self.state.counters
        pc = self.processor.counters
        start = self.settings.risk.starting_cash * len(self.state.accounts)
        return [
            ("orders received", f"{c.received:,}"),
            ("admitted / rejected / duplicate", f"{c.admitted:,} / {c.rejected:,} / {c.duplicates:,}"),
            ("fills", f"{pc.fills:,}"),
            ("open orders", f"{len(self.state.orders):,}"),
            ("PnL (equity - start)", f"{self.equity() - start:,.2f}"),
            ("trading state", self.risk.state.value),
            ("ledger", "ok" if self.ledger_available else "UNAVAILABLE (refusing orders)"),
            ("unbooked / unpublished", f"{self.booker.backlog:,} / {self.publisher.backlog:,}"),
        ]


__all__ = ["ENGINE_GROUP", "ExecutionEngine", "account_view"]
