"""Real engine processes on a private Redis and the shared PostgreSQL: three engines share the partitions, kill -9
mid-burst and restart, SIGTERM drains and exits 0. After each: the fault-test invariants hold."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.integration.bus_fixtures import make_redis
from tests.support.engine import order
from tests.support.processes import EngineProcess, check_invariants, engine_env, tick_feed
from tests.support.servers import free_port, redis_server
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.bus.streams import order_streams
from tradepulse.client import OrderClient
from tradepulse.config import DatabaseConfig
from tradepulse.domain import Side, SubmitOrder
from tradepulse.storage.ledger_postgres import PostgresLedgerStore

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


@pytest.fixture
async def redis_private() -> AsyncIterator[str]:
    with redis_server(appendonly=True) as server:
        yield server.url


def burst(n: int, seed: int, prefix: str) -> list[SubmitOrder]:
    rng = random.Random(seed)
    return [
        order(rng.choice(SYMBOLS), rng.choice((Side.BUY, Side.SELL)), rng.randint(1, 50), prefix=prefix)
        for _ in range(n)
    ]


async def publish_burst(bus: RedisTransport, cmds: list[SubmitOrder], partitions: int = 4) -> None:
    from tradepulse.bus.streams import order_stream

    by_stream: dict[str, list[SubmitOrder]] = {}
    for cmd in cmds:
        by_stream.setdefault(order_stream(cmd.symbol, partitions), []).append(cmd)
    for stream, batch in by_stream.items():
        for start in range(0, len(batch), 1000):
            await bus.publish_many(stream, batch[start : start + 1000])


async def wait_all_terminal(store: PostgresLedgerStore, coids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        records = await store.get_orders(list(coids))
        open_ = [c for c in coids if c not in records or records[c].order.status.value in ("NEW", "UNKNOWN")]
        if not open_:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(open_)} orders not resolved after {timeout} s, e.g. {open_[:3]}")
        await asyncio.sleep(0.2)


async def pending_total(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        total = 0
        for stream in order_streams(4):
            if await client.exists(stream):
                total += int((await client.xpending(stream, "engine"))["pending"])
        return total
    finally:
        await client.aclose()


async def test_three_engine_processes_share_the_partitions_and_handle_each_order_once(
    tmp_path: Path, redis_private: str, pg_database: str, pg_schema: str
) -> None:
    env = engine_env(redis_private, pg_database, pg_schema, tmp_path)
    engines = [EngineProcess(f"engine-{i}", env, tmp_path) for i in (1, 2, 3)]
    bus = make_redis(redis_private)
    store = PostgresLedgerStore(DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema))
    try:
        async with tick_feed(bus):
            for engine in engines:
                engine.start()
            await asyncio.sleep(0.5)  # first quotes
            client = OrderClient(bus, partitions=4, block_ms=100)
            await client.start()
            cmds = burst(1500, seed=3, prefix="three-")
            dups = random.Random(4).sample(cmds, 150)  # redelivered / duplicated submits
            results = await client.submit_many([*cmds, *dups], timeout=60)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, errors[:3]
            await store.open()
            await wait_all_terminal(store, {c.client_order_id for c in cmds}, 30)
            await asyncio.sleep(1.0)  # bookings settle
            statuses = await check_invariants(store, tmp_path / "venue", {c.client_order_id for c in cmds})
            assert statuses.get("FILLED", 0) == 1500
            journals = list((tmp_path / "venue").glob("*.journal"))
            assert len(journals) == 3, "every engine took a share of the work"
            assert await pending_total(redis_private) == 0
            await client.close()
        assert [engine.terminate() for engine in engines] == [0, 0, 0]
    finally:
        for engine in engines:
            engine.kill()
        await store.close()
        await bus.close()


@pytest.mark.parametrize("seed", [1])
async def test_kill_9_mid_burst_then_restart_loses_and_duplicates_nothing(
    tmp_path: Path, redis_private: str, pg_database: str, pg_schema: str, seed: int
) -> None:
    await _kill_test(tmp_path, redis_private, pg_database, pg_schema, seed, 10_000)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
async def test_kill_9_mid_burst_more_seeds(
    tmp_path: Path, redis_private: str, pg_database: str, pg_schema: str, seed: int
) -> None:
    await _kill_test(tmp_path, redis_private, pg_database, pg_schema, seed, 10_000)


async def _kill_test(tmp_path: Path, redis_url: str, pg_database: str, pg_schema: str, seed: int, n: int) -> None:
    env = engine_env(redis_url, pg_database, pg_schema, tmp_path)
    engine = EngineProcess("engine-k", env, tmp_path)
    bus = make_redis(redis_url)
    store = PostgresLedgerStore(DatabaseConfig(backend="postgres", url=pg_database, schema=pg_schema))
    rng = random.Random(seed)
    try:
        async with tick_feed(bus):
            engine.start()
            await asyncio.sleep(0.5)
            cmds = burst(n, seed, prefix=f"k{seed}-")
            await publish_burst(bus, cmds)
            await store.open()
            kill_after = rng.randint(n // 10, n // 2)  # orders admitted before the kill
            deadline = time.monotonic() + 60
            while len(await store.get_orders([c.client_order_id for c in cmds[:kill_after]])) < kill_after // 2:
                assert time.monotonic() < deadline, "the engine made no progress"
                await asyncio.sleep(0.05)
            engine.kill()
            # duplicates of what may or may not have been handled arrive while it is down
            await publish_burst(bus, rng.sample(cmds, 200))
            engine.start()
            await wait_all_terminal(store, {c.client_order_id for c in cmds}, 90)
            await asyncio.sleep(1.5)
            statuses = await check_invariants(store, tmp_path / "venue", {c.client_order_id for c in cmds})
            assert sum(statuses.values()) == n
            assert await pending_total(redis_url) == 0
        assert engine.terminate() == 0
    finally:
        engine.kill()
        await store.close()
        await bus.close()


async def test_an_engine_reaches_redis_over_its_unix_socket(tmp_path: Path, pg_database: str, pg_schema: str) -> None:
    """``unix://`` Redis URLs work end to end: the engine, the client and the lean hot-path connections."""
    with redis_server() as server:
        url = f"unix://{server.socket}?db=0"
        engine = EngineProcess("engine-unix", engine_env(url, pg_database, pg_schema, tmp_path), tmp_path)
        bus = make_redis(url)
        try:
            async with tick_feed(bus):
                engine.start()
                await asyncio.sleep(0.5)  # first quotes
                client = OrderClient(bus, partitions=4, block_ms=100)
                await client.start()
                results = await client.submit_many(burst(50, seed=5, prefix="unix-"), timeout=30)
                assert [r.status.value for r in results if not isinstance(r, BaseException)] == ["FILLED"] * 50
                await client.close()
            assert engine.terminate() == 0
        finally:
            engine.kill()
            await bus.close()


def test_sigterm_while_the_engine_waits_for_redis_exits_0(tmp_path: Path, pg_database: str, pg_schema: str) -> None:
    """An engine started before Redis answers keeps retrying (and says so); SIGTERM still stops it, at once."""
    env = engine_env(f"redis://127.0.0.1:{free_port()}/0", pg_database, pg_schema, tmp_path)
    log = tmp_path / "engine.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradepulse.cli", "engine", "--name", "engine-waiting"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while b"unavailable" not in log.read_bytes():  # started, and retrying
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the engine never said Redis was unavailable"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert "stopped before it had started" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
