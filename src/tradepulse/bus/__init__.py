"""The message bus: one protocol, an in-process transport and a Redis Streams transport.

See :mod:`tradepulse.bus.protocol` for the semantics and :mod:`tradepulse.bus.consumer` for the consumer loop.
"""

from __future__ import annotations

from tradepulse.bus.codec import Codec, DecodeError
from tradepulse.bus.consumer import Consumer, Handler, each
from tradepulse.bus.memory import MemoryTransport
from tradepulse.bus.protocol import (
    BusError,
    BusUnavailable,
    DeadLetter,
    Delivery,
    GroupMissing,
    Transport,
    TrimResult,
    dead_letter_stream,
)
from tradepulse.bus.stats import BusStats
from tradepulse.config import Settings


def make_transport(settings: Settings, stats: BusStats | None = None) -> Transport:
    """Return the transport ``settings.bus.transport`` names."""
    if settings.bus.transport == "redis":
        from tradepulse.bus.redis_streams import RedisTransport

        return RedisTransport.from_config(settings.redis, settings.bus, stats=stats)
    return MemoryTransport(stats=stats)


__all__ = [
    "BusError",
    "BusStats",
    "BusUnavailable",
    "Codec",
    "Consumer",
    "DeadLetter",
    "DecodeError",
    "Delivery",
    "GroupMissing",
    "Handler",
    "MemoryTransport",
    "Transport",
    "TrimResult",
    "dead_letter_stream",
    "each",
    "make_transport",
]
