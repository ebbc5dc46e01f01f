"""The signal engine and service: bar-close signals with stage stamps, the order policy (confidence, cooldown,
position cap, sizing), deterministic client order ids, redelivery safety, live accuracy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pytest

from tradepulse.bus import Consumer, Delivery, MemoryTransport
from tradepulse.bus.streams import SIGNALS, TICKS, order_stream
from tradepulse.config import SignalsConfig, load_settings
from tradepulse.domain import Side, Signal, SignalAction, SubmitOrder, Tick
from tradepulse.features import DEFAULT_FEATURES
from tradepulse.observability.metrics import MODEL_ACCURACY
from tradepulse.signals import FixedNotional, FixedQuantity, LabelSpec, SignalEngine, VolatilityTarget, make_sizing
from tradepulse.signals.service import SignalService

BASE_NS = 1_700_000_000 * 1_000_000_000
WARMUP = DEFAULT_FEATURES.warmup + 1


class ConstantModel:
    """A model that always says the same thing (a stub with real behaviour, not a mock)."""

    def __init__(self, probs: tuple[float, float, float], version: str = "vtest") -> None:
        self.probs = probs
        self.version = version
        self.calls = 0

    def predict_one(self, features: Sequence[float]) -> tuple[float, float, float]:
        assert len(features) == len(DEFAULT_FEATURES.names)
        assert not any(np.isnan(features))
        self.calls += 1
        return self.probs


def _ticks(symbol: str, seconds: int, per_second: int = 4, seed: int = 0, flat: bool = False) -> list[Tick]:
    rng = np.random.default_rng(seed)
    out = []
    price = 100.0
    for k in range(seconds * per_second):
        if not flat:
            price = round(price * float(np.exp(rng.standard_normal() * 0.0005)), 2)
        ts = BASE_NS + k * (1_000_000_000 // per_second)
        out.append(
            Tick(
                symbol=symbol,
                ts_ns=ts,
                price=price,
                size=100.0,
                bid=price - 0.01,
                ask=price + 0.01,
                stamps={"market": ts},
            )
        )
    return out


def _engine(model: ConstantModel, **cfg: object) -> SignalEngine:
    config = SignalsConfig(**{"cooldown_s": 0.0, "min_confidence": 0.5, **cfg})  # type: ignore[arg-type]
    return SignalEngine(model, DEFAULT_FEATURES, config, bar_seconds=1.0, labels=LabelSpec(horizon=5))


def _run(engine: SignalEngine, ticks: list[Tick]) -> tuple[list[Signal], list[SubmitOrder]]:
    signals, orders = [], []
    for tick in ticks:
        s, o = engine.on_tick(tick)
        if s is not None:
            signals.append(s)
        if o is not None:
            orders.append(o)
    return signals, orders


def test_signals_come_on_bar_closes_after_warm_up_with_stage_stamps() -> None:
    model = ConstantModel((0.1, 0.2, 0.7))
    engine = _engine(model, max_position=1e9)
    signals, orders = _run(engine, _ticks("AAPL", 60))
    # 60 bars; the last is still open; the first WARMUP - 1 closed bars only warm the features up
    assert len(signals) == 59 - (WARMUP - 1)
    assert model.calls == len(signals)
    first = signals[0]
    assert first.action is SignalAction.BUY
    assert first.confidence == pytest.approx(0.7)
    assert first.probabilities == (0.1, 0.2, 0.7)
    assert first.model_version == "vtest"
    assert first.ts_ns == BASE_NS + WARMUP * 1_000_000_000  # the end of the bar that produced it
    assert list(first.stamps) == ["market", "consume", "features", "inference", "signal"]
    assert all(b >= a for a, b in zip(list(first.stamps.values())[1:], list(first.stamps.values())[2:], strict=False))
    assert len(orders) == len(signals)
    assert orders[0].client_order_id == f"ml:AAPL:{first.ts_ns}"
    assert orders[0].side is Side.BUY
    assert orders[0].quantity == Decimal(100)
    assert str(orders[0].quantity) == "100"
    assert "order" in orders[0].stamps


def test_low_confidence_and_hold_produce_no_order() -> None:
    _, orders = _run(_engine(ConstantModel((0.3, 0.3, 0.4)), min_confidence=0.6), _ticks("X", 60))
    assert orders == []
    signals, orders = _run(_engine(ConstantModel((0.1, 0.8, 0.1))), _ticks("X", 60))
    assert signals
    assert all(s.action is SignalAction.HOLD for s in signals)
    assert orders == []


def test_cooldown_spaces_orders_and_position_is_capped() -> None:
    engine = _engine(ConstantModel((0.05, 0.05, 0.9)), cooldown_s=5.0, quantity=100, max_position=350)
    _, orders = _run(engine, _ticks("X", 120))
    gaps = np.diff([o.ts_ns for o in orders])
    assert (gaps >= 5_000_000_000).all()
    assert [str(o.quantity) for o in orders] == ["100", "100", "100", "50"]  # capped at +350, on the lot
    assert engine.symbols["X"].position == Decimal(350)
    assert engine.counters.skipped_position > 0


def test_client_order_ids_are_deterministic_and_redelivery_never_orders_twice() -> None:
    ticks = _ticks("MSFT", 70, seed=3)
    _, first = _run(_engine(ConstantModel((0.9, 0.05, 0.05)), max_position=1e9), ticks)
    engine = _engine(ConstantModel((0.9, 0.05, 0.05)), max_position=1e9)
    # every tick delivered twice (at-least-once), and an old tick replayed late
    replayed = [t for tick in ticks for t in (tick, tick)] + ticks[:10]
    _, second = _run(engine, replayed)
    assert [o.client_order_id for o in second] == [o.client_order_id for o in first]
    assert len({o.client_order_id for o in second}) == len(second)
    assert all(o.side is Side.SELL for o in second)
    assert engine.counters.stale_ticks == len(ticks) + 10


@pytest.mark.parametrize(
    ("probs", "flat", "expected"),
    [((0.0, 1.0, 0.0), True, 1.0), ((0.0, 0.0, 1.0), True, 0.0)],
)
def test_live_accuracy_follows_matured_labels(probs: tuple[float, float, float], flat: bool, expected: float) -> None:
    engine = _engine(ConstantModel(probs), max_position=1e9)
    signals, _ = _run(engine, _ticks("X", 80, flat=flat))
    # every signal's label matures `horizon` bars later
    assert engine.matured == len(signals) - 5
    assert engine.live_accuracy == expected


def test_a_strategy_id_that_cannot_form_an_order_id_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match=r"signals\.strategy_id"):
        _engine(ConstantModel((0.1, 0.1, 0.8)), strategy_id="my strategy")


def test_sizing_policies_round_down_to_the_lot() -> None:
    lot = Decimal(1)
    assert FixedQuantity(150.7, lot).quantity(10.0, 0.01) == Decimal(150)
    assert FixedNotional(10_000, lot).quantity(333.0, 0.01) == Decimal(30)
    assert FixedNotional(10_000, Decimal("0.5")).quantity(333.0, 0.01) == Decimal("30")
    assert str(make_sizing(SignalsConfig(sizing="fixed_notional", lot_size=0.01)).quantity(333.0, 0.01)) == "30.03"
    assert VolatilityTarget(100, lot).quantity(100.0, 0.002) == Decimal(500)
    assert VolatilityTarget(100, lot).quantity(100.0, 0.0) == Decimal(0)
    assert VolatilityTarget(100, lot).quantity(100.0, float("nan")) == Decimal(0)
    assert make_sizing(SignalsConfig(sizing="fixed_notional", notional=1000)).quantity(99.0, 0.01) == Decimal(10)


async def test_service_consumes_ticks_and_publishes_signals_and_partitioned_orders() -> None:
    settings = load_settings(
        env={},
        overrides={
            "signals.cooldown_s": 0.0,
            "signals.max_position": 1e9,
            "bus.block_ms": 50,
            "bus.order_partitions": 3,
        },
    )
    bus = MemoryTransport()
    model = ConstantModel((0.05, 0.15, 0.8), version="vsvc")
    engine = SignalEngine(model, DEFAULT_FEATURES, settings.signals, bar_seconds=1.0, labels=LabelSpec(horizon=5))
    service = SignalService(bus, engine, settings, group_start="0")
    received: dict[str, list[object]] = {}

    async def collect(batch: Sequence[Delivery]) -> None:
        for d in batch:
            received.setdefault(d.stream, []).append(d.message)

    streams = [SIGNALS, *{order_stream(s, 3) for s in ("AAPL", "MSFT")}]
    watcher = Consumer(bus, group="watch", name="w", streams=streams, handler=collect, config=settings.bus)
    watch_task = watcher.start()
    await watcher.wait_started()
    await service.start()
    ticks = [t for pair in zip(_ticks("AAPL", 50), _ticks("MSFT", 50, seed=1), strict=True) for t in pair]
    await bus.publish_many(TICKS, ticks)
    expected = 2 * (49 - (WARMUP - 1))
    for _ in range(200):
        if len(received.get(SIGNALS, [])) >= expected and sum(len(v) for v in received.values()) >= 2 * expected:
            break
        await asyncio.sleep(0.02)
    await service.close()
    await watcher.close()
    watch_task.cancel()
    await bus.close()
    assert len(received[SIGNALS]) == expected
    for symbol in ("AAPL", "MSFT"):
        orders = [o for o in received[order_stream(symbol, 3)] if isinstance(o, SubmitOrder) and o.symbol == symbol]
        assert len(orders) == expected // 2
    assert service.published_orders == expected
    assert MODEL_ACCURACY.labels(model_version="vsvc")._value.get() == engine.live_accuracy
