"""The lean Redis connections of the bus's hot path (tradepulse.bus.resp), against a real Redis and against
servers that misbehave (one that never answers, one that hangs up)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlparse

import hiredis
import pytest

from tests.integration.bus_fixtures import make_redis
from tests.support.servers import redis_server
from tradepulse.bus import BusUnavailable, GroupMissing
from tradepulse.bus.redis_streams import RedisTransport
from tradepulse.bus.resp import FastRedis, reply_error
from tradepulse.config import BusConfig, RedisConfig
from tradepulse.domain import Tick

pytestmark = pytest.mark.integration


def fast_for(url: str, timeout: float = 2.0) -> FastRedis:
    parsed = urlparse(url)
    db = int(parsed.path.lstrip("/") or 0)
    return FastRedis(host=parsed.hostname or "127.0.0.1", port=parsed.port or 6379, db=db, timeout=timeout)


@pytest.fixture
async def fast(redis_url: str) -> AsyncIterator[FastRedis]:
    client = fast_for(redis_url)
    yield client
    await client.close()


@pytest.fixture
def key() -> str:
    return f"test:resp:{uuid.uuid4().hex[:12]}"


async def test_concurrent_pipelines_each_get_their_own_replies(fast: FastRedis, key: str) -> None:
    async def one(i: int) -> list[object]:
        return await fast.execute([("SET", f"{key}:{i}", i), ("GET", f"{key}:{i}"), ("INCRBY", f"{key}:n", 1)])

    results = await asyncio.gather(*(one(i) for i in range(300)))
    assert [r[:2] for r in results] == [[b"OK", str(i).encode()] for i in range(300)]
    assert sorted(int(r[2]) for r in results) == list(range(1, 301))  # type: ignore[call-overload]
    await fast.execute([("DEL", f"{key}:n", *(f"{key}:{i}" for i in range(300)))])


async def test_error_replies_are_values_and_the_connection_stays_usable(fast: FastRedis, key: str) -> None:
    replies = await fast.execute([("SET", key, "x"), ("INCR", key), ("GET", key)])
    assert replies[0] == b"OK"
    assert isinstance(replies[1], hiredis.ReplyError)
    assert "not an integer" in (reply_error(replies[1]) or "")
    assert replies[2] == b"x"
    assert await fast.call("DEL", key) == 1


async def test_transport_maps_error_replies(redis_url: str, key: str) -> None:
    transport = make_redis(redis_url)
    try:
        with pytest.raises(GroupMissing):
            await transport.read("no-such-group", "c", [key], count=10, block_ms=0)
        with pytest.raises(GroupMissing):
            await transport.read("no-such-group", "c", [key], count=10, block_ms=50)
    finally:
        await transport.close()


async def test_a_cancelled_blocking_read_does_not_poison_later_reads(fast: FastRedis, key: str) -> None:
    read = asyncio.ensure_future(fast.blocking([("XREAD", "BLOCK", 5_000, "STREAMS", key, "$")], 5.0))
    await asyncio.sleep(0.1)
    read.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await read
    # the cancelled read's connection (still blocked in Redis) was closed, not reused
    entry = await fast.call("XADD", key, "*", "d", "1")
    (reply,) = await fast.blocking([("XREAD", "BLOCK", 1_000, "STREAMS", key, "0")], 1.0)
    assert reply[0][1][0][0] == entry
    assert await fast.call("DEL", key) == 1


async def test_blocking_reads_run_side_by_side(fast: FastRedis, key: str) -> None:
    reads = [
        asyncio.ensure_future(fast.blocking([("XREAD", "BLOCK", 2_000, "STREAMS", f"{key}:{i}", "$")], 2.0))
        for i in range(3)
    ]
    await asyncio.sleep(0.1)
    for i in range(3):
        await fast.call("XADD", f"{key}:{i}", "*", "d", str(i))
    replies = await asyncio.wait_for(asyncio.gather(*reads), 1.5)
    assert [r[0][0][0] for r in replies] == [f"{key}:{i}".encode() for i in range(3)]
    await fast.call("DEL", *(f"{key}:{i}" for i in range(3)))


@contextlib.contextmanager
def silent_server(hang_up: bool) -> Iterator[int]:
    """A TCP server on a free port that accepts connections and then never answers (or hangs up at once)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = False

    def serve() -> None:
        while not stop:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if hang_up:
                conn.close()
            else:
                accepted.append(conn)

    import threading

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop = True
        thread.join(2)
        listener.close()
        for conn in accepted:
            conn.close()


async def test_a_server_that_never_answers_times_out_and_the_next_call_reconnects() -> None:
    with silent_server(hang_up=False) as port:
        client = FastRedis(port=port, timeout=0.2)
        try:
            with pytest.raises(TimeoutError):
                await client.call("PING")
            first = client._shared
            with pytest.raises(TimeoutError):
                await client.call("PING")
            assert client._shared is not first  # the timed-out connection was closed and replaced
        finally:
            await client.close()


async def test_a_server_that_hangs_up_fails_the_call_as_unavailable(redis_url: str) -> None:
    with silent_server(hang_up=True) as port:
        client = FastRedis(port=port, timeout=1.0)
        try:
            with pytest.raises(ConnectionError):
                await client.call("PING")
        finally:
            await client.close()
    transport = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(BusUnavailable):
            await transport.publish_raw("s", b"x")
        with pytest.raises(BusUnavailable):
            await transport.read("g", "c", ["s"], count=1, block_ms=10)
    finally:
        await transport.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_lean_connections_take_the_pools_server_and_tls_settings() -> None:
    import ssl

    import redis.asyncio as aioredis

    plain = FastRedis.from_pool(aioredis.ConnectionPool.from_url("redis://:secret@10.1.2.3:6390/4"))
    assert (plain.host, plain.port, plain.db, plain.password, plain.ssl) == ("10.1.2.3", 6390, 4, "secret", None)
    tls = FastRedis.from_pool(aioredis.ConnectionPool.from_url("rediss://redis.example:6380/0?ssl_cert_reqs=none"))
    assert isinstance(tls.ssl, ssl.SSLContext)
    assert tls.ssl.verify_mode == ssl.CERT_NONE
    strict = FastRedis.from_pool(aioredis.ConnectionPool.from_url("rediss://redis.example:6380/0"))
    assert strict.ssl is not None
    assert strict.ssl.verify_mode == ssl.CERT_REQUIRED


async def test_the_transport_works_over_a_unix_socket() -> None:
    """``unix://`` URLs: the lean connections and redis-py's pool both reach Redis over its Unix socket."""
    with redis_server() as server:
        url = f"unix://{server.socket}?db=2"
        bus = RedisTransport.from_config(RedisConfig(url=url), BusConfig(block_ms=50))
        try:
            await bus.ping()
            stream = "test:unix"
            await bus.publish_many(
                stream,
                [
                    Tick(symbol="AAA", ts_ns=n, price=1.0, size=1.0, bid=0.99, ask=1.01, bid_size=1, ask_size=1)
                    for n in range(3)
                ],
            )
            deliveries, _ = await bus.tail(stream, "0", count=10, block_ms=50)
            assert [d.message.ts_ns for d in deliveries] == [0, 1, 2]  # type: ignore[attr-defined]
            assert await bus.client.dbsize() == 1  # in the database the URL named
        finally:
            await bus.close()
