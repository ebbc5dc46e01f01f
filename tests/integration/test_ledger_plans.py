"""The PostgreSQL ledger's plans: bookings find their orders by key however the table's statistics stand.

A prepared statement's cached generic plan is made from the table's size when it is planned; on a new ledger
(before autovacuum's first ANALYZE) a booking planned against a near-empty ``ledger_orders`` used to scan every
order ever admitted, so each booking cost more than the last (0.4 ms -> 4.9 ms over 40 s at 1,000 orders/s).
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tradepulse.config import DatabaseConfig
from tradepulse.domain import Order, OrderType, Side, SubmitOrder, TimeInForce
from tradepulse.storage.ledger_postgres import _BOOK, BEGIN_BOOKING, PostgresLedgerStore, _json
from tradepulse.storage.ledger_store import OrderRecord

pytestmark = pytest.mark.integration


def _records(start: int, n: int) -> list[OrderRecord]:
    out = []
    for i in range(start, start + n):
        cmd = SubmitOrder(
            client_order_id=f"plan-{i}",
            symbol="AAA",
            side=Side.BUY,
            quantity=Decimal(1),
            order_type=OrderType.MARKET,
            time_in_force=TimeInForce.IOC,
            strategy_id="s",
        )
        out.append(
            OrderRecord(order=Order.from_submit(cmd, time.time_ns()), reserve_price=Decimal(1), engine="e", venue="v")
        )
    return out


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ",".join("'" + str(v).replace("'", "''") + "'" for v in value) + "]::text[]"
    return "'" + str(value).replace("'", "''") + "'"


async def test_a_booking_planned_on_an_empty_ledger_still_finds_its_orders_by_key(
    pg_database: str, pg_schema: str
) -> None:
    store = PostgresLedgerStore(
        DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=2)
    )
    await store.open()
    try:
        await store.ensure_accounts(["default"], Decimal(10**6), "USD")
        snap = (await store.snapshot(["default"]))["default"]
        async with store.pool.acquire() as conn:
            # the generic plan, made and cached now, while ledger_orders is empty (a new engine's sixth booking)
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            await conn.execute(BEGIN_BOOKING)
            await conn.execute("PREPARE booking(text, text, text, text, bigint, text[]) AS " + _BOOK)
            await conn.execute("EXECUTE booking('[]', '[]', '[]', '[]', 1, ARRAY[]::text[])")
            await conn.execute("COMMIT")
            result = await store.admit(_records(0, 2_000), {"default": (snap.seq, snap.token)}, {"default": "t1"})
            assert result.ok
            orders = [[f"plan-{i}", "CANCELED", "0", "0", "0", None, None, "", 1] for i in range(10)]
            args = ["[]", _json(orders), "[]", "[]", 1, [f"plan-{i}" for i in range(10)]]
            await conn.execute(BEGIN_BOOKING)
            try:
                explain = "EXPLAIN (ANALYZE, COSTS OFF) EXECUTE booking(" + ",".join(_literal(a) for a in args) + ")"
                plan = "\n".join(r[0] for r in await conn.fetch(explain))
                assert await conn.fetchval("SELECT count(*) FROM ledger_orders WHERE status = 'CANCELED'") == 10
            finally:
                await conn.execute("ROLLBACK")
            await conn.execute("DEALLOCATE booking")
            assert await conn.fetchval("SHOW enable_seqscan") == "on"  # outside a booking: the planner decides
        assert "Seq Scan on ledger_orders" not in plan, plan
        assert "ledger_orders_pkey" in plan, plan
    finally:
        await store.close()
