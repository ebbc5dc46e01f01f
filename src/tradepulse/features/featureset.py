"""One feature-set definition, used for training (batch) and live inference (online).

A :class:`FeatureSet` is a tuple of :class:`FeatureSpec` (name, kind, parameters). Each kind knows its batch
computation over bar columns and builds its online twin, so the training matrix and the live vector come from
the same definition and agree value for value (tested). The definition is plain data: it is stored with every
model in the registry and rebuilt from there by the live service.

Every feature at bar ``t`` uses bars ``<= t`` only (the kernels are causal), and every feature is scale-free
(a ratio, a return, an oscillator), so a model trained on one price level works on another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradepulse.features import kernels as k
from tradepulse.features import online as o
from tradepulse.features.bars import BarArrays

F64 = k.F64
#: an online feature: (open, high, low, close, volume) of the new bar -> value (NaN while warming up)
OnlineFn = Callable[[float, float, float, float, float], float]


def _shifted(fn: Callable[[F64], F64], x: F64, valid_from: int) -> F64:
    """Apply ``fn`` to ``x[valid_from:]`` (skipping an input's NaN warm-up) and align the result with ``x``."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > valid_from:
        out[valid_from:] = fn(np.ascontiguousarray(x[valid_from:]))
    return out


def _ratio(a: float, b: float) -> float:
    return a / b - 1.0


# --- batch definitions: BarArrays -> column --------------------------------------------------------------


def _b_log_return(bars: BarArrays, n: int) -> F64:
    return k.log_return(bars.close, n)


def _b_realized_vol(bars: BarArrays, n: int) -> F64:
    return _shifted(lambda r: k.stddev(r, n), k.log_return(bars.close, 1), 1)


def _b_sma_ratio(bars: BarArrays, n: int) -> F64:
    return bars.close / k.sma(bars.close, n) - 1.0


def _b_ema_ratio(bars: BarArrays, n: int) -> F64:
    return bars.close / k.ema(bars.close, n) - 1.0


def _b_rsi(bars: BarArrays, n: int) -> F64:
    return k.rsi(bars.close, n)


def _b_macd_hist(bars: BarArrays, fast: int, slow: int, signal: int) -> F64:
    return k.macd(bars.close, fast, slow, signal)[2] / bars.close


def _b_bb_pctb(bars: BarArrays, n: int, nbdev: float) -> F64:
    upper, _, lower = k.bbands(bars.close, n, nbdev)
    width = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (bars.close - lower) / width
    return np.where(width == 0.0, 0.5, out)


def _b_natr(bars: BarArrays, n: int) -> F64:
    return k.atr(bars.high, bars.low, bars.close, n) / bars.close


def _b_stoch_k(bars: BarArrays, n: int) -> F64:
    return k.stoch_k(bars.high, bars.low, bars.close, n)


def _b_obv_slope(bars: BarArrays, n: int) -> F64:
    obv = k.obv(bars.close, bars.volume)
    lagged = np.full_like(obv, np.nan)
    lagged[n:] = obv[:-n]
    vol = k.rolling_sum(bars.volume, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (obv - lagged) / vol
    return np.where(vol == 0.0, 0.0, out)


def _b_volume_z(bars: BarArrays, n: int) -> F64:
    mean = k.sma(bars.volume, n)
    sd = k.stddev(bars.volume, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (bars.volume - mean) / sd
    return np.where(sd == 0.0, 0.0, out)


def _b_vwap_dist(bars: BarArrays, n: int) -> F64:
    return bars.close / k.rolling_vwap(bars.high, bars.low, bars.close, bars.volume, n) - 1.0


# --- online definitions: build a closure with its own state ----------------------------------------------


def _o_log_return(n: int) -> OnlineFn:
    ind = o.OnlineLogReturn(n)
    return lambda op, hi, lo, cl, vo: ind.update(cl)


def _o_realized_vol(n: int) -> OnlineFn:
    ret = o.OnlineLogReturn(1)
    sd = o.OnlineStddev(n)

    def update(op: float, hi: float, lo: float, cl: float, vo: float) -> float:
        r = ret.update(cl)
        return math.nan if math.isnan(r) else sd.update(r)

    return update


def _o_sma_ratio(n: int) -> OnlineFn:
    ind = o.OnlineSMA(n)
    return lambda op, hi, lo, cl, vo: cl / ind.update(cl) - 1.0


def _o_ema_ratio(n: int) -> OnlineFn:
    ind = o.OnlineEMA(n)
    return lambda op, hi, lo, cl, vo: cl / ind.update(cl) - 1.0


def _o_rsi(n: int) -> OnlineFn:
    ind = o.OnlineRSI(n)
    return lambda op, hi, lo, cl, vo: ind.update(cl)


def _o_macd_hist(fast: int, slow: int, signal: int) -> OnlineFn:
    ind = o.OnlineMACD(fast, slow, signal)
    return lambda op, hi, lo, cl, vo: ind.update(cl)[2] / cl


def _o_bb_pctb(n: int, nbdev: float) -> OnlineFn:
    ind = o.OnlineBBands(n, nbdev)

    def update(op: float, hi: float, lo: float, cl: float, vo: float) -> float:
        upper, _, lower = ind.update(cl)
        width = upper - lower
        if width == 0.0:
            return 0.5
        return (cl - lower) / width

    return update


def _o_natr(n: int) -> OnlineFn:
    ind = o.OnlineATR(n)
    return lambda op, hi, lo, cl, vo: ind.update(hi, lo, cl) / cl


def _o_stoch_k(n: int) -> OnlineFn:
    ind = o.OnlineStochK(n)
    return lambda op, hi, lo, cl, vo: ind.update(hi, lo, cl)


def _o_obv_slope(n: int) -> OnlineFn:
    obv = o.OnlineOBV()
    lag = o.OnlineLag(n)
    vol = o.OnlineRollingSum(n)

    def update(op: float, hi: float, lo: float, cl: float, vo: float) -> float:
        now = obv.update(cl, vo)
        before = lag.update(now)
        total = vol.update(vo)
        if total == 0.0:
            return 0.0
        return (now - before) / total

    return update


def _o_volume_z(n: int) -> OnlineFn:
    mean = o.OnlineSMA(n)
    sd = o.OnlineStddev(n)

    def update(op: float, hi: float, lo: float, cl: float, vo: float) -> float:
        m = mean.update(vo)
        s = sd.update(vo)
        if s == 0.0:
            return 0.0
        return (vo - m) / s

    return update


def _o_vwap_dist(n: int) -> OnlineFn:
    ind = o.OnlineVWAP(n)
    return lambda op, hi, lo, cl, vo: cl / ind.update(hi, lo, cl, vo) - 1.0


@dataclass(frozen=True)
class _Kind:
    batch: Callable[..., F64]
    online: Callable[..., OnlineFn]
    #: bars needed before the first value, from the parameters
    warmup: Callable[..., int]


KINDS: dict[str, _Kind] = {
    "log_return": _Kind(_b_log_return, _o_log_return, lambda n: n),
    "realized_vol": _Kind(_b_realized_vol, _o_realized_vol, lambda n: n),
    "sma_ratio": _Kind(_b_sma_ratio, _o_sma_ratio, lambda n: n - 1),
    "ema_ratio": _Kind(_b_ema_ratio, _o_ema_ratio, lambda n: n - 1),
    "rsi": _Kind(_b_rsi, _o_rsi, lambda n: n),
    "macd_hist": _Kind(_b_macd_hist, _o_macd_hist, lambda fast, slow, signal: max(fast, slow) + signal - 2),
    "bb_pctb": _Kind(_b_bb_pctb, _o_bb_pctb, lambda n, nbdev: n - 1),
    "natr": _Kind(_b_natr, _o_natr, lambda n: n),
    "stoch_k": _Kind(_b_stoch_k, _o_stoch_k, lambda n: n - 1),
    "obv_slope": _Kind(_b_obv_slope, _o_obv_slope, lambda n: n),
    "volume_z": _Kind(_b_volume_z, _o_volume_z, lambda n: n - 1),
    "vwap_dist": _Kind(_b_vwap_dist, _o_vwap_dist, lambda n: n - 1),
}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: a unique ``name``, a ``kind`` from :data:`KINDS` and the kind's parameters."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"feature {self.name!r}: unknown kind {self.kind!r} (known: {', '.join(sorted(KINDS))})")

    @property
    def warmup(self) -> int:
        return int(KINDS[self.kind].warmup(**self.params))


class FeatureSet:
    """An ordered set of features: ``batch`` for training matrices, ``online`` for live vectors."""

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names must be unique: {names}")
        if not specs:
            raise ValueError("a feature set needs at least one feature")
        self.specs = tuple(specs)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def warmup(self) -> int:
        """Bars before the first complete feature vector (its index)."""
        return max(s.warmup for s in self.specs)

    def batch(self, bars: BarArrays) -> F64:
        """Return the ``(len(bars), len(features))`` matrix; rows before :attr:`warmup` hold NaN."""
        cols = [KINDS[s.kind].batch(bars, **s.params) for s in self.specs]
        return np.ascontiguousarray(np.column_stack(cols), dtype=np.float64)

    def online(self) -> OnlineFeatures:
        return OnlineFeatures(self)

    def to_dict(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "kind": s.kind, "params": dict(s.params)} for s in self.specs]

    @classmethod
    def from_dict(cls, data: Sequence[Mapping[str, Any]]) -> FeatureSet:
        try:
            return cls([FeatureSpec(d["name"], d["kind"], dict(d.get("params", {}))) for d in data])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid feature-set definition: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureSet) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(s.name for s in self.specs))


class OnlineFeatures:
    """The live twin of a :class:`FeatureSet`: one :meth:`update` per closed bar, O(1) each."""

    __slots__ = ("_fns", "bars_seen", "feature_set", "ready_at")

    def __init__(self, feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        self._fns = [KINDS[s.kind].online(**s.params) for s in feature_set.specs]
        self.bars_seen = 0
        self.ready_at = feature_set.warmup + 1

    @property
    def ready(self) -> bool:
        return self.bars_seen >= self.ready_at

    def update(self, open_: float, high: float, low: float, close: float, volume: float) -> list[float]:
        """Feed the next closed bar; return the feature vector at that bar (NaN entries while warming up)."""
        self.bars_seen += 1
        return [fn(open_, high, low, close, volume) for fn in self._fns]


#: The platform's default feature set: returns over several horizons, realised volatility, moving-average
#: ratios, RSI, MACD histogram, Bollinger %B, ATR, stochastic %K, OBV slope, volume z-score, VWAP distance.
DEFAULT_FEATURES = FeatureSet(
    [
        FeatureSpec("ret_1", "log_return", {"n": 1}),
        FeatureSpec("ret_5", "log_return", {"n": 5}),
        FeatureSpec("ret_10", "log_return", {"n": 10}),
        FeatureSpec("ret_30", "log_return", {"n": 30}),
        FeatureSpec("rvol_10", "realized_vol", {"n": 10}),
        FeatureSpec("rvol_30", "realized_vol", {"n": 30}),
        FeatureSpec("sma_ratio_10", "sma_ratio", {"n": 10}),
        FeatureSpec("sma_ratio_30", "sma_ratio", {"n": 30}),
        FeatureSpec("ema_ratio_10", "ema_ratio", {"n": 10}),
        FeatureSpec("ema_ratio_30", "ema_ratio", {"n": 30}),
        FeatureSpec("rsi_14", "rsi", {"n": 14}),
        FeatureSpec("macd_hist", "macd_hist", {"fast": 12, "slow": 26, "signal": 9}),
        FeatureSpec("bb_pctb_20", "bb_pctb", {"n": 20, "nbdev": 2.0}),
        FeatureSpec("natr_14", "natr", {"n": 14}),
        FeatureSpec("stoch_k_14", "stoch_k", {"n": 14}),
        FeatureSpec("obv_slope_10", "obv_slope", {"n": 10}),
        FeatureSpec("volume_z_20", "volume_z", {"n": 20}),
        FeatureSpec("vwap_dist_20", "vwap_dist", {"n": 20}),
    ]
)
