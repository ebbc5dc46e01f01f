from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tradepulse.bus import Codec, DecodeError
from tradepulse.domain import (
    MESSAGE_TYPES,
    Fill,
    OrderFilled,
    Side,
    Signal,
    SignalAction,
    SubmitOrder,
    Tick,
    stage_durations,
    stamp,
)
from tradepulse.observability.latency import LatencyHistogram, StageLatency


def test_every_message_type_round_trips_through_the_codec() -> None:
    codec = Codec()
    fill = Fill(
        fill_id="f",
        client_order_id="c",
        symbol="A",
        side=Side.BUY,
        price=Decimal("1.23"),
        quantity=Decimal(2),
    )
    samples = [
        Tick(symbol="A", ts_ns=1, price=1.0, size=1.0, bid=0.9, ask=1.1, stamps={"market": 1}),
        Signal(symbol="A", action=SignalAction.BUY, confidence=0.7, model_version="v1", ts_ns=2),
        SubmitOrder(client_order_id="c", symbol="A", side=Side.SELL, quantity=Decimal("0.5")),
        OrderFilled(client_order_id="c", fill=fill),
    ]
    for message in samples:
        assert codec.decode(codec.encode(message)) == message
    assert {type(m) for m in samples} <= set(MESSAGE_TYPES)


def test_decimals_travel_exactly() -> None:
    codec = Codec()
    cmd = SubmitOrder(client_order_id="c", symbol="A", side=Side.BUY, quantity=Decimal("0.10000000000000000001"))
    assert codec.decode(codec.encode(cmd)).quantity == Decimal("0.10000000000000000001")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        msgspec.msgpack.encode({"type": "Nope"}),
        msgspec.msgpack.encode({"type": "Tick", "symbol": "A"}),
        msgspec.msgpack.encode(
            {"type": "Tick", "symbol": "A", "ts_ns": 1, "price": -1.0, "size": 1.0, "bid": 1.0, "ask": 1.0}
        ),
        msgspec.msgpack.encode(
            {
                "type": "SubmitOrder",
                "client_order_id": "bad id!",
                "symbol": "A",
                "side": "BUY",
                "quantity": "1",
            }
        ),
    ],
)
def test_undecodable_payloads_raise_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        Codec().decode(payload)


def test_stamps_give_stage_durations_in_order() -> None:
    tick = Tick(symbol="A", ts_ns=1, price=1.0, size=1.0, bid=0.9, ask=1.1, stamps={"market": 100})
    later = stamp(stamp(tick, "consume", 250), "features", 400)
    assert tick.stamps == {"market": 100}  # the original is untouched
    assert stage_durations(later.stamps) == [("consume", 150), ("features", 150)]
    recorder = StageLatency(export=False)
    recorder.record(later.stamps)
    assert recorder.stages["consume"].count == 1
    assert recorder.total.percentile_ms(50) == pytest.approx(300 / 1e6, rel=1e-3)


def test_latency_histogram_percentiles() -> None:
    h = LatencyHistogram()
    for i in range(1, 10_001):
        h.record_ns(i * 1000)  # 1 us .. 10 ms
    assert h.count == 10_000
    assert h.percentile_ms(50) == pytest.approx(5.0, rel=0.01)
    assert h.percentile_ms(99) == pytest.approx(9.9, rel=0.01)
    copy = LatencyHistogram.decode(h.encode())
    assert copy.count == h.count
    assert copy.percentile_ms(99) == h.percentile_ms(99)
