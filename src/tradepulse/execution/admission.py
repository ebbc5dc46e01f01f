"""Admission: the consumer-group handler for ``orders:{p}`` (and this engine's own command stream).

For each batch read from the bus:

1. duplicates of orders this engine remembers are answered with the order as it stands;
2. if the ledger is down, every new order is refused (LEDGER_UNAVAILABLE): nothing executes without a ledger row;
3. risk checks run on the engine's account view, reserving each accepted order's worst case, so orders in one
   batch see each other;
4. all orders (accepted as NEW, refused as REJECTED) are written to the ledger in ONE statement that only
   succeeds if no other engine changed the accounts meanwhile; if one did, the account is *contended* and the
   batch (and, for a while, every batch for that account) is admitted in turns: everything queued for the
   account decided together on the state the failed write brought back, written with the same check, and
   after a few overtaken writes under the ledger's lock on the account, so engines sharing an account take
   turns instead of retrying against each other. A client order id the ledger already has is not inserted; its
   stored state is the answer. While an account is contended, the orders for it are *forwarded* instead, to
   the stream of the engine that overtook this one if that engine's name sorts first (:meth:`Admission._forward`):
   one engine admits for a busy shared account and the others stop racing it; a forwarded order the ledger does
   not have within ``execution.forward_timeout_ms`` is admitted by the engine that forwarded it after all;
5. only then are the accepted orders sent to the broker, in one call; a call that times out leaves its orders
   UNKNOWN for the resolver (never resent).

Cancels go to the broker when this engine holds the order; otherwise they are forwarded to the engine that
does, or answered with the order's final state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import msgspec

from tradepulse.bus import BusUnavailable, Delivery, Transport
from tradepulse.bus.streams import engine_stream
from tradepulse.config import ExecutionConfig
from tradepulse.domain import (
    CancelOrder,
    Order,
    OrderRejected,
    OrderStatus,
    RejectReason,
    ReportItem,
    SubmitOrder,
)
from tradepulse.execution.brokers.protocol import Broker, BrokerError, BrokerTimeout
from tradepulse.execution.processor import Internal, ReportProcessor
from tradepulse.execution.publisher import ReportPublisher
from tradepulse.execution.state import EngineState
from tradepulse.execution.tracking import Tracked
from tradepulse.risk.book import AccountRisk
from tradepulse.risk.engine import RiskDecision, RiskEngine
from tradepulse.storage.ledger_store import (
    AccountSnapshot,
    AdmissionTx,
    AdmitResult,
    LedgerStore,
    LedgerUnavailable,
    OrderRecord,
)

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 20
#: most orders in one admission statement (whole batches; encoding a statement holds the event loop)
_MAX_STATEMENT = 1_024
#: how long an account stays contended (admitted in turns on fresh state) after another engine overtook this one
CONTENDED_S = 1.0
#: overtaken optimistic writes in one contended turn before it takes the ledger's lock on the accounts
FRESH_ATTEMPTS = 3
#: the stamp a forwarded order carries: when it was (last) forwarded
FORWARD_STAMP = "forward"


def _snapshot(order: Order, stamps: dict[str, int]) -> Order:
    return msgspec.structs.replace(order, stamps=stamps)


@dataclass(slots=True)
class _InFlight:
    """A batch between its risk decisions and the ledger's answer; its reservations are in the view."""

    number: int
    fresh: list[SubmitOrder]
    done: asyncio.Future[None]
    decisions: list[RiskDecision] = field(default_factory=list)
    #: set once the batch waits for the ledger's lock (or is done): a later batch may queue behind it
    queued: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Locked:
    """A batch waiting for a turn of its contended accounts, with what deciding it needs."""

    flight: _InFlight
    accounts: list[str]
    first: bool
    rate_refused: dict[str, RiskDecision]
    now: int
    future: asyncio.Future[_LockedOutcome]


@dataclass(frozen=True, slots=True)
class _LockedOutcome:
    ok: bool
    decisions: list[RiskDecision]
    records: list[OrderRecord]
    inserted: frozenset[str]
    risk_ns: int


#: a batch's decisions, its ledger records, and when it was decided (ns)
_Decided = tuple[list[RiskDecision], list[OrderRecord], int]


@dataclass(slots=True)
class _Job:
    records: list[OrderRecord]
    accounts: list[str]
    future: asyncio.Future[tuple[bool, frozenset[str]]]


class LedgerWriter:
    """Group commit for admissions: one statement in flight; what queued meanwhile goes in the next one.

    Batches read concurrently queue their (already risk-checked, in arrival order) records here; the writer sends
    them (whole batches, up to :data:`_MAX_STATEMENT` orders) in one admission statement that follows the
    account's last admission and records a new one, so a burst costs one commit, and an order waits for about
    one commit before its own. When nothing is in flight the caller sends its statement itself (no hand-over
    to another task: a loop turn less on every order's path at low load); what queues meanwhile is sent by a
    writer task, one statement after the other.
    """

    def __init__(self, store: LedgerStore, state: EngineState) -> None:
        self.store = store
        self.state = state
        self._queue: list[_Job] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._tokens = 0
        self._epoch = format(time.time_ns(), "x")
        self.statements = 0
        self.orders = 0

    def token(self) -> str:
        """Return a new admission token, unique across engines and restarts."""
        self._tokens += 1
        return f"{self.state.name}:{self._epoch}:{self._tokens}"

    async def write(self, records: list[OrderRecord], accounts: list[str]) -> tuple[bool, frozenset[str]]:
        """Queue ``records``; return (the statement committed, which of them were inserted)."""
        future: asyncio.Future[tuple[bool, frozenset[str]]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(records, accounts, future))
        if not self._busy:
            self._busy = True
            try:
                await self._statement()
            except BaseException:
                if future.done() and not future.cancelled():
                    future.exception()  # this caller is leaving (cancelled): its outcome is not wanted
                raise
            finally:
                self._hand_over()
        return await future

    def _hand_over(self) -> None:
        """After a statement: the writer task sends what queued meanwhile, or the writer is idle again."""
        if self._queue:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="ledger-admissions")
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._statement()
        finally:
            self._busy = False
            if self._queue:  # cancelled (closing) with jobs queued: they will not be written
                for job in self._queue:
                    if not job.future.done():
                        job.future.set_exception(LedgerUnavailable("the admission writer stopped"))
                self._queue.clear()

    async def _statement(self) -> None:
        """Send what is queued (whole batches, up to :data:`_MAX_STATEMENT` orders) as one statement."""
        jobs: list[_Job] = []
        size = 0
        while self._queue and (not jobs or size + len(self._queue[0].records) <= _MAX_STATEMENT):
            job = self._queue.pop(0)
            jobs.append(job)
            size += len(job.records)
        records = [r for job in jobs for r in job.records]
        accounts = sorted({a for job in jobs for a in job.accounts})
        expected: dict[str, tuple[int, str]] = {}
        tokens: dict[str, str] = {}
        for account_id in accounts:
            view = self.state.accounts[account_id]
            expected[account_id] = (view.seq, view.token)
            tokens[account_id] = self.token()
            view.seq, view.token = view.seq + 1, tokens[account_id]  # the next statement follows this one
        try:
            result = await self.store.admit(records, expected, tokens)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else LedgerUnavailable("the admission was interrupted")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        self.statements += 1
        self.orders += len(records)
        for job in jobs:
            if not job.future.done():
                job.future.set_result((result.ok, result.inserted))

    async def close(self) -> None:
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.2)


class AdmissionConflict(RuntimeError):
    """The accounts kept changing under this engine; the batch is left pending and retried later."""


class Admission:
    """The order-stream handler. See the module docstring."""

    def __init__(
        self,
        *,
        config: ExecutionConfig,
        state: EngineState,
        store: LedgerStore,
        broker: Broker,
        risk: RiskEngine,
        processor: ReportProcessor,
        publisher: ReportPublisher,
        bus: Transport,
        locked: Callable[[Sequence[str]], AbstractAsyncContextManager[AdmissionTx]],
        fresh_views: Callable[[], AbstractAsyncContextManager[Callable[[Mapping[str, AccountSnapshot]], None]]],
        on_ledger_down: Callable[[], None],
    ) -> None:
        self.config = config
        self.state = state
        self.store = store
        self.broker = broker
        self.risk = risk
        self.processor = processor
        self.publisher = publisher
        self.bus = bus
        self.locked = locked
        self.fresh_views = fresh_views
        #: accounts another engine admitted for under this one, by when (monotonic): admitted under the lock
        self._contended: dict[str, float] = {}
        self._locked_queue: list[_Locked] = []
        self._locked_wake = asyncio.Event()
        self._locked_task: asyncio.Task[None] | None = None
        self.on_ledger_down = on_ledger_down
        self.broker_timeout = config.broker_timeout_ms / 1000.0
        #: batches between risk decisions and the ledger's answer, by arrival number
        self.in_flight: dict[int, _InFlight] = {}
        self._next_batch = 0
        self._rng = random.Random()  # noqa: S311 - back-off jitter, not security
        self.writer = LedgerWriter(store, state)
        #: client order ids being admitted by a batch in flight (a copy in another batch waits for its outcome)
        self._admitting: dict[str, asyncio.Future[None]] = {}
        #: orders forwarded to another engine that the ledger has not shown yet: (the order, when to look, monotonic)
        self._forwarded: dict[str, tuple[SubmitOrder, float]] = {}
        self._forward_task: asyncio.Task[None] | None = None
        #: the engine whose admission overtook this one's, by account (see :meth:`_owner`)
        self._overtaken_by: dict[str, str] = {}

    def reserved_in_flight(self) -> Iterator[tuple[SubmitOrder, RiskDecision]]:
        """Yield the accepted orders of batches whose ledger write is still pending (their reservations live only
        in the view; a reload of the view must keep them)."""
        for flight in self.in_flight.values():
            if not flight.decisions:  # undone (failed) or committed: nothing of it lives only in the view
                continue
            for cmd, decision in zip(flight.fresh, flight.decisions, strict=True):
                if decision.accepted:
                    yield cmd, decision

    async def handle(self, batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        now = time.time_ns()
        submits: list[SubmitOrder] = []
        cancels: list[CancelOrder] = []
        failures: dict[str, BaseException] = {}
        for delivery in batch:
            message = delivery.message
            if isinstance(message, SubmitOrder):
                submits.append(message)
            elif isinstance(message, CancelOrder):
                cancels.append(message)
            else:
                failures[delivery.entry_id] = TypeError(f"unexpected {type(message).__name__} on an order stream")
        self.state.counters.batches += 1
        replies: list[ReportItem] = []
        if submits:
            await self._submits(submits, now, replies)
        if cancels:
            await self._cancels(cancels, now, replies)
        self.publisher.put(replies)
        return failures or None

    # -- submits --------------------------------------------------------------------------------------------

    def _known(self, coid: str) -> Order | None:
        t = self.state.orders.get(coid)
        return t.order if t is not None else self.state.recent.get(coid)

    async def _submits(self, submits: list[SubmitOrder], now: int, replies: list[ReportItem]) -> None:
        state = self.state
        fresh: list[SubmitOrder] = []
        again: list[SubmitOrder] = []
        seen: set[str] = set()
        elsewhere: list[asyncio.Future[None]] = []
        for cmd in submits:
            state.counters.received += 1
            coid = cmd.client_order_id
            if coid in seen:
                again.append(cmd)
                continue
            seen.add(coid)
            known = self._known(coid)
            if known is not None:
                state.counters.duplicates += 1
                replies.append(_snapshot(known, {**cmd.stamps, "consume": now}))
                continue
            busy = self._admitting.get(coid)
            if busy is not None:  # the same id is being admitted by a batch still in flight: take its outcome
                elsewhere.append(busy)
                again.append(cmd)
                continue
            fresh.append(cmd)
        if fresh and self._contended and state.ledger_ok:
            fresh = await self._forward(fresh, now)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for cmd in fresh:
            self._admitting[cmd.client_order_id] = done
        refused: set[str] = set()
        try:
            if fresh:
                if state.ledger_ok:
                    refused = await self._admit(fresh, now, replies)
                else:
                    refused = {cmd.client_order_id for cmd in fresh}
                    self._refuse(fresh, now, replies, "the ledger is unavailable: new orders are refused (fail closed)")
        finally:
            for cmd in fresh:
                if self._admitting.get(cmd.client_order_id) is done:
                    del self._admitting[cmd.client_order_id]
            done.set_result(None)
        if elsewhere:
            await asyncio.wait(elsewhere)
        for cmd in again:  # the same id twice in flight: the later copy gets the first one's outcome
            state.counters.duplicates += 1
            known = self._known(cmd.client_order_id)
            if known is not None:
                replies.append(_snapshot(known, {**cmd.stamps, "consume": now}))
            elif cmd.client_order_id in refused:
                self._refuse([cmd], now, replies, "the ledger is unavailable: new orders are refused (fail closed)")

    # -- forwarding -----------------------------------------------------------------------------------------

    def _owner(self, account_id: str) -> str | None:
        """Return the engine to forward ``account_id``'s orders to, if any: the one that last overtook this engine
        on the account, within :data:`CONTENDED_S`, if its name sorts before this engine's. The order of names
        makes the forwarding converge on one engine per account (the first by name of those admitting for it)
        instead of two engines forwarding to each other."""
        if not self.config.forward_contended:
            return None
        owner = self._overtaken_by.get(account_id)
        if owner is None or owner >= self.state.name or not self._is_contended([account_id]):
            return None
        return owner

    def _overtaken(self, snapshots: Mapping[str, AccountSnapshot]) -> None:
        """Note which engine holds each account's last admission (from the state an overtaken write brought back)."""
        for account_id, snap in snapshots.items():
            if snap.token.count(":") >= 2:  # engines' tokens are name:epoch:n
                self._overtaken_by[account_id] = snap.token.rsplit(":", 2)[0]

    async def _forward(self, fresh: list[SubmitOrder], now: int) -> list[SubmitOrder]:
        """Forward the orders for contended accounts to the engine admitting for them; return the rest.

        Why: engines that share a busy account otherwise race for its admission row, and each lost race costs a
        round trip and a new decision (three engines on one account sustained ~350 orders/s against one engine's
        ~3,000). Forwarded, the account has one writer; the others only read, forward and ack. An order only
        ever goes to an engine whose name sorts before the one it is at, so forwarding ends (at the first engine
        by name that admits for the account) and never loops. If the engine it went to never admits it (gone,
        stuck), :meth:`_sweep_forwarded` admits it here after ``forward_timeout_ms``; the ledger's unique client
        order id keeps a late second admission to an answer.
        """
        here: list[SubmitOrder] = []
        away: dict[str, list[SubmitOrder]] = {}
        for cmd in fresh:
            owner = self._owner(cmd.account_id)
            if owner is None:
                here.append(cmd)
            else:
                away.setdefault(owner, []).append(cmd)
        for owner, cmds in away.items():
            marked = [msgspec.structs.replace(c, stamps={**c.stamps, FORWARD_STAMP: now}) for c in cmds]
            try:
                await self.bus.publish_many(engine_stream(owner), marked)
            except BusUnavailable as exc:
                log.warning("forwarding %d orders to %s failed (%s): admitting them here", len(cmds), owner, exc)
                here.extend(cmds)
                continue
            self._remember_forwarded(marked)
            self.state.counters.forwarded += len(cmds)
            # still contended while forwarding: this engine does not try the account's row again (and overtake
            # the engine admitting for it) until that engine stops answering (see _sweep_forwarded)
            self._contended_at(sorted({c.account_id for c in cmds}))
        if self._forwarded and (self._forward_task is None or self._forward_task.done()):
            self._forward_task = asyncio.get_running_loop().create_task(self._sweep_forwarded(), name="forwarded")
        return here

    def _remember_forwarded(self, cmds: list[SubmitOrder]) -> None:
        """Note ``cmds`` to be looked for in the ledger once ``forward_timeout_ms`` has passed."""
        look = time.monotonic() + self.config.forward_timeout_ms / 1000.0
        for c in cmds:
            self._forwarded[c.client_order_id] = (c, look)

    async def _sweep_forwarded(self) -> None:
        """Admit here, through this engine's own stream, forwarded orders the ledger still lacks when due."""
        interval = self.config.forward_timeout_ms / 4000.0
        while self._forwarded:
            await asyncio.sleep(interval)
            now = time.monotonic()
            due = [cmd for cmd, look in self._forwarded.values() if look <= now]
            if not due:
                continue
            try:
                stored = await self.store.get_orders([c.client_order_id for c in due])
            except LedgerUnavailable:
                continue  # looked at again on the next pass
            back = [c for c in due if c.client_order_id not in stored]
            for c in due:
                del self._forwarded[c.client_order_id]
            if not back:
                continue
            for c in back:  # the engine they went to did not admit them: this one admits for the account again
                self._overtaken_by.pop(c.account_id, None)
            log.warning(
                "%d forwarded orders are not in the ledger after %d ms: admitting them here",
                len(back),
                self.config.forward_timeout_ms,
            )
            try:
                await self.bus.publish_many(engine_stream(self.state.name), back)  # no owner noted: admitted here
            except BusUnavailable:
                self._remember_forwarded(back)  # looked at again after another timeout
                continue
            self.state.counters.forward_fallbacks += len(back)

    def _refuse(self, cmds: list[SubmitOrder], now: int, replies: list[ReportItem], message: str) -> None:
        self.state.counters.refused_ledger_down += len(cmds)
        for cmd in cmds:
            replies.append(
                OrderRejected(
                    client_order_id=cmd.client_order_id,
                    account_id=cmd.account_id,
                    symbol=cmd.symbol,
                    reason=RejectReason.LEDGER_UNAVAILABLE,
                    message=message,
                    ts_ns=now,
                    stamps={**cmd.stamps, "consume": now},
                )
            )

    def _decide(
        self, fresh: list[SubmitOrder], first: bool, rate_refused: dict[str, RiskDecision]
    ) -> list[RiskDecision]:
        decisions: list[RiskDecision] = []
        accounts = self.state.accounts
        marks = self.state.marks
        for cmd in fresh:
            earlier = rate_refused.get(cmd.client_order_id)
            if earlier is not None:
                decisions.append(earlier)
                continue
            decision = self.risk.check(cmd, accounts.get(cmd.account_id), marks, count_rate=first)
            if first and decision.reason is RejectReason.RATE_LIMIT:
                rate_refused[cmd.client_order_id] = decision
            decisions.append(decision)
        return decisions

    def _undo(self, fresh: list[SubmitOrder], decisions: list[RiskDecision], only: set[str] | None = None) -> None:
        accounts = self.state.accounts
        for cmd, decision in zip(fresh, decisions, strict=True):
            if decision.accepted and (only is None or cmd.client_order_id in only):
                account = accounts.get(cmd.account_id)
                if account is not None:
                    account.release(cmd.symbol, cmd.side, cmd.quantity, decision.reserve_price)

    async def _admit(self, fresh: list[SubmitOrder], now: int, replies: list[ReportItem]) -> set[str]:
        """Risk-check and write ``fresh``; send what was accepted to the broker. Return the refused ids.

        Several batches may be in flight at once (the consumer's ``max_in_flight``): the next one is read,
        decoded and risk-checked while the ledger commits the one before, and its broker call overlaps the next
        commit. The :class:`LedgerWriter` sends what is queued as one statement at a time, in arrival order,
        naming the admission it follows per account, so batches commit in order or not at all.

        When one fails (another engine admitted for the account), the account is *contended*: this batch, and
        for :data:`CONTENDED_S` every batch for it, is admitted in turns on fresh state instead
        (:meth:`_admit_locked`), so engines sharing an account take turns instead of retrying against each other.
        """
        state = self.state
        involved = sorted({cmd.account_id for cmd in fresh if cmd.account_id in state.accounts})
        rate_refused: dict[str, RiskDecision] = {}
        number = self._next_batch
        self._next_batch += 1
        flight = _InFlight(number, fresh, asyncio.get_running_loop().create_future())
        self.in_flight[number] = flight
        try:
            for attempt in range(_MAX_ATTEMPTS):
                if attempt > 0 or self._takes_turns(involved):
                    refused = await self._admit_locked(flight, involved, attempt == 0, rate_refused, now, replies)
                    if refused is not None:
                        return refused
                    state.counters.admission_retries += 1
                    # engines racing for one account back off by a random, growing pause, so that one of them wins
                    await asyncio.sleep(self._rng.uniform(0, 0.0005 * 2 ** min(attempt, 6)))
                    continue
                decisions = self._decide(fresh, attempt == 0, rate_refused)
                flight.decisions = decisions
                risk_ns = time.time_ns()
                records = [self._record(cmd, d, now) for cmd, d in zip(fresh, decisions, strict=True)]
                try:
                    ok, inserted = await self.writer.write(records, involved)
                except LedgerUnavailable as exc:
                    return self._ledger_failed(flight, exc, now, replies)
                if ok:
                    flight.decisions = []  # committed: the ledger has these reservations now
                    await self._admitted(fresh, decisions, records, inserted, now, risk_ns, replies)
                    return set()
                state.counters.admission_retries += 1
                self._undo(fresh, decisions)
                flight.decisions = []
                self._contended_at(involved)
            raise AdmissionConflict(f"admission of {len(fresh)} orders kept conflicting with other engines")
        finally:
            del self.in_flight[number]
            flight.queued.set()
            flight.done.set_result(None)

    def contended(self) -> bool:
        """Whether this engine admits in turns for some account (see :meth:`_takes_turns`)."""
        if not self._contended:
            return False
        now = time.monotonic()
        for account, at in list(self._contended.items()):
            if now - at >= CONTENDED_S:
                del self._contended[account]
            elif self._takes_turns([account]):
                return True
        return False

    def _is_contended(self, accounts: list[str]) -> bool:
        if not self._contended:
            return False
        now = time.monotonic()
        return any(now - self._contended.get(a, -CONTENDED_S) < CONTENDED_S for a in accounts)

    def _takes_turns(self, accounts: list[str]) -> bool:
        """Whether some of ``accounts`` is admitted in turns here: another engine overtook this one on it within
        :data:`CONTENDED_S`, and which one is not known (or forwarding is off). Once it is known, either this
        engine forwards the account's orders to it or it forwards them here (see :meth:`_owner`): the account has
        one writer, and once the turn that learned so has brought the view up to date, it admits on the fast
        path."""
        known = self._overtaken_by if self.config.forward_contended else {}
        return any(a not in known and self._is_contended([a]) for a in accounts)

    def _contended_at(self, accounts: list[str]) -> None:
        now = time.monotonic()
        for a in accounts:
            self._contended[a] = now

    async def _admit_locked(
        self,
        flight: _InFlight,
        involved: list[str],
        first: bool,
        rate_refused: dict[str, RiskDecision],
        now: int,
        replies: list[ReportItem],
    ) -> set[str] | None:
        """Admit ``flight`` in a turn for its contended accounts, then send. Return the refused ids, or None if it
        must be tried again (overtaken after all).

        Batches queue here in arrival order (each waits until those before it are done or queued), and one task
        admits everything queued per turn (:meth:`_run_locked`, :meth:`_contended_turn`), so an engine writes
        once per turn for a shared account, not once per batch.
        """
        earlier = [f.queued.wait() for n, f in self.in_flight.items() if n < flight.number]
        if earlier:
            await asyncio.gather(*earlier)
        loop = asyncio.get_running_loop()
        job = _Locked(flight, involved, first, rate_refused, now, loop.create_future())
        self._locked_queue.append(job)
        flight.queued.set()
        if self._locked_task is None or self._locked_task.done():
            self._locked_task = loop.create_task(self._run_locked(), name="ledger-locked-admissions")
        self._locked_wake.set()
        try:
            outcome = await job.future
        except LedgerUnavailable as exc:
            return self._ledger_failed(flight, exc, now, replies)
        except BaseException:
            if flight.decisions:  # decided, never written: the reservations leave the view again
                self._undo(flight.fresh, flight.decisions)
                flight.decisions = []
            raise
        if not outcome.ok:
            self._undo(flight.fresh, outcome.decisions)
            flight.decisions = []
            return None
        flight.decisions = []  # committed
        await self._admitted(
            flight.fresh, outcome.decisions, outcome.records, outcome.inserted, now, outcome.risk_ns, replies
        )
        return set()

    async def _run_locked(self) -> None:
        while True:
            if not self._locked_queue:
                self._locked_wake.clear()
                await self._locked_wake.wait()
                continue
            jobs, self._locked_queue = self._locked_queue, []
            accounts = sorted({a for job in jobs for a in job.accounts})
            try:
                result, decided = await self._contended_turn(jobs, accounts)
            except Exception as exc:  # handed to every batch of this turn, which handles it
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, (decisions, records, risk_ns) in zip(jobs, decided, strict=True):
                if not job.future.done():
                    job.future.set_result(_LockedOutcome(result.ok, decisions, records, result.inserted, risk_ns))

    async def _contended_turn(self, jobs: list[_Locked], accounts: list[str]) -> tuple[AdmitResult, list[_Decided]]:
        """Admit the batches of one turn for contended ``accounts``, deciding on fresh state.

        Optimistic first: decide on the view, write with the sequence check; a write that is overtaken brings
        back the accounts' state since (in the same round trip), the view is rebuilt from it and the turn decides
        again at once. No lock is held across round trips, so an engine that is descheduled (two cores, six
        processes) holds up nobody. After :data:`FRESH_ATTEMPTS` overtaken writes the turn takes the ledger's
        lock on the accounts (five round trips, but it cannot be overtaken), so no engine starves.
        """
        self.state.counters.contended_turns += 1
        admit = functools.partial(self.store.admit, fresh=True)
        async with self.fresh_views() as refresh:  # the booker waits: a booking is in a snapshot or the view
            for _ in range(FRESH_ATTEMPTS):
                result, decided = await self._write_turn(jobs, accounts, self.state.accounts, admit)
                if result.ok:
                    return result, decided
                self.state.counters.admission_retries += 1
                for job in jobs:  # not written: their reservations leave the view with the rebuild
                    job.flight.decisions = []
                refresh(result.snapshots)
                self._overtaken(result.snapshots)
        self.state.counters.locked_admissions += 1
        async with self.locked(accounts) as tx:
            return await self._write_turn(jobs, accounts, tx.snapshots, tx.admit)

    async def _write_turn(
        self,
        jobs: list[_Locked],
        accounts: list[str],
        known: Mapping[str, AccountRisk | AccountSnapshot],
        admit: Callable[..., Awaitable[AdmitResult]],
    ) -> tuple[AdmitResult, list[_Decided]]:
        """Decide the turn's batches and write them following the accounts' last admissions as ``known``; once
        written, the view follows the new ones."""
        decided = self._decide_turn(jobs)
        expected = {a: (known[a].seq, known[a].token) for a in accounts if a in known}
        tokens = {a: self.writer.token() for a in expected}
        result = await admit([r for _, rs, _ in decided for r in rs], expected, tokens)
        if result.ok:
            views = self.state.accounts
            for a, token in tokens.items():
                views[a].seq, views[a].token = expected[a][0] + 1, token
        return result, decided

    def _decide_turn(self, jobs: list[_Locked]) -> list[_Decided]:
        """Decide the batches of a turn in arrival order, each seeing the reservations of those before it."""
        decided: list[_Decided] = []
        for job in jobs:
            decisions = self._decide(job.flight.fresh, job.first, job.rate_refused)
            job.first = False  # an order counts against the rate limit once, however often it is decided
            job.flight.decisions = decisions
            records = [self._record(c, d, job.now) for c, d in zip(job.flight.fresh, decisions, strict=True)]
            decided.append((decisions, records, time.time_ns()))
        return decided

    async def close(self) -> None:
        """Stop the ledger writers (after the consumer stopped handing over batches)."""
        await self.writer.close()
        if self._forward_task is not None:
            while not self._forward_task.done():
                self._forward_task.cancel()
                await asyncio.wait({self._forward_task}, timeout=0.2)
        if self._locked_task is not None:
            while not self._locked_task.done():
                self._locked_task.cancel()
                await asyncio.wait({self._locked_task}, timeout=0.2)

    def _ledger_failed(
        self, flight: _InFlight, exc: LedgerUnavailable, now: int, replies: list[ReportItem]
    ) -> set[str]:
        fresh = flight.fresh
        if flight.decisions:
            self._undo(fresh, flight.decisions)
        flight.decisions = []
        self.state.ghosts.update(cmd.client_order_id for cmd in fresh)
        self.on_ledger_down()
        log.warning("ledger unavailable during admission (%s): refusing %d orders", exc, len(fresh))
        self._refuse(fresh, now, replies, f"the ledger is unavailable: {exc}")
        return {cmd.client_order_id for cmd in fresh}

    def _record(self, cmd: SubmitOrder, decision: RiskDecision, now: int) -> OrderRecord:
        order = Order.from_submit(cmd, now)
        if decision.reason is not None:
            order = order.apply(
                OrderRejected(
                    client_order_id=cmd.client_order_id,
                    account_id=cmd.account_id,
                    symbol=cmd.symbol,
                    reason=decision.reason,
                    message=decision.message,
                    ts_ns=now,
                )
            )
        return OrderRecord(
            order=order, reserve_price=decision.reserve_price, engine=self.state.name, venue=self.state.venue
        )

    async def _admitted(
        self,
        fresh: list[SubmitOrder],
        decisions: list[RiskDecision],
        records: list[OrderRecord],
        inserted: frozenset[str],
        now: int,
        risk_ns: int,
        replies: list[ReportItem],
    ) -> None:
        state = self.state
        ledger_ns = time.time_ns()
        to_send: list[Tracked] = []
        duplicates: list[SubmitOrder] = []
        for cmd, decision, record in zip(fresh, decisions, records, strict=True):
            coid = cmd.client_order_id
            if coid not in inserted:
                duplicates.append(cmd)
                continue
            stamps = {**cmd.stamps, "consume": now, "risk": risk_ns, "ledger": ledger_ns}
            order = record.order
            if order.status is OrderStatus.REJECTED:
                state.counters.rejected += 1
                state.recent.add(order)
                replies.append(
                    OrderRejected(
                        client_order_id=coid,
                        account_id=cmd.account_id,
                        symbol=cmd.symbol,
                        reason=order.reject_reason or RejectReason.INTERNAL_ERROR,
                        message=order.status_message,
                        ts_ns=now,
                        stamps=stamps,
                    )
                )
                continue
            state.counters.admitted += 1
            t = Tracked(order=order, reserve_price=decision.reserve_price, sent_ns=now, stamps=stamps)
            state.orders[coid] = t
            to_send.append(t)
        if duplicates:
            state.counters.duplicates += len(duplicates)
            self._undo(fresh, decisions, {cmd.client_order_id for cmd in duplicates})
            stored = await self.store.get_orders([cmd.client_order_id for cmd in duplicates])
            for cmd in duplicates:
                found = stored.get(cmd.client_order_id)
                if found is not None:
                    replies.append(_snapshot(found.order, {**cmd.stamps, "consume": now}))
        if to_send:
            await self._send(to_send)

    async def _send(self, tracked: list[Tracked]) -> None:
        orders = [t.order for t in tracked]
        try:
            async with asyncio.timeout(self.broker_timeout):  # not wait_for: no task per call
                await self.broker.submit(orders)
            self.processor.apply_ready()
        except (BrokerTimeout, TimeoutError) as exc:
            self.state.counters.broker_timeouts += 1
            message = f"broker call timed out: {exc or 'no answer'}"
            self.processor.put([Internal("unknown", t.client_order_id, message) for t in tracked])
        except BrokerError as exc:
            self.processor.put(
                [
                    Internal(
                        "lost",
                        t.client_order_id,
                        f"the broker refused the call: {exc}",
                        reason=RejectReason.BROKER_ERROR,
                    )
                    for t in tracked
                ]
            )

    # -- cancels --------------------------------------------------------------------------------------------

    async def _cancels(self, cancels: list[CancelOrder], now: int, replies: list[ReportItem]) -> None:
        state = self.state
        to_cancel: list[str] = []
        lookups: list[CancelOrder] = []
        for c in cancels:
            state.counters.cancels += 1
            t = state.orders.get(c.client_order_id)
            if t is not None:
                if t.client_order_id not in to_cancel:
                    to_cancel.append(t.client_order_id)
                t.cancel_requested_ns = now
                state.attention.add(t.client_order_id)
                continue
            recent = state.recent.get(c.client_order_id)
            if recent is not None:
                replies.append(_snapshot(recent, {**c.stamps, "consume": now}))
            else:
                lookups.append(c)
        if lookups and state.ledger_ok:
            try:
                stored = await self.store.get_orders([c.client_order_id for c in lookups])
            except LedgerUnavailable:
                stored = {}
            for c in lookups:
                record = stored.get(c.client_order_id)
                if record is None:
                    log.info("cancel for unknown order %s ignored", c.client_order_id)
                elif record.order.status.is_open and record.venue != state.venue:
                    state.counters.cancels_forwarded += 1
                    await self.bus.publish(engine_stream(record.engine), c)
                else:
                    replies.append(_snapshot(record.order, {**c.stamps, "consume": now}))
        if to_cancel:
            try:
                await asyncio.wait_for(self.broker.cancel(to_cancel), self.broker_timeout)
            except (BrokerError, TimeoutError) as exc:
                log.warning("cancel of %d orders failed (%s); the resolver retries", len(to_cancel), exc)
