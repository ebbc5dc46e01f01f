"""``tradepulse rebalance --execute`` against a running engine with the simulated exchange (issue 6, item 4)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.bus_fixtures import make_redis
from tests.support.engine import EngineHarness, settings_for, tick
from tests.support.servers import redis_server
from tradepulse.config import DatabaseConfig, Settings
from tradepulse.domain import OrderStatus, Side
from tradepulse.portfolio.ledger import verify

D = Decimal

HOLDINGS = """symbol,quantity,price
$CASH,20000.00,
AAA,300,100.00
"""
TARGETS = """symbol,weight,price
AAA,0.40,
BBB,0.50,50.00
"""


def cli_env(settings: Settings, redis_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPULSE_")}
    env.update(
        {
            "TRADEPULSE_BUS_TRANSPORT": "redis",
            "TRADEPULSE_REDIS_URL": redis_url,
            "TRADEPULSE_MARKET_SYMBOLS": "AAA,BBB",
            "TRADEPULSE_BUS_BLOCK_MS": "100",
            "TRADEPULSE_LOG_LEVEL": "WARNING",
            "COLUMNS": "200",
        }
    )
    return env


@pytest.fixture
async def engine(tmp_path: Path, pg_database: str, pg_schema: str) -> AsyncIterator[tuple[EngineHarness, str]]:
    with redis_server(appendonly=False) as server:
        settings = settings_for(
            tmp_path,
            transport="redis",
            redis_url=server.url,
            database=DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema, pool_min=1, pool_max=4),
        )
        bus = make_redis(server.url)
        harness = EngineHarness(settings, bus)
        await harness.start()
        await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
        try:
            yield harness, server.url
        finally:
            await harness.stop()
            await bus.close()


async def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tradepulse.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_execute_sends_the_plan_through_the_engine_and_reports_each_order(
    engine: tuple[EngineHarness, str], tmp_path: Path
) -> None:
    harness, redis_url = engine
    (tmp_path / "h.csv").write_text(HOLDINGS)
    (tmp_path / "t.csv").write_text(TARGETS)
    env = cli_env(harness.settings, redis_url, tmp_path)
    args = ["rebalance", "--holdings", str(tmp_path / "h.csv"), "--targets", str(tmp_path / "t.csv"), "--execute"]
    done = await run_cli([*args, "--rebalance-id", "cli1"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    # value 50,000: AAA to 40 % = 200 shares (sell 100), BBB to 50 % = 25,000 / 50 = 500 shares (buy)
    assert "executed: 2 orders, 0 not filled" in done.stdout
    assert "rb-cli1-S-AAA" in done.stdout
    assert "rb-cli1-B-BBB" in done.stdout
    assert "after execution" in done.stdout
    await harness.quiet()
    store = harness.store
    assert store is not None
    orders = await store.get_orders(["rb-cli1-S-AAA", "rb-cli1-B-BBB"])
    assert {k: (r.order.side, r.order.quantity, r.order.status) for k, r in orders.items()} == {
        "rb-cli1-S-AAA": (Side.SELL, D(100), OrderStatus.FILLED),
        "rb-cli1-B-BBB": (Side.BUY, D(500), OrderStatus.FILLED),
    }
    booked = await store.fills(account_id="default")
    cash = D(20_000) + sum((f.quantity * f.price * (-f.side.sign) - f.fee for f in booked), D(0))
    assert f"cash after: {cash:,.2f} USD" in done.stdout
    venue = harness.venue
    assert venue is not None
    fills = venue.fills
    # the same rebalance again: the engine answers with the same orders, nothing trades twice
    again = await run_cli([*args, "--rebalance-id", "cli1"], env)
    assert again.returncode == 0, again.stdout + again.stderr
    await harness.quiet()
    assert venue.fills == fills
    positions = {p.position.symbol: p.position.quantity for p in await store.positions("default")}
    assert positions == {"AAA": D(-100), "BBB": D(500)}  # the ledger started flat; the file said 300 AAA
    assert await verify(store, "default") == []


async def test_a_rejected_order_makes_the_command_fail(engine: tuple[EngineHarness, str], tmp_path: Path) -> None:
    harness, redis_url = engine
    (tmp_path / "h.csv").write_text("symbol,quantity,price\n$CASH,20000000.00,\n")
    (tmp_path / "t.csv").write_text("symbol,weight,price\nBBB,0.5,50.00\n")  # 200,000 BBB: over risk limits
    env = cli_env(harness.settings, redis_url, tmp_path)
    args = ["rebalance", "--holdings", str(tmp_path / "h.csv"), "--targets", str(tmp_path / "t.csv"), "--execute"]
    done = await run_cli(args, env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 not filled" in done.stdout
    assert "REJECTED" in done.stdout


async def test_no_engine_answer_exits_3(tmp_path: Path) -> None:
    with redis_server(appendonly=False) as server:
        (tmp_path / "h.csv").write_text(HOLDINGS)
        (tmp_path / "t.csv").write_text(TARGETS)
        env = cli_env(Settings(), server.url, tmp_path)
        h, t = str(tmp_path / "h.csv"), str(tmp_path / "t.csv")
        done = await run_cli(["rebalance", "--holdings", h, "--targets", t, "--execute", "--timeout", "0.5"], env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "is `tradepulse engine` running" in done.stderr
