"""Per-stream bus counters, read by the live panel and exported to Prometheus."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tradepulse.observability.metrics import BUS_MESSAGES

#: the Prometheus counter of each (stream, operation) seen so far
_CHILDREN: dict[tuple[str, str], Any] = {}


class BusStats:
    """Counters per (stream, operation): published, delivered, acked, redelivered, dead_lettered, decode_errors."""

    __slots__ = ("counts",)

    OPERATIONS = ("published", "delivered", "acked", "redelivered", "dead_lettered", "decode_errors")

    def __init__(self) -> None:
        self.counts: defaultdict[tuple[str, str], int] = defaultdict(int)

    def add(self, stream: str, operation: str, n: int = 1) -> None:
        if n:
            self.counts[(stream, operation)] += n
            child = _CHILDREN.get((stream, operation))
            if child is None:  # labels() takes a lock and builds a key each call: look each pair up once
                child = _CHILDREN[(stream, operation)] = BUS_MESSAGES.labels(
                    stream=_family(stream), operation=operation
                )
            child.inc(n)

    def get(self, stream: str, operation: str) -> int:
        return self.counts.get((stream, operation), 0)

    def streams(self) -> list[str]:
        return sorted({stream for stream, _ in self.counts})

    def snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self.counts)


def _family(stream: str) -> str:
    """Collapse partitioned streams (``orders:3``) into one label value to bound metric cardinality."""
    head, sep, tail = stream.rpartition(":")
    return head if sep and tail.isdigit() else stream
