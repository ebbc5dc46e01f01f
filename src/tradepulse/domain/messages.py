"""The base of every message that travels on the bus.

Messages are immutable facts: frozen :mod:`msgspec` Structs, tagged with their class name so that one stream
can carry several message types and a decoder can tell them apart. Each message carries ``stamps``, a map of
stage name -> wall-clock nanoseconds (``time.time_ns()``) recording when the message left each stage it passed,
so that end-to-end latency can be broken down per stage anywhere downstream.
"""

from __future__ import annotations

import time
from typing import TypeVar

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base class of bus messages. Subclasses are frozen and tagged with their class name."""

    stamps: dict[str, int] = {}


M = TypeVar("M", bound=Message)


def stamp(message: M, stage: str, at_ns: int | None = None) -> M:
    """Return a copy of ``message`` with ``stage`` stamped at ``at_ns`` (default: now, wall clock).

    The original is left untouched: a message already handed to another consumer never changes under it.
    """
    stamps = dict(message.stamps)
    stamps[stage] = time.time_ns() if at_ns is None else at_ns
    return msgspec.structs.replace(message, stamps=stamps)


def stage_durations(stamps: dict[str, int]) -> list[tuple[str, int]]:
    """Return ``(stage, nanoseconds)`` for each stage after the first, in the order they were stamped.

    A stage's duration is the time from the previous stamp to its own, so the durations sum to the time from
    the first stamp to the last.
    """
    out: list[tuple[str, int]] = []
    previous: int | None = None
    for stage, at in stamps.items():
        if previous is not None:
            out.append((stage, at - previous))
        previous = at
    return out
