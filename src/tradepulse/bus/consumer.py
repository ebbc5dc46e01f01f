"""A consumer-group member that reads, hands batches to a handler, acks, retries and dead-letters.

Both transports share this loop, so recovery behaves the same in embedded and service mode:

Batching is adaptive: each read takes whatever is waiting, up to ``read_count``, without waiting for a window to
fill; ``batch_window_ms`` optionally waits that long after a short read to gather more (the seed's 10 ms window).

1. create the group if missing;
2. redeliver this member's own pending entries first (what it had read but not acked before a restart);
3. then read new entries, blocking up to ``block_ms``; every ``claim_interval_ms`` claim entries that have been
   pending for longer than ``claim_idle_ms`` (a dead member's, or our own failed ones) and handle them too.

A handler gets a batch and returns the entries that failed (entry id -> exception); raising fails the whole
batch. Successes are acked in one call (handling one batch at a time, together with the next read: one round
trip for both); a failure is left pending and retried after ``claim_idle_ms`` until it
has been delivered ``max_deliveries`` times, then dead-lettered with its error. Entries that cannot be decoded
are dead-lettered at once. Broker outages and missing groups back off exponentially (never a hot loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from tradepulse.bus.protocol import BusUnavailable, Delivery, GroupMissing, Transport
from tradepulse.config import BusConfig
from tradepulse.domain import Message

log = logging.getLogger(__name__)

#: A batch handler: return the failures by entry id (or None when every entry succeeded).
Handler = Callable[[Sequence[Delivery]], Awaitable[Mapping[str, BaseException] | None]]


def each(fn: Callable[[Message], Awaitable[None]]) -> Handler:
    """Adapt a one-message handler to a batch handler; a message's exception fails only that message."""

    async def handle(batch: Sequence[Delivery]) -> Mapping[str, BaseException] | None:
        failures: dict[str, BaseException] = {}
        for delivery in batch:
            assert delivery.message is not None
            try:
                await fn(delivery.message)
            except Exception as exc:
                failures[delivery.entry_id] = exc
        return failures or None

    return handle


@dataclass(slots=True)
class ConsumerCounters:
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    outages: int = 0
    group_recreated: int = 0


class Consumer:
    """One member of ``group`` reading ``streams`` through ``transport``.

    Run it with :meth:`run` (or :meth:`start` for a background task); stop it with :meth:`stop` / :meth:`close`.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        group: str,
        name: str,
        streams: Sequence[str],
        handler: Handler,
        config: BusConfig | None = None,
        group_start: str = "0",
        batch_window_ms: float = 0.0,
        max_in_flight: int | Callable[[], int] = 1,
    ) -> None:
        if not streams:
            raise ValueError("a consumer needs at least one stream")
        self.transport = transport
        self.group = group
        self.name = name
        self.streams = tuple(streams)
        self.handler = handler
        self.config = config or BusConfig()
        self.group_start = group_start
        #: after a read shorter than ``read_count``, wait this long and take what arrived meanwhile (0 = never)
        self.batch_window_s = batch_window_ms / 1000.0
        #: batches handled concurrently (each acked when its own handler finishes); 1 = one after the other
        #: may be a callable, asked at every batch (the engine admits more at once while an account is contended)
        self._max_in_flight = max_in_flight
        self._in_flight: set[asyncio.Task[None]] = set()
        #: acks of the last batch handled inline, sent with the next read (stream -> entry ids)
        self._deferred: dict[str, list[str]] = {}
        self.counters = ConsumerCounters()
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._blocked_in_read = False

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run the consumer in a background task and return it."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"consumer:{self.group}:{self.name}")
        return self._task

    async def wait_started(self) -> None:
        """Wait until the group exists and this member's own pending entries have been handled."""
        await self._started.wait()

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and return.

        A blocking read that is waiting for entries is interrupted at once; an entry the broker handed to that
        read stays pending for this member and is redelivered on restart or claimed by another member.
        """
        self._stopping.set()
        if self._blocked_in_read and self._task is not None and not self._task.done():
            self._task.cancel()

    async def kill(self) -> None:
        """Cancel the loop and every batch in flight at once, acking nothing (what a crash does; for tests)."""
        self._deferred.clear()
        for task in list(self._in_flight):
            task.cancel()
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.2)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def close(self, timeout: float | None = None) -> None:
        """Stop and wait for the loop; cancel it if it does not finish within ``timeout`` seconds."""
        self.stop()
        if self._task is None:
            return
        limit = timeout if timeout is not None else self.config.block_ms / 1000.0 + 5.0
        try:
            await asyncio.wait_for(asyncio.shield(self._task), limit)
        except TimeoutError:
            # cancel until it stops: on Python 3.11 a cancellation can be swallowed by an inner wait_for
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.2)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @property
    def max_in_flight(self) -> int:
        """Batches handled concurrently now."""
        limit = self._max_in_flight
        return max(1, limit() if callable(limit) else limit)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop`; batches still being handled are finished (and acked) before it returns."""
        try:
            await self._run()
        finally:
            await asyncio.shield(self._drain_in_flight())
            await asyncio.shield(self._flush_deferred())

    async def _run(self) -> None:
        backoff = _Backoff()
        recovered = False
        last_claim = time.monotonic()
        while not self._stopping.is_set():
            try:
                if not recovered:
                    for stream in self.streams:
                        await self.transport.ensure_group(stream, self.group, self.group_start)
                    await self._recover()
                    recovered = True
                    self._started.set()
                now = time.monotonic()
                if now - last_claim >= self.config.claim_interval_ms / 1000.0:
                    last_claim = now
                    await self._ack_deferred()  # what was handled first, or the claim could hand it out again
                    await self._claim()
                self._blocked_in_read = True
                acks, self._deferred = self._deferred, {}
                try:
                    batch = await self.transport.read(
                        self.group,
                        self.name,
                        self.streams,
                        count=self.config.read_count,
                        block_ms=self.config.block_ms,
                        ack=acks,
                    )
                except asyncio.CancelledError:
                    self._defer(acks)  # perhaps not acked: again with the next read (acking twice is harmless)
                    task = asyncio.current_task()
                    if not self._stopping.is_set() or task is None:
                        raise
                    task.uncancel()  # our own stop() interrupted the read
                    return
                except BaseException:
                    self._defer(acks)
                    raise
                finally:
                    self._blocked_in_read = False
                if batch and self.batch_window_s > 0 and len(batch) < self.config.read_count:
                    await asyncio.sleep(self.batch_window_s)
                    batch += await self.transport.read(
                        self.group, self.name, self.streams, count=self.config.read_count - len(batch), block_ms=0
                    )
                if batch:
                    await self._dispatch(batch)
                backoff.reset()
            except GroupMissing as exc:
                self.counters.group_recreated += 1
                log.warning("consumer %s/%s: %s; recreating the group", self.group, self.name, exc)
                recovered = False
                await self._sleep(backoff.next())
            except BusUnavailable as exc:
                self.counters.outages += 1
                log.warning("consumer %s/%s: bus unavailable (%s); retrying", self.group, self.name, exc)
                await self._sleep(backoff.next())

    async def _dispatch(self, batch: list[Delivery]) -> None:
        """Handle ``batch`` now (acked with the next read), or (with ``max_in_flight`` > 1) in a task while the
        next read goes ahead."""
        limit = self.max_in_flight
        if limit == 1 and not self._in_flight:
            await self._handle(batch, defer_ack=True)
            return
        while len(self._in_flight) >= limit:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.get_running_loop().create_task(self._handle(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _drain_in_flight(self) -> None:
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _recover(self) -> None:
        while not self._stopping.is_set():
            batch = await self.transport.read_pending(self.group, self.name, self.streams, count=self.config.read_count)
            if not batch:
                return
            await self._handle(batch)

    async def _claim(self) -> None:
        # every stream at once (concurrent round trips, not one after the other): the read loop waits for this
        batches = await asyncio.gather(
            *(
                self.transport.claim_stale(
                    self.group,
                    self.name,
                    stream,
                    min_idle_ms=self.config.claim_idle_ms,
                    count=self.config.read_count,
                )
                for stream in self.streams
            )
        )
        for batch in batches:
            if batch:
                await self._handle(batch)

    def _defer(self, acks: Mapping[str, Sequence[str]]) -> None:
        for stream, ids in acks.items():
            self._deferred.setdefault(stream, []).extend(ids)

    async def _ack_deferred(self) -> None:
        """Ack now what waits for the next read; if that fails, it waits again."""
        acks, self._deferred = self._deferred, {}
        if acks:
            try:
                await self.transport.ack_many(self.group, acks)
            except BaseException:
                self._defer(acks)
                raise

    async def _flush_deferred(self) -> None:
        """Ack what waits for a next read that will not come (stopping); if the bus is down, the entries stay
        pending and are delivered again (to this member when it restarts, or claimed by another)."""
        try:
            await self._ack_deferred()
        except (BusUnavailable, GroupMissing) as exc:
            log.warning(
                "consumer %s/%s: final ack failed (%s); entries will be redelivered", self.group, self.name, exc
            )

    async def _handle(self, batch: Sequence[Delivery], *, defer_ack: bool = False) -> None:
        good: list[Delivery] = []
        for delivery in batch:
            if delivery.message is None:
                await self._dead_letter(delivery, delivery.error or "no message")
            else:
                good.append(delivery)
        if not good:
            return
        self.counters.batches += 1
        try:
            failures = await self.handler(good) or {}
        except Exception as exc:
            log.exception("consumer %s/%s: handler failed on a batch of %d", self.group, self.name, len(good))
            failures = {d.entry_id: exc for d in good}
        acks: dict[str, list[str]] = {}
        for delivery in good:
            error = failures.get(delivery.entry_id)
            if error is None:
                acks.setdefault(delivery.stream, []).append(delivery.entry_id)
                continue
            self.counters.failed += 1
            if delivery.deliveries >= self.config.max_deliveries:
                await self._dead_letter(delivery, f"{type(error).__name__}: {error}")
        if acks:
            if defer_ack:
                self._defer(acks)
            else:  # one round trip for every stream of the batch
                await self.transport.ack_many(self.group, acks)
            self.counters.handled += sum(len(ids) for ids in acks.values())

    async def _dead_letter(self, delivery: Delivery, error: str) -> None:
        log.error(
            "consumer %s/%s: dead-lettering %s %s after %d deliveries: %s",
            self.group,
            self.name,
            delivery.stream,
            delivery.entry_id,
            delivery.deliveries,
            error,
        )
        await self.transport.dead_letter(self.group, self.name, delivery, error)
        self.counters.dead_lettered += 1


class _Backoff:
    """Exponential back-off with jitter: 50 ms doubling to 2 s."""

    __slots__ = ("_attempt",)

    def __init__(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        delay: float = min(2.0, 0.05 * (2**self._attempt)) * (0.5 + random.random() / 2)  # noqa: S311
        self._attempt = min(self._attempt + 1, 10)
        return delay

    def reset(self) -> None:
        self._attempt = 0
