"""In-process transport for the embedded mode: Redis Streams semantics without a server.

It keeps what the Redis transport keeps (entry ids, per-group delivery position, pending lists with delivery
counts and idle times, claims, dead letters, trimming that spares unacknowledged entries), so the same contract
tests run against both and components behave the same in embedded and service mode. Messages are held as
objects, not encoded: they are immutable, so sharing them is safe and costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tradepulse.bus.codec import DEFAULT_CODEC, Codec, DecodeError
from tradepulse.bus.protocol import (
    BusUnavailable,
    DeadLetter,
    Delivery,
    GroupMissing,
    TrimResult,
    dead_letter_stream,
)
from tradepulse.bus.stats import BusStats
from tradepulse.domain import Message

TRIMMED = "entry was trimmed from the stream before it was acknowledged"


@dataclass(slots=True)
class _Entry:
    seq: int
    message: Message | None
    payload: bytes | None


@dataclass(slots=True)
class _Pending:
    consumer: str
    delivered_ms: float
    count: int


@dataclass(slots=True)
class _Group:
    last_seq: int
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass(slots=True)
class _Stream:
    entries: dict[int, _Entry] = field(default_factory=dict)
    next_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def _entry_id(seq: int) -> str:
    return f"{seq}-0"


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _now_ms() -> float:
    return time.monotonic() * 1000.0


class MemoryTransport:
    """Streams, groups and pending lists in this process's memory."""

    name = "memory"

    def __init__(self, codec: Codec = DEFAULT_CODEC, stats: BusStats | None = None) -> None:
        self._codec = codec
        self._streams: dict[str, _Stream] = {}
        self.stats = stats or BusStats()
        self._closed = False

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream()
        return stream

    def _check_open(self) -> None:
        if self._closed:
            raise BusUnavailable("the in-process bus is closed")

    def _append(self, name: str, message: Message | None, payload: bytes | None) -> str:
        stream = self._stream(name)
        seq = stream.next_seq
        stream.next_seq += 1
        stream.entries[seq] = _Entry(seq, message, payload)
        if stream.waiters:
            for waiter in stream.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            stream.waiters.clear()
        return _entry_id(seq)

    async def publish(self, stream: str, message: Message) -> str:
        self._check_open()
        entry_id = self._append(stream, message, None)
        self.stats.add(stream, "published")
        return entry_id

    async def publish_many(self, stream: str, messages: Sequence[Message]) -> list[str]:
        return await self.publish_many_nowait(stream, messages)

    def publish_many_nowait(self, stream: str, messages: Sequence[Message]) -> asyncio.Future[list[str]]:
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        try:
            self._check_open()
        except BusUnavailable as exc:
            future.set_exception(exc)
        else:
            ids = [self._append(stream, message, None) for message in messages]
            self.stats.add(stream, "published", len(ids))
            future.set_result(ids)
        return future

    async def publish_raw(self, stream: str, payload: bytes) -> str:
        self._check_open()
        entry_id = self._append(stream, None, payload)
        self.stats.add(stream, "published")
        return entry_id

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        self._check_open()
        s = self._stream(stream)
        if group not in s.groups:
            last = s.next_seq - 1 if start == "$" else _seq(start) if start != "0" else 0
            s.groups[group] = _Group(last_seq=last)

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        s = self._streams.get(stream)
        g = s.groups.get(group) if s is not None else None
        if s is None or g is None:
            raise GroupMissing(f"NOGROUP: no group {group!r} on stream {stream!r}")
        return s, g

    def _delivery(self, stream: str, seq: int, entry: _Entry | None, count: int) -> Delivery:
        if entry is None:
            return Delivery(stream, _entry_id(seq), None, count, None, TRIMMED)
        if entry.message is not None:
            return Delivery(stream, _entry_id(seq), entry.message, count)
        assert entry.payload is not None
        try:
            message = self._codec.decode(entry.payload)
        except DecodeError as exc:
            self.stats.add(stream, "decode_errors")
            return Delivery(stream, _entry_id(seq), None, count, entry.payload, f"undecodable message: {exc}")
        return Delivery(stream, _entry_id(seq), message, count, entry.payload)

    def _take_new(self, group: str, consumer: str, streams: Sequence[str], count: int) -> list[Delivery]:
        out: list[Delivery] = []
        now = _now_ms()
        for name in streams:
            s, g = self._group(name, group)
            if g.last_seq >= s.next_seq - 1:
                continue
            taken = 0
            for seq in range(g.last_seq + 1, s.next_seq):
                entry = s.entries.get(seq)
                g.last_seq = seq
                if entry is None:  # trimmed before this group read it (only when the group was created late)
                    continue
                g.pending[seq] = _Pending(consumer, now, 1)
                out.append(self._delivery(name, seq, entry, 1))
                taken += 1
                if taken >= count:
                    break
            if taken:
                self.stats.add(name, "delivered", taken)
        return out

    async def read(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        *,
        count: int,
        block_ms: int,
        ack: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Delivery]:
        self._check_open()
        if ack:
            await self.ack_many(group, ack)
        out = self._take_new(group, consumer, streams, count)
        if out or block_ms <= 0:
            return out
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        for name in streams:
            self._stream(name).waiters.append(waiter)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives just as
            # the waiter completes, and a consumer or client being stopped would then never stop
            async with asyncio.timeout(block_ms / 1000.0):
                await waiter
        except TimeoutError:
            return []
        finally:
            for name in streams:
                waiters = self._stream(name).waiters
                if waiter in waiters:
                    waiters.remove(waiter)
        self._check_open()
        return self._take_new(group, consumer, streams, count)

    async def tail(self, stream: str, after: str, *, count: int, block_ms: int) -> tuple[list[Delivery], str]:
        self._check_open()
        s = self._stream(stream)
        last = s.next_seq - 1 if after == "$" else _seq(after)

        def take() -> list[Delivery]:
            out = []
            for seq in range(last + 1, s.next_seq):
                entry = s.entries.get(seq)
                if entry is not None:
                    out.append(self._delivery(stream, seq, entry, 1))
                    if len(out) >= count:
                        break
            return out

        out = take()
        if not out and block_ms > 0:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            s.waiters.append(waiter)
            try:
                async with asyncio.timeout(block_ms / 1000.0):  # not wait_for: see read()
                    await waiter
            except TimeoutError:
                pass
            finally:
                if waiter in s.waiters:
                    s.waiters.remove(waiter)
            self._check_open()
            out = take()
        if out:
            self.stats.add(stream, "delivered", len(out))
            return out, out[-1].entry_id
        return out, _entry_id(last)

    async def read_pending(self, group: str, consumer: str, streams: Sequence[str], *, count: int) -> list[Delivery]:
        self._check_open()
        out: list[Delivery] = []
        now = _now_ms()
        for name in streams:
            s, g = self._group(name, group)
            mine = [seq for seq, p in g.pending.items() if p.consumer == consumer][:count]
            for seq in mine:
                p = g.pending[seq]
                p.count += 1
                p.delivered_ms = now
                out.append(self._delivery(name, seq, s.entries.get(seq), p.count))
            self.stats.add(name, "redelivered", len(mine))
        return out

    async def claim_stale(
        self, group: str, consumer: str, stream: str, *, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        self._check_open()
        s, g = self._group(stream, group)
        now = _now_ms()
        out: list[Delivery] = []
        for seq, p in g.pending.items():
            if now - p.delivered_ms >= min_idle_ms:
                p.consumer = consumer
                p.count += 1
                p.delivered_ms = now
                out.append(self._delivery(stream, seq, s.entries.get(seq), p.count))
                if len(out) >= count:
                    break
        self.stats.add(stream, "redelivered", len(out))
        return out

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        self._check_open()
        _, g = self._group(stream, group)
        acked = 0
        for entry_id in entry_ids:
            if g.pending.pop(_seq(entry_id), None) is not None:
                acked += 1
        self.stats.add(stream, "acked", acked)

    async def ack_many(self, group: str, entries: Mapping[str, Sequence[str]]) -> None:
        for stream, entry_ids in entries.items():
            await self.ack(stream, group, entry_ids)

    async def dead_letter(self, group: str, consumer: str, delivery: Delivery, error: str) -> None:
        self._check_open()
        s, g = self._group(delivery.stream, group)
        payload = delivery.payload
        if payload is None and delivery.message is not None:
            payload = self._codec.encode(delivery.message)
        dead = self._stream(dead_letter_stream(delivery.stream))
        seq = dead.next_seq
        dead.next_seq += 1
        s.dead.append(
            DeadLetter(
                stream=delivery.stream,
                entry_id=delivery.entry_id,
                group=group,
                consumer=consumer,
                error=error,
                deliveries=delivery.deliveries,
                payload=payload or b"",
                ts_ns=time.time_ns(),
                dead_letter_id=_entry_id(seq),
            )
        )
        dead.entries[seq] = _Entry(seq, None, payload)
        g.pending.pop(_seq(delivery.entry_id), None)
        self.stats.add(delivery.stream, "dead_lettered")

    async def dead_letters(self, stream: str, count: int = 100) -> list[DeadLetter]:
        s = self._streams.get(stream)
        return [] if s is None else s.dead[:count]

    async def pending_count(self, stream: str, group: str) -> int:
        _, g = self._group(stream, group)
        return len(g.pending)

    async def length(self, stream: str) -> int:
        s = self._streams.get(stream)
        return 0 if s is None else len(s.entries)

    async def trim(self, stream: str, maxlen: int) -> TrimResult:
        s = self._streams.get(stream)
        if s is None or len(s.entries) <= maxlen:
            return TrimResult(0, 0)
        safe = s.next_seq  # every entry below `safe` has been delivered to and acknowledged by every group
        for g in s.groups.values():
            safe = min(safe, g.last_seq + 1, *g.pending) if g.pending else min(safe, g.last_seq + 1)
        excess = len(s.entries) - maxlen
        removed = 0
        for seq in list(s.entries):
            if removed >= excess or seq >= safe:
                break
            del s.entries[seq]
            removed += 1
        return TrimResult(removed, excess - removed)

    async def ping(self) -> None:
        self._check_open()

    async def close(self) -> None:
        self._closed = True
        for s in self._streams.values():
            for waiter in s.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            s.waiters.clear()
