"""An engine's counters on /metrics: read at scrape time, labelled with the engine's name; `tradepulse engine`
registers them for as long as it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from tests.support.engine import EngineHarness, client_for, order, settings_for, tick
from tradepulse.bus import MemoryTransport
from tradepulse.domain import OrderStatus, Side
from tradepulse.execution.metrics import EngineCollector
from tradepulse.execution.service import run_engine

D = Decimal


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    bus = MemoryTransport()
    h = EngineHarness(settings_for(tmp_path, risk={"max_position": D(100)}), bus)
    await h.start()
    await h.ticks(tick("AAA", 100.0))
    yield h
    await h.stop()
    await bus.close()


def scrape(registry: CollectorRegistry) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


async def test_the_engine_counters_are_read_at_scrape_time(harness: EngineHarness) -> None:
    assert harness.engine is not None
    registry = CollectorRegistry()
    registry.register(EngineCollector(harness.engine))
    before = scrape(registry)
    assert before['engine_orders_total{engine="engine-1",outcome="admitted"}'] == 0
    client = await client_for(harness.bus, harness.settings)
    filled = await client.submit(order("AAA", Side.BUY, 10))
    rejected = await client.submit(order("AAA", Side.BUY, 500))  # over max_position
    again = await client.submit(order("AAA", Side.BUY, 10, coid=filled.client_order_id))
    assert filled.status is OrderStatus.FILLED
    assert rejected.status is OrderStatus.REJECTED
    assert again.status is OrderStatus.FILLED
    await harness.quiet()
    after = scrape(registry)
    engine = 'engine="engine-1"'
    assert after[f'engine_orders_total{{{engine},outcome="received"}}'] == 3
    assert after[f'engine_orders_total{{{engine},outcome="admitted"}}'] == 1
    assert after[f'engine_orders_total{{{engine},outcome="rejected"}}'] == 1
    assert after[f'engine_orders_total{{{engine},outcome="duplicate"}}'] == 1
    assert after[f'engine_orders_total{{{engine},outcome="forwarded"}}'] == 0
    assert after[f"engine_fills_total{{{engine}}}"] == 1
    assert after[f"engine_open_orders{{{engine}}}"] == 0
    assert after[f'engine_backlog{{{engine},kind="unbooked"}}'] == 0
    assert after[f"engine_ledger_available{{{engine}}}"] == 1
    assert after[f'engine_contended_admissions_total{{{engine},kind="turn"}}'] == 0
    await client.close()


async def test_the_engine_service_registers_its_counters_while_it_runs(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, name="svc-1")
    service = asyncio.ensure_future(run_engine(settings, duration=1.0, ready_line=False))
    for _ in range(100):
        if 'engine_orders_total{engine="svc-1",outcome="received"}' in scrape(REGISTRY):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the engine's counters never appeared on the default registry")
    assert await service == 0
    assert not [k for k in scrape(REGISTRY) if 'engine="svc-1"' in k]  # unregistered when the engine stopped
