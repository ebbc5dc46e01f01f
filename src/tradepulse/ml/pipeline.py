"""The training pipeline: bars -> features and labels -> walk-forward evaluation -> final model.

One function per step, each usable on its own (the trainer, the tests, the benchmark and the signal service's
bootstrap all go through these).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tradepulse.config import MLConfig
from tradepulse.features import BarArrays, FeatureSet
from tradepulse.marketdata.simulator import SECONDS_PER_YEAR
from tradepulse.ml.evaluation import Evaluation, evaluate
from tradepulse.ml.labels import forward_return, make_labels
from tradepulse.ml.models import Model, as_float32, make_model
from tradepulse.ml.tuning import tune
from tradepulse.ml.validation import walk_forward

#: progress callback: (what, done, total)
Progress = Callable[[str, int, int], None]


def _no_progress(what: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class Dataset:
    """Time-ordered samples: features up to bar t, the label from bars t+1..t+horizon."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int8]
    forward: npt.NDArray[np.float64]  # the forward log return over the horizon (for the IC)
    bar_index: npt.NDArray[np.int64]  # which bar each sample is
    close: npt.NDArray[np.float64]  # every bar's close (for the backtest)
    feature_names: list[str]

    def __len__(self) -> int:
        return int(self.y.shape[0])


def build_dataset(bars: BarArrays, feature_set: FeatureSet, cfg: MLConfig) -> Dataset:
    """Compute features and labels and keep the samples where both are known."""
    X = feature_set.batch(bars)
    y = make_labels(bars, cfg.labels, cfg.horizon_bars, cfg.threshold_k, cfg.vol_window)
    fwd = forward_return(bars.close, cfg.horizon_bars)
    keep = ~np.isnan(X).any(axis=1) & (y >= 0) & ~np.isnan(fwd)
    idx = np.flatnonzero(keep).astype(np.int64)
    if idx.shape[0] == 0:
        raise ValueError(
            f"no usable samples in {len(bars)} bars: the features need {feature_set.warmup + 1} bars of warm-up "
            f"and the labels {cfg.horizon_bars} bars after"
        )
    return Dataset(as_float32(X[idx]), y[idx], fwd[idx], idx, bars.close, feature_set.names)


@dataclass
class WalkForwardResult:
    evaluation: Evaluation
    proba: npt.NDArray[np.float64]
    test_index: npt.NDArray[np.int64]
    fold_params: list[dict[str, Any]] = field(default_factory=list)
    fold_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def walk_forward_evaluate(
    data: Dataset,
    kind: str,
    cfg: MLConfig,
    *,
    params: dict[str, Any] | None = None,
    tune_grid: dict[str, list[Any]] | None = None,
    progress: Progress = _no_progress,
) -> WalkForwardResult:
    """Train on each fold's (purged, embargoed) past and predict the fold; score the concatenated predictions."""
    started = time.perf_counter()
    folds = walk_forward(
        len(data),
        n_splits=cfg.n_splits,
        test_fraction=cfg.test_fraction,
        horizon=cfg.horizon_bars,
        embargo=cfg.embargo_bars,
        train_window=cfg.train_window or None,
    )
    probas: list[npt.NDArray[np.float64]] = []
    fold_params: list[dict[str, Any]] = []
    fold_acc: list[float] = []
    chosen = dict(params or {})
    if tune_grid:
        # searched once, inside the first fold's training part (the earliest data, before every test fold), and
        # kept for all folds: nested per-fold searches cost n_splits times more for the same honesty
        chosen = tune(data, folds[0].train, kind, cfg, tune_grid, base=chosen, progress=progress)
    for i, fold in enumerate(folds):
        progress("walk-forward", i, len(folds))
        model = make_model(kind, chosen, seed=cfg.seed, n_jobs=cfg.n_jobs)
        model.fit(data.X[fold.train], data.y[fold.train])
        proba = model.predict_proba(data.X[fold.test])
        probas.append(proba)
        fold_params.append(chosen)
        fold_acc.append(float(np.mean(proba.argmax(axis=1) == data.y[fold.test])))
    progress("walk-forward", len(folds), len(folds))
    test_index = np.concatenate([f.test for f in folds])
    proba = np.concatenate(probas)
    train_labels = data.y[folds[0].train]
    bars = data.bar_index[test_index]
    evaluation = evaluate(
        data.y[test_index],
        proba,
        train_majority=int(np.bincount(train_labels, minlength=3).argmax()),
        forward_return=data.forward[test_index],
        close=data.close[bars[0] : bars[-1] + 2],
        horizon=cfg.horizon_bars,
        cost_bps=cfg.cost_bps,
        bars_per_year=SECONDS_PER_YEAR / cfg.bar_seconds,
    )
    return WalkForwardResult(evaluation, proba, test_index, fold_params, fold_acc, time.perf_counter() - started)


def fit_final(
    data: Dataset,
    kind: str,
    cfg: MLConfig,
    *,
    params: dict[str, Any] | None = None,
    tune_grid: dict[str, list[Any]] | None = None,
    progress: Progress = _no_progress,
) -> tuple[Model, dict[str, Any], float]:
    """Fit the model to serve on every sample (tuned inside them if asked); return it, its params, seconds."""
    started = time.perf_counter()
    chosen = dict(params or {})
    everything = np.arange(len(data), dtype=np.int64)
    if tune_grid:
        chosen = tune(data, everything, kind, cfg, tune_grid, base=chosen, progress=progress)
    model = make_model(kind, chosen, seed=cfg.seed, n_jobs=cfg.n_jobs)
    model.fit(data.X, data.y)
    return model, chosen, time.perf_counter() - started
