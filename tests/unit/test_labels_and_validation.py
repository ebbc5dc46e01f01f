"""Labels use only the future they are about and a threshold known at t; folds never train on the test
period or on labels that reach into it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradepulse.features import BarArrays
from tradepulse.ml.evaluation import backtest, evaluate
from tradepulse.ml.labels import BUY, HOLD, SELL, fixed_horizon_labels, make_labels, volatility_at
from tradepulse.ml.validation import inner_split, purged_kfold, walk_forward


def _close(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.standard_normal(n) * 0.001))


def test_fixed_horizon_labels_by_hand() -> None:
    close = _close()
    h, k, w = 5, 0.5, 20
    labels = fixed_horizon_labels(close, h, k, w)
    vol = volatility_at(close, w)
    for t in range(len(close)):
        if t + h >= len(close) or np.isnan(vol[t]):
            assert labels[t] == -1
            continue
        fwd = np.log(close[t + h] / close[t])
        thr = k * vol[t] * np.sqrt(h)
        assert labels[t] == (BUY if fwd > thr else SELL if fwd < -thr else HOLD)


def test_threshold_uses_nothing_after_t() -> None:
    close = _close()
    vol = volatility_at(close, 20)
    changed = close.copy()
    changed[300:] *= 1.5  # a shock after t = 299
    np.testing.assert_array_equal(volatility_at(changed, 20)[:300], vol[:300])


def test_label_at_t_depends_only_on_bars_up_to_t_plus_h() -> None:
    close = _close()
    base = fixed_horizon_labels(close, 10, 0.5, 20)
    changed = close.copy()
    changed[250:] *= 0.9
    moved = fixed_horizon_labels(changed, 10, 0.5, 20)
    np.testing.assert_array_equal(base[: 250 - 10], moved[: 250 - 10])


def test_triple_barrier_takes_the_first_touch() -> None:
    n = 80
    close = np.full(n, 100.0)
    close[:40] = 100 * np.exp(np.cumsum(np.tile([0.001, -0.001], 20)))  # some volatility to scale by
    high, low = close.copy(), close.copy()
    high[45] = 103.0  # an upper touch ...
    low[47] = 97.0  # ... before a lower one
    bars = BarArrays(np.arange(n, dtype=np.int64), close.copy(), high, low, close, np.ones(n))
    labels = make_labels(bars, "triple_barrier", 10, 0.5, 20)
    assert labels[40] == BUY  # t+5 touches the upper barrier first
    assert labels[46] == SELL
    assert labels[60] == HOLD  # flat, nothing touched
    assert (labels[-10:] == -1).all()
    with pytest.raises(ValueError, match="label method"):
        make_labels(bars, "midpoint", 10, 0.5, 20)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(600, 5000),
    splits=st.integers(1, 6),
    horizon=st.integers(1, 30),
    embargo=st.integers(0, 30),
    window=st.one_of(st.none(), st.integers(200, 1000)),
)
def test_walk_forward_purges_and_embargoes(n: int, splits: int, horizon: int, embargo: int, window: int | None) -> None:
    folds = walk_forward(n, n_splits=splits, horizon=horizon, embargo=embargo, train_window=window, min_train=50)
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(tested, np.arange(n - int(n * 0.5), n))  # every held-out sample once, in order
    for fold in folds:
        # the label of the last training sample, (t, t + horizon], ends before the test fold minus the embargo
        assert fold.train.max() + horizon < fold.test_start - embargo + 1
        assert fold.train.max() < fold.test_start
        if window is not None:
            assert fold.train.size <= window


def test_walk_forward_says_when_there_is_too_little_data() -> None:
    with pytest.raises(ValueError, match="training samples"):
        walk_forward(300, n_splits=4, horizon=10, embargo=10)


def test_inner_split_and_purged_kfold() -> None:
    train = np.arange(1000)
    split = inner_split(train, horizon=10, embargo=5)
    assert split.train.max() + 10 + 5 < split.test.min()
    for fold in purged_kfold(1000, k=5, horizon=10, embargo=20):
        before = fold.train[fold.train < fold.test_start]
        after = fold.train[fold.train > fold.test.max()]
        assert before.size == 0 or before.max() + 10 < fold.test_start
        assert after.size == 0 or after.min() >= fold.test.max() + 1 + 20


def test_evaluation_of_perfect_and_blind_predictions() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 3000).astype(np.int8)
    close = 100 * np.exp(np.cumsum(rng.standard_normal(3001) * 0.001))
    fwd = rng.standard_normal(3000)
    perfect = np.eye(3)[y]
    e = evaluate(
        y, perfect, train_majority=1, forward_return=fwd, close=close, horizon=10, cost_bps=1, bars_per_year=1e6
    )
    assert e.accuracy == 1.0
    assert e.balanced_accuracy == 1.0
    assert e.macro_f1 == 1.0
    assert e.beats_chance
    assert e.confusion == np.diag(np.bincount(y, minlength=3)).tolist()
    blind = np.tile([0.2, 0.5, 0.3], (3000, 1))  # always HOLD
    b = evaluate(y, blind, train_majority=1, forward_return=fwd, close=close, horizon=10, cost_bps=1, bars_per_year=1e6)
    assert b.accuracy == pytest.approx(np.mean(y == 1))
    assert not b.beats_chance
    assert b.backtest.total_return == 0.0
    assert b.backtest.turnover == 0.0
    assert b.n_effective == 300


def test_backtest_pays_costs_on_position_changes() -> None:
    close = np.array([100.0, 101.0, 100.0, 102.0])
    bt = backtest(np.array([BUY, SELL, HOLD]), close, cost_bps=10, bars_per_year=252)
    pnl = np.array([0.01 - 0.001, -(100 / 101 - 1) - 0.002, 0.0 - 0.001])
    assert bt.total_return == pytest.approx(np.prod(1 + pnl) - 1)
    assert bt.turnover == pytest.approx((1 + 2 + 1) / 3)
    assert bt.bh_return == pytest.approx(0.02)
