"""The latest signal of each symbol, and a short history, kept in memory from the ``signals`` stream.

One background task follows the stream with a group-less ``tail`` (it leaves nothing pending and costs one read
per batch), so ``GET /api/signals`` is a dict lookup plus bytes encoded once (and gzip-compressed once, for the
clients that accept it): the encoded response is cached for
at most ``api.signals_cache_s`` (the seed's one-minute cache) and dropped as soon as a new signal arrives, so a
client never sees a signal older than the stream's latest.

On start, with Redis, the last entries of the stream are read back first (up to ``backfill`` of them), so a
fresh worker answers with the same latest signals and history as one that has been running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import msgspec
from redis.exceptions import RedisError

from tradepulse.api.compression import CompressedBody
from tradepulse.api.schemas import SignalList, SignalOut
from tradepulse.bus import BusUnavailable, Transport
from tradepulse.bus.streams import SIGNALS
from tradepulse.domain import Signal

log = logging.getLogger(__name__)


_encoder = msgspec.json.Encoder()


class SignalBoard:
    """Follow ``signals``; keep the latest per symbol and the last ``history`` per symbol. See the module doc."""

    def __init__(
        self,
        bus: Transport,
        *,
        stream: str = SIGNALS,
        history: int = 1_000,
        cache_s: float = 60.0,
        backfill: int = 10_000,
        block_ms: int = 1_000,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.cache_s = cache_s
        self.backfill = backfill
        self.block_ms = block_ms
        self._history_len = history
        self.latest: dict[str, SignalOut] = {}
        self.history: dict[str, deque[SignalOut]] = {}
        self.received = 0
        self._cached: CompressedBody | None = None
        self._cached_at = 0.0
        self._after = "$"
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        """Read back recent signals (Redis), then follow the stream in the background."""
        if self._task is not None:
            return
        try:
            self._after = await self._backfill_start()
            if self._after != "$":
                await self._catch_up()
            else:
                _, self._after = await self.bus.tail(self.stream, "$", count=1, block_ms=0)
        except BusUnavailable as exc:
            log.warning("signal board: %s unavailable at start (%s); following it when it is back", self.stream, exc)
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="api-signal-board")

    async def _backfill_start(self) -> str:
        """Return the entry id to read from so that about ``backfill`` recent entries are read again."""
        client = getattr(self.bus, "client", None)
        if client is None or self.backfill <= 0:
            return "$"
        try:
            rows = await client.xrevrange(self.stream, count=self.backfill + 1)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        if len(rows) <= self.backfill:
            return "0-0"
        eid = rows[-1][0]
        return eid.decode() if isinstance(eid, bytes) else str(eid)

    async def _catch_up(self) -> None:
        while True:
            deliveries, self._after = await self.bus.tail(self.stream, self._after, count=1_000, block_ms=0)
            self._take([d.message for d in deliveries])
            if len(deliveries) < 1_000:
                return

    async def _follow(self) -> None:
        delay = 0.05
        self.ready.set()
        while True:
            try:
                deliveries, self._after = await self.bus.tail(
                    self.stream, self._after, count=1_000, block_ms=self.block_ms
                )
            except BusUnavailable as exc:
                log.warning("signal board: %s unavailable (%s); retrying", self.stream, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except Exception:  # the board must outlive any one bad read: logged, then retried
                log.exception("signal board: reading %s failed; retrying", self.stream)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            self._take([d.message for d in deliveries])

    def _take(self, messages: list[object]) -> None:
        changed = False
        for message in messages:
            if not isinstance(message, Signal):
                continue
            out = SignalOut.of(message)
            current = self.latest.get(out.symbol)
            if current is None or out.ts_ns >= current.ts_ns:
                self.latest[out.symbol] = out
            ring = self.history.get(out.symbol)
            if ring is None:
                ring = self.history[out.symbol] = deque(maxlen=self._history_len)
            ring.append(out)
            self.received += 1
            changed = True
        if changed:
            self._cached = None

    def add(self, signal: Signal) -> None:
        """Take one signal as if it came from the stream."""
        self._take([signal])

    def latest_json(self, now: float | None = None) -> bytes:
        """Return the encoded ``{"signals": [...]}`` of the latest signal per symbol (cached, see module doc)."""
        return self.latest_body(now).body

    def latest_body(self, now: float | None = None) -> CompressedBody:
        """Return :meth:`latest_json`'s bytes with their gzip form (compressed once per cached body, on demand)."""
        now = time.monotonic() if now is None else now
        cached = self._cached
        if cached is not None and now - self._cached_at < self.cache_s:
            return cached
        body = _encoder.encode(SignalList(signals=[self.latest[s] for s in sorted(self.latest)]))
        self._cached, self._cached_at = CompressedBody(body), now
        return self._cached

    def recent(self, symbol: str, limit: int) -> list[SignalOut]:
        """Return up to ``limit`` most recent signals of ``symbol``, newest first."""
        ring = self.history.get(symbol)
        if not ring:
            return []
        out = list(ring)[-limit:]
        out.reverse()
        return out

    async def close(self) -> None:
        if self._task is not None:
            while not self._task.done():  # re-cancel: Python 3.11 can swallow one inside redis-py's wait_for
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.2)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self._task.result()
            self._task = None


__all__ = ["SignalBoard", "SignalList", "SignalOut"]
