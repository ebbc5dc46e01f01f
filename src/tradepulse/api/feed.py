"""The live feed: what the WebSocket route streams to its clients.

One API process runs at most ONE reader per bus stream (``signals``, ``ticks``, ``reports``), a group-less
:meth:`~tradepulse.bus.Transport.tail` like the order client's, so a thousand WebSocket clients cost three stream
reads per batch, not three thousand, and leave nothing pending on the bus. A reader starts with the first
subscription to one of its channels (from the stream's end: a live feed never replays history) and stops once
no subscriber needs it.

Each entry is turned into *frames*, JSON text encoded once and shared by every subscriber it goes to:

==========  ==========  ============================================================================
channel     stream      routed by
==========  ==========  ============================================================================
signals     signals     symbol
quotes      ticks       symbol
orders      reports     account, then symbol (every order event, and duplicate-submit answers)
fills       reports     account, then symbol (the fill of each fill event)
==========  ==========  ============================================================================

Order events name their ``account_id`` and ``symbol`` (the engine copies them from the order), so routing needs
no ledger lookup; an event that does not name its account is shown to nobody (counted in ``unrouted``).

Every subscriber has a BOUNDED queue (``queue_max`` frames). A subscriber whose queue is full when a frame
arrives has fallen behind: it is cut off at once (:class:`SlowConsumer` from :meth:`Subscriber.next`), its queue
is released, and it gets nothing more. Memory per connection is therefore at most ``queue_max`` frames (shared
with other subscribers) plus what the server's socket buffers hold, whatever a client does.

    feed = LiveFeed(bus, queue_max=1_000)
    sub = feed.attach(account_id="acct-1")
    await feed.subscribe(sub, ["signals", "orders"], ["AAPL"])
    frames = await sub.next()          # a list of JSON texts
    feed.detach(sub)
    await feed.close()
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec

from tradepulse.bus import BusUnavailable, Delivery, Transport
from tradepulse.bus.streams import REPORTS, SIGNALS, TICKS
from tradepulse.domain import (
    ExecutionReport,
    Order,
    OrderFilled,
    OrderPartiallyFilled,
    Signal,
    Tick,
)

log = logging.getLogger(__name__)

Channel = Literal["signals", "quotes", "orders", "fills"]
CHANNELS: Final[tuple[Channel, ...]] = ("signals", "quotes", "orders", "fills")
#: channels whose frames belong to one account
PRIVATE: Final[frozenset[str]] = frozenset({"orders", "fills"})
#: the subscription to every symbol of a channel
ALL: Final = "*"
_SYMBOL = re.compile(r"^[A-Za-z0-9._:/\-]{1,32}$")


class FeedError(Exception):
    """Base of the reasons a subscriber's stream ends."""


class SlowConsumer(FeedError):
    """The subscriber's queue was full when a frame arrived: it fell behind and was cut off."""


class FeedClosed(FeedError):
    """The feed is shutting down (the API process is stopping)."""


class Frame(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a subscriber receives for one event: the channel, the symbol, and the message itself.

    ``data`` is the bus message as it travels (a Signal, a Tick, an order event or Order, a Fill), with its
    ``type`` tag, Decimal money as strings and times as ``*_ns`` integers. ``account_id`` is set on the private
    channels only.
    """

    channel: str
    symbol: str
    data: Any
    account_id: str | None = None


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is ``*`` or 1-32 characters of ``A-Z a-z 0-9 . _ : / -``, else raise ValueError."""
    if symbol != ALL and not _SYMBOL.match(symbol):
        raise ValueError(f"symbol {symbol[:40]!r}: must be '*' or 1-32 characters of A-Z a-z 0-9 . _ : / -")
    return symbol


class Subscriber:
    """One consumer of the feed (one WebSocket connection), bound to one account.

    Frames queue here until :meth:`next` takes them. The queue never holds more than ``queue_max`` frames: the
    one that would not fit cuts the subscriber off instead (see the module docstring).
    """

    __slots__ = (
        "_ended",
        "_feed",
        "_queue",
        "_wake",
        "account_id",
        "closed",
        "delivered",
        "peak",
        "queue_max",
        "topics",
    )

    def __init__(self, feed: LiveFeed, account_id: str, queue_max: int) -> None:
        if queue_max < 1:
            raise ValueError(f"queue_max: must be >= 1, got {queue_max}")
        self._feed = feed
        self.account_id = account_id
        self.queue_max = queue_max
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        #: (channel, symbol) pairs subscribed to; symbol may be ``*``
        self.topics: set[tuple[str, str]] = set()
        #: why the stream ended (None while it runs)
        self.closed: FeedError | None = None
        #: the most frames ever queued at once (never above ``queue_max``)
        self.peak = 0
        self.delivered = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, frame: str) -> None:
        """Queue ``frame``, or cut the subscriber off if its queue is full."""
        if self.closed is not None:
            return
        queue = self._queue
        if len(queue) >= self.queue_max:
            self._feed._cut_off(self, SlowConsumer(f"slow consumer: more than {self.queue_max} messages queued"))
            return
        queue.append(frame)
        if len(queue) > self.peak:
            self.peak = len(queue)
        self._wake.set()

    def end(self, reason: FeedError) -> None:
        """End the stream with ``reason``: drop what is queued and wake the reader."""
        if self.closed is None:
            self.closed = reason
        self._queue.clear()
        self._wake.set()
        self._ended.set()

    async def ended(self) -> FeedError:
        """Wait until the stream has ended; return why."""
        await self._ended.wait()
        assert self.closed is not None
        return self.closed

    async def next(self, max_frames: int = 256) -> list[str]:
        """Return the frames queued (at least one, at most ``max_frames``), waiting for one if none is.

        Raise the :class:`FeedError` that ended the stream once it has ended.
        """
        while not self._queue:
            if self.closed is not None:
                raise self.closed
            self._wake.clear()
            await self._wake.wait()
        if self.closed is not None:
            raise self.closed
        queue = self._queue
        n = min(len(queue), max_frames)
        out = [queue.popleft() for _ in range(n)]
        self.delivered += n
        return out


_STREAM_OF: Final[dict[str, str]] = {"signals": SIGNALS, "quotes": TICKS, "orders": REPORTS, "fills": REPORTS}


@dataclass
class _Reader:
    stream: str
    channels: tuple[str, ...]
    task: asyncio.Task[None] | None = None
    after: str = "$"
    starting: asyncio.Future[None] | None = None
    read: int = field(default=0)


@dataclass
class FeedStats:
    """Counters of one feed (per API process)."""

    entries: int = 0
    frames: int = 0
    slow_consumers: int = 0
    #: the most frames any subscriber has had queued at once (never above its queue_max)
    peak_queued: int = 0
    #: order events that name no account (from an engine older than the field): shown to nobody
    unrouted: int = 0
    outages: int = 0


class LiveFeed:
    """Fan bus streams out to subscribers by channel, symbol and account. See the module docstring."""

    def __init__(
        self,
        bus: Transport,
        *,
        queue_max: int = 1_000,
        block_ms: int = 1_000,
        read_count: int = 1_000,
        namespace: str = "",
    ) -> None:
        """``namespace`` prefixes the stream names (tests on a shared Redis use it; production leaves it empty)."""
        self.bus = bus
        self.queue_max = queue_max
        self.block_ms = block_ms
        self.read_count = read_count
        #: entries dispatched between two turns of the event loop
        self.dispatch_chunk = 64
        self.stats = FeedStats()
        self._closed = False
        #: (channel, account or "", symbol or "*") -> subscribers
        self._index: dict[tuple[str, str, str], set[Subscriber]] = {}
        self._subscribers: set[Subscriber] = set()
        self._readers: dict[str, _Reader] = {}
        for channel in CHANNELS:
            stream = namespace + _STREAM_OF[channel]
            reader = self._readers.get(stream)
            if reader is None:
                self._readers[stream] = _Reader(stream, (channel,))
            else:
                reader.channels = (*reader.channels, channel)
        self._reader_of: dict[str, str] = {channel: namespace + _STREAM_OF[channel] for channel in CHANNELS}
        self._json = msgspec.json.Encoder()

    # -- subscribers ------------------------------------------------------------------------------------------

    def attach(self, account_id: str, *, queue_max: int | None = None) -> Subscriber:
        """Return a new subscriber for ``account_id`` (subscribed to nothing yet)."""
        if self._closed:
            raise FeedClosed("the live feed is closed")
        sub = Subscriber(self, account_id, queue_max or self.queue_max)
        self._subscribers.add(sub)
        return sub

    def _key(self, sub: Subscriber, channel: str, symbol: str) -> tuple[str, str, str]:
        return (channel, sub.account_id if channel in PRIVATE else "", symbol)

    async def subscribe(self, sub: Subscriber, channels: Iterable[str], symbols: Iterable[str]) -> None:
        """Add ``channels`` x ``symbols`` to ``sub`` (``*`` for every symbol) and return once the readers they
        need follow their streams: anything published after this returns reaches ``sub``."""
        if sub.closed is not None:
            raise sub.closed
        chans = list(dict.fromkeys(channels))
        syms = list(dict.fromkeys(symbols))
        for channel in chans:
            if channel not in _STREAM_OF:
                raise ValueError(f"channel {channel[:40]!r}: must be one of {', '.join(CHANNELS)}")
        for symbol in syms:
            validate_symbol(symbol)
        for channel in chans:
            for symbol in syms:
                sub.topics.add((channel, symbol))
                self._index.setdefault(self._key(sub, channel, symbol), set()).add(sub)
        await asyncio.gather(*(self._ensure_reader(s) for s in {self._reader_of[c] for c in chans}))

    def unsubscribe(self, sub: Subscriber, channels: Iterable[str], symbols: Iterable[str]) -> None:
        """Remove ``channels`` x ``symbols`` from ``sub`` (pairs it does not have are ignored)."""
        for channel in channels:
            for symbol in symbols:
                self._drop(sub, channel, symbol)

    def _drop(self, sub: Subscriber, channel: str, symbol: str) -> None:
        sub.topics.discard((channel, symbol))
        key = self._key(sub, channel, symbol)
        subs = self._index.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._index[key]

    def detach(self, sub: Subscriber) -> None:
        """Remove ``sub`` from the feed (its connection ended); idempotent."""
        self.stats.peak_queued = max(self.stats.peak_queued, sub.peak)
        for channel, symbol in list(sub.topics):
            self._drop(sub, channel, symbol)
        self._subscribers.discard(sub)
        if sub.closed is None:
            sub.end(FeedClosed("unsubscribed"))

    def _cut_off(self, sub: Subscriber, reason: FeedError) -> None:
        self.stats.slow_consumers += 1
        self.stats.peak_queued = max(self.stats.peak_queued, sub.peak)
        log.info("live feed: cut off a subscriber of account %s: %s", sub.account_id, reason)
        for channel, symbol in list(sub.topics):
            self._drop(sub, channel, symbol)
        self._subscribers.discard(sub)
        sub.end(reason)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def readers_running(self) -> list[str]:
        """Return the streams whose reader runs now."""
        return [r.stream for r in self._readers.values() if r.task is not None and not r.task.done()]

    # -- readers ----------------------------------------------------------------------------------------------

    def _needed(self, reader: _Reader) -> bool:
        return any(key[0] in reader.channels for key in self._index)

    async def _ensure_reader(self, stream: str) -> None:
        reader = self._readers[stream]
        if reader.task is not None and not reader.task.done():
            if reader.starting is not None:
                await asyncio.shield(reader.starting)
            return
        if self._closed:
            raise FeedClosed("the live feed is closed")
        loop = asyncio.get_running_loop()
        reader.starting = started = loop.create_future()
        reader.task = loop.create_task(self._run(reader, started), name=f"live-feed:{stream}")
        await asyncio.shield(started)

    async def _run(self, reader: _Reader, started: asyncio.Future[None]) -> None:
        try:  # start at the stream's end: a live feed never replays history
            _, reader.after = await self.bus.tail(reader.stream, "$", count=1, block_ms=0)
        except BaseException as exc:  # the subscribe call waiting for this start fails; the next one retries
            reader.starting = None
            reader.task = None
            if isinstance(exc, asyncio.CancelledError):
                started.cancel()
                raise
            started.set_exception(exc)
            started.exception()  # marked as seen: the waiting subscribe call raises it, or nobody waits any more
            return
        reader.starting = None
        started.set_result(None)
        delay = 0.05
        while True:
            if not self._needed(reader):
                reader.task = None  # no await between the check and this: a new subscribe starts a new reader
                return
            try:
                deliveries, reader.after = await self.bus.tail(
                    reader.stream, reader.after, count=self.read_count, block_ms=self.block_ms
                )
            except BusUnavailable as exc:
                self.stats.outages += 1
                log.warning("live feed: %s unavailable (%s); retrying", reader.stream, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            if deliveries:
                reader.read += len(deliveries)
                self.stats.entries += len(deliveries)
                # a burst is handed out in slices with a turn of the event loop between them, so that the
                # senders drain their queues as it arrives: a subscriber that keeps up survives a burst larger
                # than its queue; one that does not is cut off
                chunk = self.dispatch_chunk
                for start in range(0, len(deliveries), chunk):
                    if start:
                        await asyncio.sleep(0)
                    self.dispatch(deliveries[start : start + chunk])

    # -- routing ----------------------------------------------------------------------------------------------

    def _targets(self, channel: str, account: str, symbol: str) -> list[Subscriber]:
        index = self._index
        exact = index.get((channel, account, symbol))
        wild = index.get((channel, account, ALL))
        if exact is None:
            return list(wild) if wild else []
        if not wild:
            return list(exact)
        return list(exact | wild)

    def _send(self, channel: str, account: str, symbol: str, data: Any) -> None:
        targets = self._targets(channel, account, symbol)
        if not targets:
            return
        frame = Frame(channel, symbol, data, account or None)
        text = self._json.encode(frame).decode()
        self.stats.frames += 1
        for sub in targets:
            sub.offer(text)

    def dispatch(self, deliveries: Sequence[Delivery]) -> None:
        """Route the messages of ``deliveries`` to their subscribers (what each reader does with a batch)."""
        if not self._index:
            return
        send = self._send
        for delivery in deliveries:
            message = delivery.message
            if isinstance(message, Tick):
                send("quotes", "", message.symbol, message)
            elif isinstance(message, Signal):
                send("signals", "", message.symbol, message)
            elif isinstance(message, ExecutionReport):
                for item in message.items:
                    if isinstance(item, Order):
                        send("orders", item.account_id, item.symbol, item)
                        continue
                    account = item.account_id
                    if not account:
                        self.stats.unrouted += 1
                        continue
                    send("orders", account, item.symbol, item)
                    if isinstance(item, OrderFilled | OrderPartiallyFilled):
                        send("fills", account, item.symbol, item.fill)

    # -- shutdown ---------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the readers and end every subscriber's stream with :class:`FeedClosed`."""
        self._closed = True
        for sub in list(self._subscribers):
            sub.end(FeedClosed("the server is shutting down"))
            self.detach(sub)
        for reader in self._readers.values():
            task = reader.task
            if task is None:
                continue
            while not task.done():  # re-cancel: Python 3.11 can swallow one inside redis-py's wait_for
                task.cancel()
                await asyncio.wait({task}, timeout=0.2)
            reader.task = None


__all__ = [
    "ALL",
    "CHANNELS",
    "PRIVATE",
    "FeedClosed",
    "FeedError",
    "FeedStats",
    "Frame",
    "LiveFeed",
    "SlowConsumer",
    "Subscriber",
    "validate_symbol",
]
