"""Redis Streams transport (redis-py asyncio with hiredis).

Choices, each measured or forced by Redis 7.0's behaviour:

* **The hot commands skip redis-py.** XADD pipelines, XACK, XREADGROUP and XREAD (every order crosses Redis
  four or five times) go over :mod:`.resp`'s lean connections: one shared, pipelined connection for the
  non-blocking calls and one per concurrent blocking read; that halves their client CPU. Everything else
  (groups, pending lists, claims, dead letters, the trim script) uses redis-py's bounded
  ``BlockingConnectionPool``, on the same server, database and credentials.
* **Publishing is pipelined automatically.** When nothing is being written, ``publish`` writes its XADDs at
  once (no task, no loop turn) and resolves when Redis has stored them; messages published while a write is in
  flight queue, and a single flusher sends whatever queued as one pipeline. A failed write goes back to the head
  of the queue, and the flusher retries (for ``publish_retry_s``), so every stream's order holds.
* **Trimming never drops unacknowledged entries.** Redis 7.0's ``XADD MAXLEN`` removes entries that a group
  still has pending (they come back as nil payloads). Instead, a server-side script run every
  ``trim_interval_ms`` trims each stream published to back to ``maxlen`` entries (so between runs a stream
  holds about ``maxlen`` plus what arrived since), but never past the oldest entry that some group has pending
  or not yet read; it reports how many entries over ``maxlen`` it had to keep (counted, never silent).
* **Blocking reads stay below the socket timeout** (checked in :class:`~tradepulse.config.Settings`), so a
  quiet stream never looks like a dead connection.
* **NOGROUP is an exception, not a loop.** After a Redis restart without persistence, reads raise
  :class:`GroupMissing`; the consumer recreates its group with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradepulse.bus.codec import DEFAULT_CODEC, Codec, DecodeError
from tradepulse.bus.protocol import (
    BusUnavailable,
    DeadLetter,
    Delivery,
    GroupMissing,
    TrimResult,
    dead_letter_stream,
)
from tradepulse.bus.resp import FastRedis
from tradepulse.bus.stats import BusStats
from tradepulse.config import BusConfig, RedisConfig
from tradepulse.domain import Message

log = logging.getLogger(__name__)

FIELD = b"d"
TRIMMED = "entry was trimmed from the stream before it was acknowledged"
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
T = TypeVar("T")

# Trim KEYS[1] to about ARGV[1] entries, never past the first entry some group still needs (pending, or not
# yet delivered). Looks at most ARGV[2] entries past maxlen per call. Returns {removed, kept_over_maxlen}.
_TRIM_SCRIPT = """
local stream = KEYS[1]
local maxlen = tonumber(ARGV[1])
local len = redis.call('XLEN', stream)
if len <= maxlen then return {0, 0} end
local excess = math.min(len - maxlen, tonumber(ARGV[2]))
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local range = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess + 1)
local k_ms, k_seq = parse(range[#range][1])
local groups = redis.call('XINFO', 'GROUPS', stream)
for _, g in ipairs(groups) do
  local name, pending, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1]
    elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  local b_ms, b_seq
  if pending > 0 then
    b_ms, b_seq = parse(redis.call('XPENDING', stream, name)[2])
  else
    b_ms, b_seq = parse(last)
    b_seq = b_seq + 1
  end
  if b_ms < k_ms or (b_ms == k_ms and b_seq < k_seq) then k_ms, k_seq = b_ms, b_seq end
end
local removed = redis.call('XTRIM', stream, 'MINID', string.format('%d-%d', k_ms, k_seq))
return {removed, math.max(redis.call('XLEN', stream) - maxlen, 0)}
"""


class _Publish:
    """One publish call: its entries for one stream and the future of their ids."""

    __slots__ = ("future", "payloads", "stream")

    def __init__(self, stream: str, payloads: Sequence[bytes], future: asyncio.Future[list[str]]) -> None:
        self.stream = stream
        self.payloads = payloads
        self.future = future


def _fail(jobs: Sequence[_Publish], error: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)


def _reply_exception(reply: hiredis.ReplyError) -> Exception:
    """The exception an error reply means: NOGROUP is :class:`GroupMissing`, anything else redis-py's
    ``ResponseError`` (as the calls still made through redis-py raise)."""
    message = str(reply)
    return GroupMissing(message) if message.startswith("NOGROUP") else ResponseError(message)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisTransport:
    """Redis Streams with consumer groups. Create with :meth:`from_config` or pass a client."""

    name = "redis"

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        codec: Codec = DEFAULT_CODEC,
        stats: BusStats | None = None,
        bus: BusConfig | None = None,
        publish_retry_s: float = 2.0,
        max_pipeline: int = 2_000,
    ) -> None:
        self._r = client
        self._codec = codec
        self.stats = stats or BusStats()
        self._bus = bus or BusConfig()
        self._publish_retry_s = publish_retry_s
        self._max_pipeline = max_pipeline
        self._queue: list[_Publish] = []
        #: the reply of a publish written at once by its caller (see _enqueue), while it is awaited
        self._sending: asyncio.Future[list[Any]] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._trimmer: asyncio.Task[None] | None = None
        self._dirty: set[str] = set()
        self._trim = self._r.register_script(_TRIM_SCRIPT)
        self._fast = FastRedis.from_pool(client.connection_pool)
        self._closed = False

    @classmethod
    def from_config(
        cls,
        redis: RedisConfig,
        bus: BusConfig,
        *,
        codec: Codec = DEFAULT_CODEC,
        stats: BusStats | None = None,
    ) -> RedisTransport:
        """Return a transport with one bounded connection pool built from ``redis``."""
        tcp = {} if redis.url.startswith("unix:") else {"socket_keepalive": True}  # no keepalive on Unix sockets
        pool = aioredis.BlockingConnectionPool.from_url(
            redis.url,
            max_connections=redis.max_connections,
            timeout=redis.connect_timeout_s + redis.socket_timeout_s,
            socket_timeout=redis.socket_timeout_s,
            socket_connect_timeout=redis.connect_timeout_s,
            **tcp,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), retries=1),
            retry_on_error=[RedisConnectionError],
        )
        client = aioredis.Redis(connection_pool=pool)
        return cls(client, codec=codec, stats=stats, bus=bus, publish_retry_s=redis.publish_retry_s)

    @property
    def client(self) -> aioredis.Redis:
        return self._r

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except _UNAVAILABLE as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        except ResponseError as exc:
            if str(exc).startswith("NOGROUP"):
                raise GroupMissing(str(exc)) from exc
            raise

    async def _hot(self, commands: Sequence[Sequence[Any]], block_ms: int = 0) -> list[Any]:
        """Run ``commands`` as one pipeline on a lean connection (the shared one; a blocking one when the last
        command may block ``block_ms``); raise the first error reply."""
        try:
            if block_ms:
                replies = await self._fast.blocking(commands, block_ms / 1000.0)
            else:
                replies = await self._fast.execute(commands)
        except _UNAVAILABLE as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise _reply_exception(reply)
        return replies

    # -- publishing -------------------------------------------------------------------------------------------

    def _enqueue(self, stream: str, payloads: Sequence[bytes]) -> asyncio.Future[list[str]]:
        if self._closed:
            raise BusUnavailable("the Redis transport is closed")
        loop = asyncio.get_running_loop()
        job = _Publish(stream, payloads, loop.create_future())
        self._dirty.add(stream)
        if self._trimmer is None or self._trimmer.done():
            self._trimmer = loop.create_task(self._trim_loop(), name="redis-bus-trimmer")
        if not self._queue and self._sending is None and (self._flusher is None or self._flusher.done()):
            conn = self._fast.ready()
            if conn is not None:  # nothing ahead of it: written now, by the caller (no flusher task, no loop turn)
                self._send_now([job], conn)
                return job.future
        self._queue.append(job)
        self._start_flusher()
        return job.future

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="redis-bus-flusher")

    def _send_now(self, jobs: list[_Publish], conn: Any) -> None:
        """Write ``jobs`` at once on the shared connection; their futures resolve from the reply (a failure
        puts them back at the head of the queue for the flusher, which retries; so a stream's order holds)."""
        commands = [(b"XADD", job.stream, b"*", FIELD, payload) for job in jobs for payload in job.payloads]
        try:
            reply = self._fast.send_now(conn, commands)
        except _UNAVAILABLE:
            self._queue[:0] = jobs
            self._start_flusher()
            return
        timer = asyncio.get_running_loop().call_later(self._fast.timeout, conn.close)  # no answer: reconnect
        self._sending = reply
        reply.add_done_callback(lambda r: self._sent(jobs, timer, r))

    def _sent(self, jobs: list[_Publish], timer: asyncio.TimerHandle, reply: asyncio.Future[list[Any]]) -> None:
        timer.cancel()
        self._sending = None
        error = None if reply.cancelled() else reply.exception()
        if reply.cancelled() or isinstance(error, _UNAVAILABLE):
            self._queue[:0] = jobs  # perhaps partly landed: resent (consumers tolerate duplicates)
            self._start_flusher()
            return
        if error is not None:
            _fail(jobs, error)
        else:
            self._resolve(jobs, reply.result())
        if self._queue:
            self._start_flusher()

    def _resolve(self, jobs: list[_Publish], ids: list[Any]) -> None:
        for entry_id in ids:
            if isinstance(entry_id, hiredis.ReplyError):
                _fail(jobs, _reply_exception(entry_id))
                return
        at = 0
        for job in jobs:
            n = len(job.payloads)
            if not job.future.done():
                job.future.set_result([_s(i) for i in ids[at : at + n]])
            at += n
            self.stats.add(job.stream, "published", n)

    async def _flush(self) -> None:
        while self._sending is not None:  # a write in flight goes first (if it fails, it is back in the queue)
            await asyncio.wait({self._sending})
        while self._queue:
            jobs: list[_Publish] = []
            size = 0
            while self._queue and (not jobs or size + len(self._queue[0].payloads) <= self._max_pipeline):
                job = self._queue.pop(0)
                jobs.append(job)
                size += len(job.payloads)
            deadline = time.monotonic() + self._publish_retry_s
            delay = 0.01
            while True:
                try:
                    ids = await self._fast.execute(
                        [(b"XADD", job.stream, b"*", FIELD, payload) for job in jobs for payload in job.payloads]
                    )
                except _UNAVAILABLE as exc:
                    # The batch may have partly landed before the connection broke; resending can duplicate
                    # entries, which consumers tolerate (at-least-once, idempotent handlers).
                    if time.monotonic() + delay > deadline:
                        _fail(jobs, BusUnavailable(f"redis unreachable while publishing: {exc}"))
                        break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.25)
                    continue
                except BaseException as exc:
                    _fail(jobs, exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    break
                self._resolve(jobs, ids)
                break

    async def publish(self, stream: str, message: Message) -> str:
        return (await self._enqueue(stream, [self._codec.encode(message)]))[0]

    async def publish_many(self, stream: str, messages: Sequence[Message]) -> list[str]:
        if not messages:
            return []
        return await self.publish_many_nowait(stream, messages)

    def publish_many_nowait(self, stream: str, messages: Sequence[Message]) -> asyncio.Future[list[str]]:
        if self._closed:
            future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
            future.set_exception(BusUnavailable("the Redis transport is closed"))
            return future
        encode = self._codec.encode
        return self._enqueue(stream, [encode(m) for m in messages])

    async def publish_raw(self, stream: str, payload: bytes) -> str:
        return (await self._enqueue(stream, [payload]))[0]

    # -- groups and reading -----------------------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        try:
            await self._call(lambda: self._r.xgroup_create(stream, group, id=start, mkstream=True))
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    def _delivery(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes] | list[bytes] | None, count: int
    ) -> Delivery:
        eid = _s(entry_id)
        if isinstance(fields, list):  # a raw reply: field, value, field, value, ...
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        payload = None if fields is None else fields.get(FIELD)
        if payload is None:
            return Delivery(stream, eid, None, count, None, TRIMMED)
        try:
            return Delivery(stream, eid, self._codec.decode(payload), count, payload)
        except DecodeError as exc:
            self.stats.add(stream, "decode_errors")
            return Delivery(stream, eid, None, count, payload, f"undecodable message: {exc}")

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
        acks = [(stream, ids) for stream, ids in (ack or {}).items() if ids]
        command: list[Any] = [b"XREADGROUP", b"GROUP", group, consumer, b"COUNT", count]
        if block_ms:
            command += [b"BLOCK", block_ms]
        command += [b"STREAMS", *streams, *([b">"] * len(streams))]
        replies = await self._hot([*((b"XACK", s, group, *ids) for s, ids in acks), command], block_ms)
        for (stream, _), acked in zip(acks, replies, strict=False):
            self.stats.add(stream, "acked", int(acked))
        reply = replies[-1]
        out: list[Delivery] = []
        for stream_name, entries in reply or ():
            stream = _s(stream_name)
            out.extend(self._delivery(stream, eid, fields, 1) for eid, fields in entries)
            self.stats.add(stream, "delivered", len(entries))
        return out

    async def tail(self, stream: str, after: str, *, count: int, block_ms: int) -> tuple[list[Delivery], str]:
        if after == "$":
            # resolve "$" to the current last id now, so nothing appended between two calls is missed
            try:
                info = await self._call(lambda: self._r.xinfo_stream(stream))
                after = _s(info["last-generated-id"])
            except ResponseError:  # no such stream yet: everything it will hold is new
                after = "0-0"
        command: list[Any] = [b"XREAD", b"COUNT", count]
        if block_ms:
            command += [b"BLOCK", block_ms]
        (reply,) = await self._hot([[*command, b"STREAMS", stream, after]], block_ms)
        out: list[Delivery] = []
        for _, entries in reply or ():
            out.extend(self._delivery(stream, eid, fields, 1) for eid, fields in entries)
        if out:
            after = out[-1].entry_id
            self.stats.add(stream, "delivered", len(out))
        return out, after

    async def _counts(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> dict[str, int]:
        """Return the delivery count of each id pending for ``consumer`` (one XPENDING over their range)."""
        if not ids:
            return {}
        rows = await self._call(
            lambda: self._r.xpending_range(
                stream, group, min=ids[0], max=ids[-1], count=len(ids) * 2 + 10, consumername=consumer
            )
        )
        return {_s(row["message_id"]): int(row["times_delivered"]) for row in rows}

    async def read_pending(self, group: str, consumer: str, streams: Sequence[str], *, count: int) -> list[Delivery]:
        out: list[Delivery] = []
        for stream in streams:
            reply = await self._call(lambda s=stream: self._r.xreadgroup(group, consumer, {s: "0"}, count=count))  # type: ignore[misc]
            entries = reply[0][1] if reply else []
            if not entries:
                continue
            # XREADGROUP with an explicit id counts as a delivery in Redis 7; read the counts back.
            counts = await self._counts(stream, group, consumer, [_s(e[0]) for e in entries])
            for eid, fields in entries:
                out.append(self._delivery(stream, eid, fields, counts.get(_s(eid), 1)))
            self.stats.add(stream, "redelivered", len(entries))
        return out

    async def claim_stale(
        self, group: str, consumer: str, stream: str, *, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        reply = await self._call(
            lambda: self._r.xautoclaim(stream, group, consumer, min_idle_ms, start_id="0-0", count=count)
        )
        claimed = reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        counts = await self._counts(stream, group, consumer, [_s(e[0]) for e in claimed])
        out = [self._delivery(stream, eid, fields, counts.get(_s(eid), 2)) for eid, fields in claimed]
        # Redis 7 drops claimed-but-deleted entries from the pending list itself; report them, never silently.
        out.extend(Delivery(stream, _s(eid), None, 2, None, TRIMMED) for eid in deleted)
        self.stats.add(stream, "redelivered", len(out))
        return out

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        (acked,) = await self._hot([(b"XACK", stream, group, *entry_ids)])
        self.stats.add(stream, "acked", int(acked))

    async def ack_many(self, group: str, entries: Mapping[str, Sequence[str]]) -> None:
        streams = [(stream, ids) for stream, ids in entries.items() if ids]
        if not streams:
            return
        counts = await self._hot([(b"XACK", stream, group, *ids) for stream, ids in streams])
        for (stream, _), acked in zip(streams, counts, strict=True):
            self.stats.add(stream, "acked", int(acked))

    async def dead_letter(self, group: str, consumer: str, delivery: Delivery, error: str) -> None:
        payload = delivery.payload
        if payload is None and delivery.message is not None:
            payload = self._codec.encode(delivery.message)
        fields: dict[bytes | str, bytes | str | int] = {
            "stream": delivery.stream,
            "entry_id": delivery.entry_id,
            "group": group,
            "consumer": consumer,
            "error": error[:2000],
            "deliveries": delivery.deliveries,
            "payload": payload or b"",
            "ts_ns": time.time_ns(),
        }

        async def move() -> Any:
            pipe = self._r.pipeline(transaction=True)
            pipe.xadd(dead_letter_stream(delivery.stream), fields)  # type: ignore[arg-type]
            pipe.xack(delivery.stream, group, delivery.entry_id)
            return await pipe.execute()

        await self._call(move)
        self.stats.add(delivery.stream, "dead_lettered")

    async def dead_letters(self, stream: str, count: int = 100) -> list[DeadLetter]:
        rows = await self._call(lambda: self._r.xrange(dead_letter_stream(stream), count=count))
        out = []
        for eid, f in rows:
            out.append(
                DeadLetter(
                    stream=_s(f[b"stream"]),
                    entry_id=_s(f[b"entry_id"]),
                    group=_s(f[b"group"]),
                    consumer=_s(f[b"consumer"]),
                    error=_s(f[b"error"]),
                    deliveries=int(f[b"deliveries"]),
                    payload=f[b"payload"],
                    ts_ns=int(f[b"ts_ns"]),
                    dead_letter_id=_s(eid),
                )
            )
        return out

    async def pending_count(self, stream: str, group: str) -> int:
        summary = await self._call(lambda: self._r.xpending(stream, group))
        return int(summary["pending"])

    async def length(self, stream: str) -> int:
        return int(await self._call(lambda: self._r.xlen(stream)))

    async def trim(self, stream: str, maxlen: int) -> TrimResult:
        removed, kept = await self._call(lambda: self._trim(keys=[stream], args=[maxlen, 100_000]))
        if kept:
            self.stats.add(stream, "trim_blocked", int(kept))
        return TrimResult(int(removed), int(kept))

    async def _trim_loop(self) -> None:
        interval = self._bus.trim_interval_ms / 1000.0
        warned: dict[str, float] = {}
        while not self._closed:
            await asyncio.sleep(interval)
            dirty, self._dirty = self._dirty, set()
            for stream in dirty:
                try:
                    result = await self.trim(stream, self._bus.maxlen)
                except (BusUnavailable, GroupMissing, ResponseError) as exc:
                    log.debug("trim of %s skipped: %s", stream, exc)
                    self._dirty.add(stream)
                    continue
                if result.kept_unacknowledged and time.monotonic() - warned.get(stream, 0.0) > 60:
                    warned[stream] = time.monotonic()
                    log.warning(
                        "stream %s holds %d entries over maxlen=%d that a group has not acknowledged yet",
                        stream,
                        result.kept_unacknowledged,
                        self._bus.maxlen,
                    )

    async def ping(self) -> None:
        await self._call(self._r.ping)

    async def close(self) -> None:
        if self._sending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait({self._sending}, timeout=self._fast.timeout)
        if self._flusher is not None and not self._flusher.done():
            with contextlib.suppress(Exception):
                await self._flusher
        self._closed = True
        if self._trimmer is not None:
            self._trimmer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._trimmer
        await self._fast.close()
        await self._r.aclose(close_connection_pool=True)
