"""The bus protocol every transport implements, and the types it speaks.

A bus is a set of append-only streams. Producers append messages; consumers read as members of a named group,
so that each entry goes to one member of each group, and acknowledge what they handled. An entry that is read
but not acknowledged stays pending for its reader: if the reader dies, another member claims it after it has been
idle for a while; an entry whose handling failed too often, or that cannot be decoded, moves to the stream's
dead-letter stream (``<stream>:dead``) together with the error, atomically with its acknowledgement.

Delivery is at-least-once: handlers must be idempotent (the engine keys orders by client order id, the ledger
keys fills by fill id).

Exceptions raised by transports:

    BusError
     +-- BusUnavailable   the broker cannot be reached (retry later; publishing fails closed)
     +-- GroupMissing     the consumer group does not exist (e.g. Redis restarted without persistence)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import msgspec

from tradepulse.bus.stats import BusStats
from tradepulse.domain import Message


class BusError(Exception):
    """Base of bus transport errors."""


class BusUnavailable(BusError):
    """The broker could not be reached within the configured retry time."""


class GroupMissing(BusError):
    """A consumer group (or its stream) does not exist."""


def dead_letter_stream(stream: str) -> str:
    """Return the name of ``stream``'s dead-letter stream."""
    return f"{stream}:dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to a consumer.

    ``message`` is None when the entry could not be decoded or no longer exists; ``error`` then says why, and
    the consumer dead-letters it. ``deliveries`` counts how many times the entry has been delivered, this one
    included.
    """

    stream: str
    entry_id: str
    message: Message | None
    deliveries: int = 1
    payload: bytes | None = None
    error: str | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message that could not be handled, with why, kept for inspection and replay."""

    stream: str
    entry_id: str
    group: str
    consumer: str
    error: str
    deliveries: int
    payload: bytes = b""
    ts_ns: int = 0
    dead_letter_id: str = ""


class TrimResult(msgspec.Struct, frozen=True):
    """What a trim did: entries removed, and entries over ``maxlen`` kept because a group still needs them."""

    removed: int
    kept_unacknowledged: int


@runtime_checkable
class Transport(Protocol):
    """A stream transport. See the module docstring for the semantics every implementation keeps."""

    name: str
    stats: BusStats

    async def publish(self, stream: str, message: Message) -> str:
        """Append ``message`` to ``stream`` and return its entry id once the transport holds it."""
        ...

    async def publish_many(self, stream: str, messages: Sequence[Message]) -> list[str]:
        """Append ``messages`` in order, batched; return their entry ids."""
        ...

    def publish_many_nowait(self, stream: str, messages: Sequence[Message]) -> asyncio.Future[list[str]]:
        """Start :meth:`publish_many` within this call and return the future of the entry ids: the messages are
        written before the caller's next await when nothing is ahead of them (else queued, in order, behind what
        is); failures (:class:`BusUnavailable`) arrive through the future."""
        ...

    async def publish_raw(self, stream: str, payload: bytes) -> str:
        """Append an already encoded payload (tools and tests; it is decoded when read)."""
        ...

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        """Create ``group`` on ``stream`` (and the stream) if missing; ``start`` "0" reads all history."""
        ...

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
        """Return up to ``count`` new entries per stream for ``consumer``, waiting up to ``block_ms``.

        ``ack`` (stream -> entry ids) is acknowledged first, in the same round trip: a consumer handling one batch
        at a time acks the last batch with the next read. If the read raises, the ack may not have happened
        (the entries stay pending and are delivered again: at-least-once)."""
        ...

    async def tail(self, stream: str, after: str, *, count: int, block_ms: int) -> tuple[list[Delivery], str]:
        """Return up to ``count`` entries after entry id ``after`` ("$": only entries appended from now on),
        waiting up to ``block_ms``, and the id to pass next time. No group, no pending list, no ack: for
        readers that only follow a stream (a client waiting for its reports, an engine following ticks)."""
        ...

    async def read_pending(self, group: str, consumer: str, streams: Sequence[str], *, count: int) -> list[Delivery]:
        """Redeliver up to ``count`` entries per stream still pending for this very consumer (after a restart)."""
        ...

    async def claim_stale(
        self, group: str, consumer: str, stream: str, *, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        """Claim for ``consumer`` up to ``count`` entries pending longer than ``min_idle_ms`` for any member."""
        ...

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        """Acknowledge handled entries, removing them from the group's pending list."""
        ...

    async def ack_many(self, group: str, entries: Mapping[str, Sequence[str]]) -> None:
        """Acknowledge handled entries of several streams (stream -> entry ids) in one round trip."""
        ...

    async def dead_letter(self, group: str, consumer: str, delivery: Delivery, error: str) -> None:
        """Move ``delivery`` to the dead-letter stream with ``error`` and acknowledge it, atomically."""
        ...

    async def dead_letters(self, stream: str, count: int = 100) -> list[DeadLetter]:
        """Return up to ``count`` dead letters of ``stream``, oldest first."""
        ...

    async def pending_count(self, stream: str, group: str) -> int:
        """Return how many entries of ``stream`` are delivered to ``group`` but not acknowledged."""
        ...

    async def length(self, stream: str) -> int:
        """Return the number of entries in ``stream``."""
        ...

    async def trim(self, stream: str, maxlen: int) -> TrimResult:
        """Trim ``stream`` to about ``maxlen`` entries, never removing entries a group has not acknowledged."""
        ...

    async def ping(self) -> None:
        """Raise :class:`BusUnavailable` if the broker does not answer."""
        ...

    async def close(self) -> None:
        """Flush pending publishes and release connections."""
        ...
