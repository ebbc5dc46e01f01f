"""A hypothesis state machine drives the engine through submits, duplicates, cancels, market moves (fills) and
crashes, checking after every step that no order executes twice, every fill is booked once, the books agree with
the fills, and every order has one state (terminal or live). Embedded set-up (in-process bus, SQLite ledger,
journaled venue) so that hundreds of steps run in seconds; the same invariants run against Redis and PostgreSQL
in tests/integration/test_faults.py and test_engine_processes.py."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.engine import EngineHarness, order, settings_for, tick
from tests.support.processes import read_journals
from tradepulse.bus import MemoryTransport
from tradepulse.client import OrderClient
from tradepulse.domain import Order, OrderStatus, Side, SubmitOrder, TimeInForce
from tradepulse.portfolio.ledger import verify

D = Decimal


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="tp-stateful-"))
        self.bus = MemoryTransport()
        self.harness = EngineHarness(
            settings_for(self.tmp, risk={"max_position": D(500)}, venue={"min_level_lots": 40}), self.bus
        )
        self.mid = 100.0
        self.submitted: dict[str, SubmitOrder] = {}
        self.crashes = 0
        self.run(self._start())

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    async def _start(self) -> None:
        await self.harness.start()
        await self.harness.ticks(tick("AAA", self.mid, size=40))
        self.client = OrderClient(self.bus, partitions=4, block_ms=50)
        await self.client.start()

    @rule(
        side=st.sampled_from(Side),
        qty=st.integers(1, 120),
        offset=st.integers(-5, 5),
        kind=st.sampled_from(["market", "limit", "ioc"]),
    )
    def submit(self, side: Side, qty: int, offset: int, kind: str) -> None:
        if kind == "market":
            cmd = order("AAA", side, qty, prefix="sm")
        else:
            price = f"{self.mid + offset / 100:.2f}"
            tif = TimeInForce.GTC if kind == "limit" else TimeInForce.IOC
            cmd = order("AAA", side, qty, limit=price, tif=tif, prefix="sm")
        self.submitted[cmd.client_order_id] = cmd
        result = self.run(self.client.submit(cmd, timeout=10, until="accepted"))
        assert result.events

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        cmd = data.draw(st.sampled_from(sorted(self.submitted)))
        venue_before = len(read_journals(self.tmp / "venue").accepted)
        result = self.run(self.client.submit(self.submitted[cmd], timeout=10, until="accepted"))
        answer = result.events[-1]
        assert isinstance(answer, Order), f"a duplicate is answered with the order, got {type(answer).__name__}"
        assert len(read_journals(self.tmp / "venue").accepted) == venue_before, "a duplicate reached the venue"

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        coid = data.draw(st.sampled_from(sorted(self.submitted)))
        result = self.run(self.client.cancel(coid, "AAA", timeout=10))
        assert result.terminal

    @rule(move=st.integers(-8, 8))
    def market_moves(self, move: int) -> None:
        self.mid = round(self.mid + move / 100, 2)
        self.run(self.harness.ticks(tick("AAA", self.mid, size=40)))

    @rule()
    def crash(self) -> None:
        self.crashes += 1
        self.run(self._crash())

    async def _crash(self) -> None:
        await self.harness.crash()
        await self.harness.start()
        await self.harness.ticks(tick("AAA", self.mid, size=40))

    @invariant()
    def books_agree_with_the_venue(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        h = self.harness
        await h.quiet(20)
        assert h.store is not None
        venue = read_journals(self.tmp / "venue")
        assert not venue.duplicates, "an order was sent to the venue twice"
        records = {r.order.client_order_id: r.order for r in await h.store.orders()}
        assert set(self.submitted) <= set(records), "a submitted order has no ledger row"
        assert set(venue.accepted) <= set(records), "an order executed without a ledger row"
        booked = {f.fill_id: (f.client_order_id, f.quantity) for f in await h.store.fills()}
        assert booked == venue.fills, "the ledger's fills differ from the venue's"
        for coid, o in records.items():
            assert o.status not in (OrderStatus.NEW, OrderStatus.UNKNOWN), f"{coid} unresolved"
            assert (o.status is OrderStatus.FILLED) == (o.filled_quantity == o.quantity)
        assert await verify(h.store, "default") == []
        exposure = h.engine.state.accounts["default"].exposure("AAA") if h.engine else None
        assert exposure is not None
        assert abs(exposure.position) + max(exposure.buy_qty, exposure.sell_qty) <= 2 * 500

    def teardown(self) -> None:
        async def close() -> None:
            await self.client.close()
            await self.harness.stop()
            await self.bus.close()

        try:
            self.run(close())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


EngineMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_engine_state_machine = EngineMachine.TestCase
