"""Each online twin equals its batch kernel on every step of random series."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradepulse.features import DEFAULT_FEATURES, BarArrays, BarBuilder, bars_from_ticks
from tradepulse.features import kernels as k
from tradepulse.features import online as o

steps = st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=1, max_size=160)
#: some series repeat values (zero differences, flat windows), as real bars do
quantised = st.booleans()


def _bars(rets: list[float], flat: bool, seed: int) -> BarArrays:
    close = 100.0 * np.exp(np.cumsum(rets))
    if flat:
        close = np.round(close, 1)
    rng = np.random.default_rng(seed)
    high = close * (1 + np.abs(rng.standard_normal(close.size)) * 0.002)
    low = close * (1 - np.abs(rng.standard_normal(close.size)) * 0.002)
    volume = rng.integers(0, 20, close.size).astype(np.float64) * 100
    return BarArrays(np.arange(close.size, dtype=np.int64), close.copy(), high, low, close, volume)


def _check(online: list[float], batch: np.ndarray) -> None:
    got = np.array(online, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(batch))
    mask = ~np.isnan(batch)
    np.testing.assert_allclose(got[mask], batch[mask], rtol=1e-9, atol=1e-12)


TWINS: dict[str, tuple[Callable[[BarArrays], np.ndarray], Callable[[], Callable[[int, BarArrays], float]]]] = {}


def _twin(name: str, batch: Callable[[BarArrays], np.ndarray], make: Callable[[], Callable[[int, BarArrays], float]]):
    TWINS[name] = (batch, make)


def _simple(cls: type, *args: object) -> Callable[[], Callable[[int, BarArrays], float]]:
    def make() -> Callable[[int, BarArrays], float]:
        ind = cls(*args)
        return lambda i, b: ind.update(b.close[i])

    return make


_twin("sma", lambda b: k.sma(b.close, 7), _simple(o.OnlineSMA, 7))
_twin("ema", lambda b: k.ema(b.close, 9), _simple(o.OnlineEMA, 9))
_twin("rsi", lambda b: k.rsi(b.close, 14), _simple(o.OnlineRSI, 14))
_twin("variance", lambda b: k.variance(b.close, 5), _simple(o.OnlineVariance, 5))
_twin("stddev", lambda b: k.stddev(b.close, 3), _simple(o.OnlineStddev, 3))
_twin("stddev_1", lambda b: k.stddev(b.close, 1), _simple(o.OnlineStddev, 1))
_twin("log_return", lambda b: k.log_return(b.close, 3), _simple(o.OnlineLogReturn, 3))
_twin("rocr", lambda b: k.rocr(b.close, 2), _simple(o.OnlineRocr, 2))
_twin("rolling_sum", lambda b: k.rolling_sum(b.close, 4), _simple(o.OnlineRollingSum, 4))


def _make_hlc(cls: type, *args: object) -> Callable[[], Callable[[int, BarArrays], float]]:
    def make() -> Callable[[int, BarArrays], float]:
        ind = cls(*args)
        return lambda i, b: ind.update(b.high[i], b.low[i], b.close[i])

    return make


_twin("true_range", lambda b: k.true_range(b.high, b.low, b.close), _make_hlc(o.OnlineTrueRange))
_twin("atr", lambda b: k.atr(b.high, b.low, b.close, 5), _make_hlc(o.OnlineATR, 5))
_twin("stoch_k", lambda b: k.stoch_k(b.high, b.low, b.close, 6), _make_hlc(o.OnlineStochK, 6))


def _make_obv() -> Callable[[int, BarArrays], float]:
    ind = o.OnlineOBV()
    return lambda i, b: ind.update(b.close[i], b.volume[i])


def _make_vwap() -> Callable[[int, BarArrays], float]:
    ind = o.OnlineVWAP(4)
    return lambda i, b: ind.update(b.high[i], b.low[i], b.close[i], b.volume[i])


_twin("obv", lambda b: k.obv(b.close, b.volume), _make_obv)
_twin("vwap", lambda b: k.rolling_vwap(b.high, b.low, b.close, b.volume, 4), _make_vwap)

for _part in range(3):

    def _make_macd(part: int = _part) -> Callable[[int, BarArrays], float]:
        ind = o.OnlineMACD(5, 11, 4)
        return lambda i, b: ind.update(b.close[i])[part]

    def _make_bb(part: int = _part) -> Callable[[int, BarArrays], float]:
        ind = o.OnlineBBands(6, 2.0)
        return lambda i, b: ind.update(b.close[i])[part]

    _twin(f"macd[{_part}]", lambda b, part=_part: k.macd(b.close, 5, 11, 4)[part], _make_macd)
    _twin(f"bbands[{_part}]", lambda b, part=_part: k.bbands(b.close, 6, 2.0)[part], _make_bb)


@settings(max_examples=60, deadline=None)
@given(rets=steps, flat=quantised, seed=st.integers(0, 2**16))
def test_every_online_indicator_equals_its_batch_kernel(rets: list[float], flat: bool, seed: int) -> None:
    bars = _bars(rets, flat, seed)
    for name, (batch, make) in TWINS.items():
        step = make()
        try:
            _check([step(i, bars) for i in range(len(bars))], batch(bars))
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


@settings(max_examples=40, deadline=None)
@given(
    rets=st.lists(st.floats(-0.03, 0.03, allow_nan=False), min_size=1, max_size=120),
    flat=quantised,
    seed=st.integers(0, 99),
)
def test_online_feature_set_equals_batch_matrix(rets: list[float], flat: bool, seed: int) -> None:
    bars = _bars(rets, flat, seed)
    matrix = DEFAULT_FEATURES.batch(bars)
    live = DEFAULT_FEATURES.online()
    rows = [
        live.update(bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]) for i in range(len(bars))
    ]
    for j, name in enumerate(DEFAULT_FEATURES.names):
        try:
            _check([row[j] for row in rows], matrix[:, j])
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert live.ready == (len(bars) > DEFAULT_FEATURES.warmup)
    if live.ready:
        assert not any(math.isnan(v) for v in rows[-1])


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 700), min_size=1, max_size=80),
    prices=st.lists(st.floats(1, 200, allow_nan=False), min_size=80, max_size=80),
)
def test_bar_builder_equals_batch_bars(gaps: list[int], prices: list[float]) -> None:
    ts = np.cumsum(np.array(gaps, dtype=np.int64)) * 1_000_000
    price = np.array(prices[: len(gaps)])
    size = np.arange(1, len(gaps) + 1, dtype=np.float64)
    batch = bars_from_ticks(ts, price, size, 250_000_000)
    builder = BarBuilder(250_000_000)
    closed = [bar for t, p, s in zip(ts, price, size, strict=True) if (bar := builder.add(int(t), float(p), float(s)))]
    # the batch also holds the bar still being built
    assert len(closed) == len(batch) - 1
    for j, bar in enumerate(closed):
        got = (bar.start_ns, bar.open, bar.high, bar.low, bar.close, bar.volume)
        want = (batch.start_ns[j], batch.open[j], batch.high[j], batch.low[j], batch.close[j], batch.volume[j])
        assert got == want
    # a tick from before the bar being built (a redelivery) closes nothing and is counted
    current_bucket = int(ts[-1]) // 250_000_000
    if current_bucket > 0:
        assert builder.add((current_bucket - 1) * 250_000_000, 1.0, 1.0) is None
        assert builder.stale == 1


@settings(max_examples=40, deadline=None)
@given(rets=st.lists(st.floats(-0.03, 0.03, allow_nan=False), min_size=40, max_size=150), cut=st.integers(1, 39))
def test_no_feature_looks_ahead(rets: list[float], cut: int) -> None:
    """Look-ahead analysis: a feature row at bar t is the same whether or not the bars after t exist."""
    bars = _bars(rets, False, 0)
    full = DEFAULT_FEATURES.batch(bars)
    m = len(bars) - cut
    truncated = DEFAULT_FEATURES.batch(bars.slice(0, m))
    np.testing.assert_array_equal(truncated, full[:m])
