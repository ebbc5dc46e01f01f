"""Fault injection for any broker: timeouts, and duplicated, reordered and late execution reports.

A public test utility in the spirit of httpx's MockTransport: a real broker wrapped so that it misbehaves the way
real ones do, seeded so a failing run can be replayed. Used by the fault tests and available for your own.

* ``timeout_rate``: that share of submit/cancel/query calls raise :class:`BrokerTimeout`. Half of them
  (``lost_reply_share``) did reach the venue (only the answer was lost); the rest never arrived. The engine
  cannot tell which, which is the point.
* ``duplicate_rate``: that share of reports is delivered twice.
* ``reorder_rate``: that share of report batches is shuffled.
* ``late_rate``: that share of reports is held back and delivered with a later batch.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

from tradepulse.domain import Order, Tick
from tradepulse.execution.brokers.protocol import Broker, BrokerOrderState, BrokerTimeout, VenueReport


class FaultyBroker:
    """Wrap ``inner`` and inject faults (see the module docstring)."""

    def __init__(
        self,
        inner: Broker,
        *,
        timeout_rate: float = 0.0,
        lost_reply_share: float = 0.5,
        duplicate_rate: float = 0.0,
        reorder_rate: float = 0.0,
        late_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.inner = inner
        self.venue = inner.venue
        self.timeout_rate = timeout_rate
        self.lost_reply_share = lost_reply_share
        self.duplicate_rate = duplicate_rate
        self.reorder_rate = reorder_rate
        self.late_rate = late_rate
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self.timeouts = 0
        self.dropped_calls = 0
        self.duplicated = 0
        self.reordered = 0
        self.delayed = 0

    def _fate(self) -> tuple[bool, bool]:
        """Return (times out, reached the venue)."""
        if self._rng.random() >= self.timeout_rate:
            return False, True
        self.timeouts += 1
        reached = self._rng.random() < self.lost_reply_share
        if not reached:
            self.dropped_calls += 1
        return True, reached

    async def start(self) -> None:
        await self.inner.start()

    async def submit(self, orders: Sequence[Order]) -> None:
        timeout, reached = self._fate()
        if reached:
            await self.inner.submit(orders)
        if timeout:
            raise BrokerTimeout(f"{self.venue}: submit of {len(orders)} orders timed out (injected)")

    async def cancel(self, client_order_ids: Sequence[str]) -> None:
        timeout, reached = self._fate()
        if reached:
            await self.inner.cancel(client_order_ids)
        if timeout:
            raise BrokerTimeout(f"{self.venue}: cancel timed out (injected)")

    async def query(self, client_order_id: str) -> BrokerOrderState | None:
        timeout, _ = self._fate()
        if timeout:
            raise BrokerTimeout(f"{self.venue}: query of {client_order_id} timed out (injected)")
        return await self.inner.query(client_order_id)

    async def open_orders(self) -> list[BrokerOrderState]:
        return await self.inner.open_orders()

    async def reports(self) -> AsyncIterator[list[VenueReport]]:
        held: list[VenueReport] = []
        source = self.inner.reports().__aiter__()
        while True:
            try:
                batch = await asyncio.wait_for(source.__anext__(), 0.05) if held else await source.__anext__()
            except TimeoutError:
                batch = []  # nothing new: release what was held back
            except StopAsyncIteration:
                if held:
                    yield held
                return
            out: list[VenueReport] = []
            for report in batch:
                if self._rng.random() < self.late_rate:
                    held.append(report)
                    self.delayed += 1
                    continue
                out.append(report)
                if self._rng.random() < self.duplicate_rate:
                    out.append(report)
                    self.duplicated += 1
            if held and (not batch or self._rng.random() < 0.5):
                out.extend(held)
                held = []
            if len(out) > 1 and self._rng.random() < self.reorder_rate:
                self._rng.shuffle(out)
                self.reordered += 1
            if out:
                yield out

    def on_tick(self, tick: Tick) -> None:
        self.inner.on_tick(tick)

    async def close(self) -> None:
        await self.inner.close()


__all__ = ["FaultyBroker"]
