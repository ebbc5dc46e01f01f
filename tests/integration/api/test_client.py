"""The Python client (tradepulse.api.client) against a REAL server: uvicorn on a free port in its own thread and
event loop, over the real Redis bus and PostgreSQL, with an engine executing on the simulated exchange."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
import uvicorn

from tests.integration.api.conftest import api_settings_for
from tests.integration.api.trading_fixtures import trading_settings, wait_marks
from tests.integration.bus_fixtures import make_redis
from tests.support.engine import EngineHarness, tick, until
from tests.support.servers import free_port, redis_server
from tradepulse.api.app import create_app
from tradepulse.api.auth import Scope
from tradepulse.api.client import (
    AsyncClient,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    RetryPolicy,
    Stream,
    StreamEvent,
    Unauthorized,
    ValidationError,
)
from tradepulse.api.services import Services, open_services
from tradepulse.bus import Transport
from tradepulse.bus.streams import SIGNALS
from tradepulse.domain import Fill, OrderAccepted, OrderFilled, OrderStatus, Signal, SignalAction, Tick, TickBatch

pytestmark = pytest.mark.integration

T = TypeVar("T")
D = Decimal
STARTING_CASH = D(1_000_000)
SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS


@dataclass
class LiveServer:
    """The API served by uvicorn in a thread of its own (own event loop), an engine behind it on a private
    Redis, the ledger in this test's PostgreSQL schema."""

    url: str
    loop: asyncio.AbstractEventLoop
    services: Services
    harness: EngineHarness
    bus: Transport

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the server's event loop and return its result."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the server's event loop from another thread (a sync scenario's) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def key(self, scope: Scope, account: str = "default") -> str:
        create = self.services.keys.create(name="client-test", account_id=account, scope=scope.label)
        _, token = await self.run(create)
        return token


@dataclass
class _Thread:
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    server: LiveServer | None = None
    error: BaseException | None = None


def _serve(state: _Thread, redis_url: str, settings_args: tuple[Path, str, str], api: dict[str, Any]) -> None:
    tmp_path, pg_database, pg_schema = settings_args
    engine_settings = trading_settings(tmp_path, redis_url, pg_database, pg_schema)
    api_settings = api_settings_for(tmp_path, redis_url, pg_database, pg_schema, **api)
    settings = msgspec.structs.replace(engine_settings, api=api_settings.api, ml=api_settings.ml)

    async def main() -> None:
        bus = make_redis(redis_url)
        harness = EngineHarness(settings, bus)
        try:
            await harness.start()
            await harness.ticks(tick("AAA", 100.0), tick("BBB", 50.0))
            async with open_services(settings) as services:
                port = free_port()
                config = uvicorn.Config(
                    create_app(services),
                    host="127.0.0.1",
                    port=port,
                    lifespan="off",
                    log_level="warning",
                    ws="websockets-sansio",
                )
                server = uvicorn.Server(config)
                task = asyncio.ensure_future(server.serve())
                await until(lambda: server.started or task.done(), 10, "uvicorn started")
                assert not task.done(), "uvicorn did not start"
                loop = asyncio.get_running_loop()
                state.server = LiveServer(f"http://127.0.0.1:{port}", loop, services, harness, bus)
                state.ready.set()
                await asyncio.to_thread(state.stop.wait)
                server.should_exit = True
                await asyncio.wait_for(task, 15)
        finally:
            await harness.stop()
            await bus.close()

    try:
        asyncio.run(main())
    except BaseException as exc:  # reported to the test by the fixture
        state.error = exc
        state.ready.set()


@pytest.fixture
def server_api() -> dict[str, Any]:
    """ApiConfig overrides for the server under test (parametrize to change them)."""
    return {"order_timeout_s": 5.0, "ws_heartbeat_s": 30.0}


@pytest.fixture
async def live(
    tmp_path: Path, pg_database: str, pg_schema: str, server_api: dict[str, Any]
) -> AsyncIterator[LiveServer]:
    with redis_server(appendonly=False) as redis:
        state = _Thread()
        thread = threading.Thread(
            target=_serve, args=(state, redis.url, (tmp_path, pg_database, pg_schema), server_api), daemon=True
        )
        thread.start()
        try:
            await asyncio.to_thread(state.ready.wait, 60)
            if state.error is not None:
                raise state.error
            assert state.server is not None, "the server did not start within 60 s"
            yield state.server
        finally:
            state.stop.set()
            await asyncio.to_thread(thread.join, 30)
        assert not thread.is_alive(), "the server thread did not stop"
        if state.error is not None:
            raise state.error


class Recording(httpx.BaseTransport):
    """A real HTTP transport that records each request and can lose answers: ``lose`` answers to POSTs are
    dropped AFTER the server handled them (a read timeout, as a dropped connection would look);
    ``refuse`` POSTs never reach it (a connect error)."""

    def __init__(self, *, lose: int = 0, refuse: int = 0) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = lose
        self.refuse = refuse
        self.requests: list[tuple[str, str, bytes]] = []
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append((request.method, request.url.path, body))
        if request.method == "POST" and self.refuse:
            self.refuse -= 1
            raise httpx.ConnectError("refused (test)", request=request)
        response = self.inner.handle_request(request)
        self.statuses.append(response.status_code)
        if request.method == "POST" and self.lose:
            self.lose -= 1
            response.read()
            response.close()
            raise httpx.ReadTimeout("answer lost (test)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()

    def posted_ids(self) -> list[str]:
        return [json.loads(body)["client_order_id"] for method, _, body in self.requests if method == "POST"]


async def test_submit_fills_and_the_same_id_again_returns_the_same_order(live: LiveServer) -> None:
    key = await live.key(Scope.TRADE)

    def scenario() -> None:
        with Client(live.url, key) as api:
            first = api.submit_order("AAA", "BUY", D("10"), time_in_force="IOC")
            order = first.order
            assert first.outcome == "created"
            assert order.client_order_id.startswith("tp-")
            assert (order.status, order.filled_quantity, order.avg_fill_price) == (
                OrderStatus.FILLED,
                D("10"),
                D("100.01"),
            )
            assert [(f.quantity, f.price) for f in first.fills] == [(D("10"), D("100.01"))]
            assert isinstance(order.fees, Decimal)

            again = api.submit_order("AAA", "BUY", D("10"), time_in_force="IOC", client_order_id=order.order_id)
            assert again.outcome == "existing"
            assert again.order.order_id == order.order_id
            assert again.order.status is OrderStatus.FILLED
            assert again.order.filled_quantity == D("10")

            got = api.get_order(order.order_id)
            assert (got.order.status, [f.fill_id for f in got.fills]) == (
                OrderStatus.FILLED,
                [f.fill_id for f in first.fills],
            )
            assert [o.order_id for o in api.iter_orders()] == [order.order_id], "one order, not two"
            assert [f.order_id for f in api.order_fills(order.order_id)] == [order.order_id]
            position = api.position("AAA")
            assert (position.quantity, position.avg_price) == (D("10"), D("100.01"))
            assert [p.symbol for p in api.positions() if p.quantity] == ["AAA"]
            account = api.account()
            assert account.cash == STARTING_CASH - D("1000.10") - got.order.fees
            assert account.equity == account.cash + account.positions_value

            with pytest.raises(ValidationError) as never_valid:
                api.submit_order("AAA", "BUY", 1, time_in_force="IOC", valid_for_ms=0)
            assert never_valid.value.field == "body.valid_for_ms"
            timely = api.submit_order("AAA", "SELL", D("10"), time_in_force="IOC", valid_for_ms=5_000)
            assert (timely.outcome, timely.order.status) == ("created", OrderStatus.FILLED)

    await asyncio.to_thread(scenario)
    assert live.harness.venue is not None
    assert live.harness.venue.fills == 2, "the repeated submit executed nothing"


async def test_a_lost_answer_is_retried_with_the_same_client_order_id(live: LiveServer) -> None:
    key = await live.key(Scope.TRADE)

    def scenario() -> None:
        transport = Recording(lose=1)
        with Client(live.url, key, transport=transport) as api:
            answer = api.submit_order("AAA", "BUY", 3, time_in_force="IOC")
            ids = transport.posted_ids()
            assert ids == [answer.order.order_id] * 2, ids
            assert transport.statuses == [201, 200], "the first attempt executed; the retry found it"
            assert answer.outcome == "existing"
            assert (answer.order.status, answer.order.filled_quantity) == (OrderStatus.FILLED, D("3"))
            assert [o.order_id for o in api.iter_orders()] == [answer.order.order_id]

    await asyncio.to_thread(scenario)


async def test_retries_are_bounded_and_the_error_carries_the_id_to_retry_with(live: LiveServer) -> None:
    key = await live.key(Scope.TRADE)

    def scenario() -> None:
        transport = Recording(refuse=10)
        with Client(live.url, key, transport=transport, retry=RetryPolicy(retries=2)) as api:
            with pytest.raises(ConnectionFailed) as failed:
                api.submit_order("AAA", "BUY", 1, client_order_id="retry-me")
            assert failed.value.client_order_id == "retry-me"
            assert transport.posted_ids() == ["retry-me"] * 3
            assert api.orders().orders == []
            transport.refuse = 0
            later = api.submit_order("AAA", "BUY", 1, time_in_force="IOC", client_order_id="retry-me")
            assert (later.outcome, later.order.status) == ("created", OrderStatus.FILLED)

    await asyncio.to_thread(scenario)


async def test_iter_orders_and_iter_fills_walk_every_page(live: LiveServer) -> None:
    key = await live.key(Scope.TRADE)
    async with AsyncClient(live.url, key) as api:
        submitted = []
        for i in range(7):
            answer = await api.submit_order("BBB", "BUY", i + 1, time_in_force="IOC", client_order_id=f"page-{i}")
            assert answer.order.status is OrderStatus.FILLED
            submitted.append(answer.order.order_id)
        first = await api.orders(limit=3)
        assert [o.order_id for o in first.orders] == submitted[:3]
        assert first.next is not None
        assert [o.order_id async for o in api.iter_orders(limit=3)] == submitted
        assert [o.order_id async for o in api.iter_orders(limit=3, order="desc")] == submitted[::-1]
        assert [o.order_id async for o in api.iter_orders(limit=2, status=["CANCELED"])] == []
        fills = [f async for f in api.iter_fills(limit=2)]
        assert sorted(f.order_id for f in fills) == submitted, "booking order may differ from submission order"
        assert len({f.fill_id for f in fills}) == 7
        assert sum((f.quantity for f in fills), D(0)) == D(28)
        assert (await api.position("BBB")).quantity == D(28)


async def test_cancel_rebalance_market_risk_and_models_through_the_client(live: LiveServer) -> None:
    trade, admin = await live.key(Scope.TRADE), await live.key(Scope.ADMIN, account="ops")

    def scenario() -> None:
        with Client(live.url, trade) as api, Client(live.url, admin) as ops:
            resting = api.submit_order(
                "AAA", "BUY", 10, order_type="LIMIT", limit_price=D("95.00"), time_in_force="GTC", client_order_id="r-1"
            )
            assert (resting.outcome, resting.order.status, resting.order.limit_price) == (
                "created",
                OrderStatus.ACCEPTED,
                D("95"),
            )
            canceled = api.cancel_order("r-1")
            assert (canceled.outcome, canceled.order.status) == ("done", OrderStatus.CANCELED)
            live.run_sync(live.harness.quiet())  # the cancel is booked
            with pytest.raises(Conflict):
                api.cancel_order("r-1")
            assert [o.order_id for o in ops.iter_orders(account="default")] == ["r-1"], "admins name the account"

            api.submit_order("AAA", "BUY", 100, time_in_force="IOC", client_order_id="rb-seed")
            live.run_sync(live.harness.quiet())
            live.run_sync(wait_marks(live.services.ledger))  # type: ignore[arg-type]
            preview = api.rebalance_preview({"AAA": D("0.005"), "BBB": "0.01"}, rebalance_id="cli1")
            assert {o.client_order_id: o.side.value for o in preview.orders} == {
                "rb-cli1-S-AAA": "SELL",
                "rb-cli1-B-BBB": "BUY",
            }
            done = api.rebalance_execute({"AAA": D("0.005"), "BBB": "0.01"}, "cli1")
            assert done.outcome == "executed"
            assert {o.order_id: o.status for o in done.orders} == {
                "rb-cli1-S-AAA": OrderStatus.FILLED,
                "rb-cli1-B-BBB": OrderStatus.FILLED,
            }
            assert api.rebalance_execute({"AAA": D("0.005"), "BBB": "0.01"}, "cli1").outcome == "replayed"
            by_quantity = api.rebalance_preview({"AAA": 90, "BBB": 30}, target_unit="quantity")
            assert {p.symbol: p.quantity_after for p in by_quantity.positions} == {"AAA": D(90), "BBB": D(30)}
            with pytest.raises(ValidationError) as bad:
                api.rebalance_preview({"AAA": "NaN"})
            assert bad.value.field == "body.targets.AAA"

            symbol = f"Q{uuid.uuid4().hex[:8].upper()}"  # the tick store is shared by the tests: a symbol of ours
            t0 = (time.time_ns() // MINUTE_NS - 10) * MINUTE_NS
            rows = [
                Tick(symbol=symbol, ts_ns=t0 + i * SECOND_NS, price=100.0 + i, size=2.0, bid=99.5 + i, ask=100.5 + i)
                for i in range(90)
            ]
            live.run_sync(live.services.ticks.write(TickBatch.from_ticks(rows)))
            quote = api.quote(symbol)
            assert (quote.ts_ns, quote.price, quote.bid, quote.ask) == (t0 + 89 * SECOND_NS, 189.0, 188.5, 189.5)
            assert symbol in [q.symbol for q in api.quotes()]
            window = api.ticks(symbol, start_ns=t0 + 5 * SECOND_NS, end_ns=t0 + 50 * SECOND_NS, limit=3)
            assert [t.price for t in window.ticks] == [105.0, 106.0, 107.0]
            bars = api.bars(symbol, "1m", start_ns=t0, end_ns=t0 + 2 * MINUTE_NS).bars
            assert [(b.start_ns, b.open, b.close, b.trades) for b in bars] == [
                (t0, 100.0, 159.0, 60),
                (t0 + MINUTE_NS, 160.0, 189.0, 30),
            ]
            with pytest.raises(NotFound):
                api.quote("ZZZ9")

            assert api.risk_limits().max_position == D(5_000)
            assert api.models().models == []
            with pytest.raises(NotFound):
                api.promoted_model()
            halted = ops.set_trading_state("HALTED", "client drill")
            assert (halted.state.value, halted.reason) == ("HALTED", "client drill")
            assert api.trading_state().state.value == "HALTED"
            ops.set_trading_state("ACTIVE", "drill over")
            assert api.health().status == "ok"
            assert api.ready().status == "ready"
            assert api.signal("AAA") is None
            assert api.signal_history("AAA") == []

    await asyncio.to_thread(scenario)


async def test_errors_map_to_their_exceptions_with_the_field(live: LiveServer) -> None:
    trade, read = await live.key(Scope.TRADE), await live.key(Scope.READ)
    other = await live.key(Scope.TRADE, account="acct-b")
    async with AsyncClient(live.url, trade) as api, AsyncClient(live.url, read) as reader:
        with pytest.raises(NotFound) as missing:
            await api.get_order("no-such-order")
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        with pytest.raises(Forbidden) as forbidden:
            await reader.submit_order("AAA", "BUY", 1)
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
        assert forbidden.value.client_order_id is not None
        with pytest.raises(ValidationError) as invalid:
            await api.submit_order("AAA", "BUY", "0")
        assert (invalid.value.status, invalid.value.field) == (422, "body.quantity")
        with pytest.raises(ValidationError) as bad_query:
            await api.orders(limit=0)
        assert bad_query.value.field == "query.limit"
        with pytest.raises(Forbidden):
            await api.set_trading_state("HALTED", "not mine to set")
        await api.submit_order("AAA", "BUY", 1, time_in_force="IOC", client_order_id="taken")
        async with AsyncClient(live.url, other) as theirs:
            with pytest.raises(Conflict) as conflict:
                await theirs.submit_order("AAA", "BUY", 1, client_order_id="taken")
            assert conflict.value.field == "body.client_order_id"
            with pytest.raises(NotFound):
                await theirs.get_order("taken")
        async with AsyncClient(live.url, "tp_notakey_000") as stranger:
            with pytest.raises(Unauthorized) as unauthorized:
                await stranger.signals()
            assert unauthorized.value.status == 401
        with pytest.raises(TypeError, match="quantity: pass a Decimal"):
            await api.submit_order("AAA", "BUY", 1.5)  # type: ignore[arg-type]
    assert [r.order.client_order_id for r in await live.run(live.services.ledger.orders())] == ["taken"]


@pytest.mark.parametrize("server_api", [{"rate_per_s": 1.0, "rate_burst": 2}])
async def test_429_raises_rate_limited_with_retry_after_or_waits_it_out(live: LiveServer) -> None:
    key = await live.key(Scope.READ)

    def scenario() -> None:
        with Client(live.url, key, retry=RetryPolicy(rate_limit_retries=0)) as api:
            api.signals()
            api.signals()
            with pytest.raises(RateLimited) as limited:
                api.signals()
            assert (limited.value.status, limited.value.code) == (429, "rate_limited")
            assert limited.value.retry_after is not None
            assert limited.value.retry_after >= 1
        # the bucket is empty: a client that honours Retry-After gets a 429, waits, and then its answer
        transport = Recording()
        with Client(live.url, key, transport=transport, retry=RetryPolicy(rate_limit_retries=1)) as patient:
            assert patient.signals() == []
        assert transport.statuses == [429, 200]

    await asyncio.to_thread(scenario)


async def take(stream: Stream, n: int, timeout: float = 10.0) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await anext(stream))
    return out


async def test_stream_receives_quotes_signals_and_order_updates(live: LiveServer) -> None:
    key = await live.key(Scope.TRADE)
    async with AsyncClient(live.url, key) as api, api.stream(["quotes", "signals", "orders"], ["AAA"]) as stream:
        assert stream.welcome is not None
        assert stream.welcome.account_id == "default"
        await live.run(live.harness.ticks(tick("BBB", 51.0), tick("AAA", 101.0)))
        (quote,) = await take(stream, 1)
        assert (quote.channel, quote.symbol) == ("quotes", "AAA"), "BBB is not subscribed"
        assert isinstance(quote.data, Tick)
        assert quote.data.ask == 101.01

        signal = Signal(
            symbol="AAA", action=SignalAction.BUY, confidence=0.75, model_version="v7", ts_ns=time.time_ns()
        )
        await live.run(live.bus.publish(SIGNALS, signal))
        (event,) = await take(stream, 1)
        assert event.channel == "signals"
        assert isinstance(event.data, Signal)
        got = event.data
        assert (got.action, got.confidence, got.model_version, got.ts_ns) == (
            SignalAction.BUY,
            0.75,
            "v7",
            signal.ts_ns,
        )

        subscribed = await stream.subscribe(["fills"], ["AAA"])
        assert (subscribed.type, subscribed.channels, subscribed.symbols) == ("subscribed", ["fills"], ["AAA"])
        answer = await api.submit_order("AAA", "BUY", 5, time_in_force="IOC", client_order_id="live-1")
        accepted, filled, fill = await take(stream, 3)
        assert isinstance(accepted.data, OrderAccepted)
        assert accepted.data.client_order_id == "live-1"
        assert isinstance(filled.data, OrderFilled)
        assert filled.account_id == "default"
        assert fill.channel == "fills"
        assert isinstance(fill.data, Fill)
        assert (fill.data.price, fill.data.quantity) == (answer.fills[0].price, D(5))

        with pytest.raises(ValidationError) as invalid:
            await stream.subscribe(["trades"])
        assert invalid.value.field == "message.channels.0"
        await stream.unsubscribe(["quotes"], ["AAA"])
        await live.run(live.harness.ticks(tick("AAA", 102.0)))
        await live.run(live.bus.publish(SIGNALS, msgspec.structs.replace(signal, ts_ns=time.time_ns())))
        (after,) = await take(stream, 1)
        assert after.channel == "signals", "no quote after unsubscribing"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_stream_refuses_a_bad_key_and_iterates_without_a_with_block(live: LiveServer) -> None:
    async with AsyncClient(live.url, "tp_notakey_000") as stranger:
        with pytest.raises(Unauthorized, match="invalid API key"):
            async with stranger.stream(["quotes"]):
                pass
    key = await live.key(Scope.READ)
    async with AsyncClient(live.url, key) as api:
        seen: list[StreamEvent] = []
        publisher = asyncio.ensure_future(_publish_ticks_until(live, seen))
        try:
            async for event in api.stream(["quotes"], ["BBB"]):
                seen.append(event)
                break
        finally:
            await publisher
        assert seen[0].symbol == "BBB"
        assert isinstance(seen[0].data, Tick)


@pytest.mark.parametrize("server_api", [{"ws_heartbeat_s": 0.2}])
async def test_heartbeats_keep_a_quiet_stream_open(live: LiveServer) -> None:
    key = await live.key(Scope.READ)
    async with AsyncClient(live.url, key) as api, api.stream(["quotes"], ["AAA"]) as stream:
        assert stream.welcome is not None
        assert stream.welcome.heartbeat_s == 0.2
        # several times the client's silence limit (3 heartbeats) with nothing but heartbeats on the wire
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 1.5)
        await live.run(live.harness.ticks(tick("AAA", 103.0)))
        (quote,) = await take(stream, 1)
        assert isinstance(quote.data, Tick)
        assert quote.data.ask == 103.01


async def _publish_ticks_until(live: LiveServer, seen: list[StreamEvent]) -> None:
    """Publish BBB ticks until one was seen (the stream subscribes when first iterated)."""
    price = 50.0
    async with asyncio.timeout(10):
        while not seen:
            price += 0.5
            await live.run(live.harness.ticks(tick("BBB", price)))
            await asyncio.sleep(0.05)


def docs_example() -> str:
    """Return the Python client example of docs/api.md (the first python block of its "Python client" section)."""
    text = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    section = text.split("\n## Python client\n", 1)[1]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


async def test_the_docs_example_runs_against_a_real_server(live: LiveServer) -> None:
    key = await live.key(Scope.TRADE)
    code = docs_example().replace('"AAPL"', '"AAA"')  # the test engine trades AAA and BBB
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPULSE_")}
    env.update({"TRADEPULSE_URL": live.url, "TRADEPULSE_KEY": key})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    lines = out.decode().splitlines()
    assert process.returncode == 0, out.decode()[-3000:]
    assert lines[0] == "ready"
    created = lines[1].split()
    assert (created[0], created[2], created[3], created[4]) == ("created", "FILLED", "100.01", "1")
    assert lines[2:6] == [
        "existing True",
        "1 orders",
        "10 " + lines[4].split()[1],
        "422 validation_error body.quantity",
    ]
    assert lines[6:] == ["orders OrderAccepted", "orders OrderFilled", "fills Fill"]
