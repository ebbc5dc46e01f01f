"""The engine's garbage-collection policy: survivors are frozen, so collections only walk young objects."""

from __future__ import annotations

import asyncio
import gc
import weakref

from tradepulse.execution.gcpolicy import freeze_now, freeze_survivors


class Node:
    next: object = None


async def test_freeze_survivors_freezes_what_lives_and_frees_what_does_not() -> None:
    gc.unfreeze()
    try:
        kept = [[i] for i in range(2_000)]
        freeze_now()
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        # a cycle that is garbage before the next freeze is collected, not frozen
        cycle = Node()
        cycle.next = cycle
        dead = weakref.ref(cycle)
        del cycle
        later = [[i, i] for i in range(1_000)]
        task = asyncio.get_running_loop().create_task(freeze_survivors(0.01))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if gc.get_freeze_count() >= frozen + len(later):
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert gc.get_freeze_count() >= frozen + len(later)
        assert kept[1_999] == [1_999]  # frozen objects are untouched
        assert later[999] == [999, 999]
        assert dead() is None
    finally:
        gc.unfreeze()


async def test_a_frozen_object_is_still_freed_by_reference_counting() -> None:
    gc.unfreeze()
    try:
        thing = Node()
        ref = weakref.ref(thing)
        freeze_now()
        del thing
        assert ref() is None
    finally:
        gc.unfreeze()
