"""Short garbage-collection pauses for a long-running engine process.

An engine keeps many long-lived objects: the recently closed orders it answers duplicates from, and the simulated
venue's orders. CPython's full (generation 2) collection walks every one of them each time the old generation
has grown by a quarter, a pause that grows with the process's age (about 75 ms at a quarter million objects,
measured with ``benchmarks/tools/engine_cpu.py --objects``), which is the tail of the order latency.

:func:`freeze_survivors` moves what has survived so far into the permanent generation every ``interval_s``
(``gc.freeze``, constant time), so a collection only ever walks what arrived since the last freeze. Objects are
still freed by reference counting when they are no longer used; what the collector no longer sees is a
*reference cycle* among frozen objects that becomes garbage later. The engine's long-lived data holds no cycles,
and the short-lived cycles (asyncio futures, exceptions) die young, in the collections between two freezes; the
benchmark tool counts what would leak (``--objects``).
"""

from __future__ import annotations

import asyncio
import gc


def freeze_now() -> None:
    """Collect what is garbage now, then freeze the survivors (once, after start-up)."""
    gc.collect()
    gc.freeze()


async def freeze_survivors(interval_s: float) -> None:
    """Freeze the survivors every ``interval_s`` seconds until cancelled (see the module docstring)."""
    while True:
        await asyncio.sleep(interval_s)
        gc.collect(1)  # the young generations first: what died young is not frozen
        gc.freeze()


__all__ = ["freeze_now", "freeze_survivors"]
