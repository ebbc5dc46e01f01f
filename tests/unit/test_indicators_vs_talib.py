"""Each batch indicator equals TA-Lib (the independent reference) to 1e-9 relative, warm-up included."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import talib

from tradepulse.features import DEFAULT_FEATURES, BarArrays
from tradepulse.features import kernels as k

RTOL = 1e-9


def _series(seed: int, n: int = 3000, level: float = 100.0) -> BarArrays:
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.standard_normal(n) * 0.002))
    # a flat stretch exercises the zero-range / zero-variance branches
    close[500:540] = close[499]
    high = close * (1 + np.abs(rng.standard_normal(n)) * 0.001)
    low = close * (1 - np.abs(rng.standard_normal(n)) * 0.001)
    high[500:540] = low[500:540] = close[500:540]
    volume = rng.integers(1, 50, n).astype(np.float64) * 100
    return BarArrays(np.arange(n, dtype=np.int64), close.copy(), high, low, close, volume)


def assert_same(ours: np.ndarray, ref: np.ndarray, scale: float | None = None) -> None:
    """NaN exactly where the reference has NaN; elsewhere equal to 1e-9 relative (of the series' scale)."""
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    mask = ~np.isnan(ref)
    scale = float(np.max(np.abs(ref[mask]))) if scale is None else scale
    np.testing.assert_allclose(ours[mask], ref[mask], rtol=RTOL, atol=RTOL * scale)


CASES: dict[str, Callable[[BarArrays], tuple[np.ndarray, np.ndarray]]] = {
    "SMA": lambda b: (k.sma(b.close, 20), talib.SMA(b.close, 20)),
    "EMA": lambda b: (k.ema(b.close, 12), talib.EMA(b.close, 12)),
    "RSI": lambda b: (k.rsi(b.close, 14), talib.RSI(b.close, 14)),
    "TRANGE": lambda b: (k.true_range(b.high, b.low, b.close), talib.TRANGE(b.high, b.low, b.close)),
    "ATR": lambda b: (k.atr(b.high, b.low, b.close, 14), talib.ATR(b.high, b.low, b.close, 14)),
    "MACD": lambda b: (k.macd(b.close, 12, 26, 9)[0], talib.MACD(b.close, 12, 26, 9)[0]),
    "MACD signal": lambda b: (k.macd(b.close, 12, 26, 9)[1], talib.MACD(b.close, 12, 26, 9)[1]),
    "MACD hist": lambda b: (k.macd(b.close, 12, 26, 9)[2], talib.MACD(b.close, 12, 26, 9)[2]),
    "BBANDS upper": lambda b: (k.bbands(b.close, 20, 2.0)[0], talib.BBANDS(b.close, 20, 2.0, 2.0, 0)[0]),
    "BBANDS middle": lambda b: (k.bbands(b.close, 20, 2.0)[1], talib.BBANDS(b.close, 20, 2.0, 2.0, 0)[1]),
    "BBANDS lower": lambda b: (k.bbands(b.close, 20, 2.0)[2], talib.BBANDS(b.close, 20, 2.0, 2.0, 0)[2]),
    "VAR": lambda b: (k.variance(b.close, 20), talib.VAR(b.close, 20, 1.0)),
    "STDDEV": lambda b: (k.stddev(b.close, 30), talib.STDDEV(b.close, 30, 1.0)),
    "STDDEV volume": lambda b: (k.stddev(b.volume, 20), talib.STDDEV(b.volume, 20, 1.0)),
    "STOCHF %K": lambda b: (
        k.stoch_k(b.high, b.low, b.close, 14)[15:],
        talib.STOCHF(b.high, b.low, b.close, 14, 3, 0)[0][15:],  # TA-Lib's output starts after %D's warm-up
    ),
    "OBV": lambda b: (k.obv(b.close, b.volume), talib.OBV(b.close, b.volume)),
    "ROCR": lambda b: (k.rocr(b.close, 10), talib.ROCR(b.close, 10)),
    "log return": lambda b: (k.log_return(b.close, 5), np.log(talib.ROCR(b.close, 5))),
    "SUM": lambda b: (k.rolling_sum(b.volume, 10), talib.SUM(b.volume, 10)),
}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", list(CASES))
def test_batch_indicator_equals_talib(name: str, seed: int) -> None:
    ours, ref = CASES[name](_series(seed))
    assert_same(ours, ref)


def test_log_return_near_zero_is_exact_to_rounding() -> None:
    bars = _series(3)
    assert_same(k.log_return(bars.close, 1), np.log(talib.ROCR(bars.close, 1)), scale=0.002)


def _vwap_reference(b: BarArrays, n: int) -> np.ndarray:
    """VWAP of the typical price, summed window by window (no running sums): TA-Lib has no VWAP."""
    tp = (b.high + b.low + b.close) / 3.0
    out = np.full(len(b), np.nan)
    for i in range(n - 1, len(b)):
        w = slice(i - n + 1, i + 1)
        out[i] = np.sum(tp[w] * b.volume[w]) / np.sum(b.volume[w])
    return out


def test_rolling_vwap_equals_windowed_sums() -> None:
    b = _series(4)
    assert_same(k.rolling_vwap(b.high, b.low, b.close, b.volume, 20), _vwap_reference(b, 20))


def test_every_feature_equals_its_talib_formula() -> None:
    """The feature columns are the indicators above combined by plain arithmetic; rebuild them from TA-Lib."""
    b = _series(5)
    c, h, lo, v = b.close, b.high, b.low, b.volume
    logret1 = np.log(talib.ROCR(c, 1))
    upper, _, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    obv = talib.OBV(c, v)
    obv_lag = np.full_like(obv, np.nan)
    obv_lag[10:] = obv[:-10]
    vol_sd = talib.STDDEV(v, 20, 1.0)
    reference = {
        "ret_1": logret1,
        "ret_5": np.log(talib.ROCR(c, 5)),
        "ret_10": np.log(talib.ROCR(c, 10)),
        "ret_30": np.log(talib.ROCR(c, 30)),
        "rvol_10": np.concatenate([[np.nan], talib.STDDEV(logret1[1:], 10, 1.0)]),
        "rvol_30": np.concatenate([[np.nan], talib.STDDEV(logret1[1:], 30, 1.0)]),
        "sma_ratio_10": c / talib.SMA(c, 10) - 1,
        "sma_ratio_30": c / talib.SMA(c, 30) - 1,
        "ema_ratio_10": c / talib.EMA(c, 10) - 1,
        "ema_ratio_30": c / talib.EMA(c, 30) - 1,
        "rsi_14": talib.RSI(c, 14),
        "macd_hist": talib.MACD(c, 12, 26, 9)[2] / c,
        "bb_pctb_20": np.where(upper == lower, 0.5, (c - lower) / np.where(upper == lower, 1, upper - lower)),
        "natr_14": talib.ATR(h, lo, c, 14) / c,
        "stoch_k_14": np.concatenate([k.stoch_k(h, lo, c, 14)[:15], talib.STOCHF(h, lo, c, 14, 3, 0)[0][15:]]),
        "obv_slope_10": (obv - obv_lag) / talib.SUM(v, 10),
        "volume_z_20": np.where(vol_sd == 0, 0.0, (v - talib.SMA(v, 20)) / np.where(vol_sd == 0, 1, vol_sd)),
        "vwap_dist_20": c / _vwap_reference(b, 20) - 1,
    }
    matrix = DEFAULT_FEATURES.batch(b)
    assert set(reference) == set(DEFAULT_FEATURES.names)
    for j, name in enumerate(DEFAULT_FEATURES.names):
        assert_same(matrix[:, j], reference[name])
    assert not np.isnan(matrix[DEFAULT_FEATURES.warmup :]).any()
    assert np.isnan(matrix[DEFAULT_FEATURES.warmup - 1]).any()
