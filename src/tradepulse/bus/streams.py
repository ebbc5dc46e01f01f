"""Stream names, and the stable partitioning of order streams by symbol.

``orders:{p}`` streams are partitioned so that engines scale out as consumer-group members per partition while
each symbol stays in one partition (and so in order). The partition of a symbol must never depend on the
process (Python's ``hash`` of a str is salted per process), so it uses CRC-32.
"""

from __future__ import annotations

import zlib

TICKS = "ticks"
SIGNALS = "signals"
REPORTS = "reports"
ORDERS_PREFIX = "orders"


def order_partition(symbol: str, partitions: int) -> int:
    """Return the order partition of ``symbol`` (stable across processes and machines)."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return zlib.crc32(symbol.encode()) % partitions


def order_stream(symbol: str, partitions: int) -> str:
    """Return the order stream that carries ``symbol``'s commands: ``orders:{p}``."""
    return f"{ORDERS_PREFIX}:{order_partition(symbol, partitions)}"


def order_streams(partitions: int) -> list[str]:
    """Return every order stream name."""
    return [f"{ORDERS_PREFIX}:{p}" for p in range(partitions)]


def engine_stream(engine: str) -> str:
    """Return an engine's private command stream (cancels forwarded to the engine that holds the order)."""
    return f"engine:{engine}"
