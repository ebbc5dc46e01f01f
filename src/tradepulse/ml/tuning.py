"""Hyperparameter search inside one fold's training samples (never its test samples).

The training index is split again, purged and embargoed, into an earlier part to fit and a later part to
score (:func:`~tradepulse.ml.validation.inner_split`). Every combination of the grid is scored by log loss on
that later part; the winner is refitted on the whole training index by the caller. ``n_estimators`` is not
refitted per value: one model with the most trees is fitted per (depth, learning rate) and scored at each tree
count, which gives the same numbers as separate fits at a third of the cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tradepulse.config import MLConfig
from tradepulse.ml.models import EnsembleModel, TreeModel, make_model
from tradepulse.ml.validation import inner_split

if TYPE_CHECKING:
    from tradepulse.ml.pipeline import Dataset


def _log_loss(y: npt.NDArray[np.int8], proba: npt.NDArray[np.float64]) -> float:
    p = np.clip(proba[np.arange(y.shape[0]), y.astype(np.int64)], 1e-12, 1.0)
    return float(-np.mean(np.log(p)))


def _staged(model: TreeModel, X: npt.NDArray[np.float32], trees: int) -> npt.NDArray[np.float64]:
    """Class probabilities using only the first ``trees`` boosting rounds."""
    if model.kind == "xgboost":
        return np.asarray(model.model.predict_proba(X, iteration_range=(0, trees)), dtype=np.float64)
    return np.asarray(model.model.predict_proba(X, num_iteration=trees), dtype=np.float64)


def tune(
    data: Dataset,
    train: npt.NDArray[np.int64],
    kind: str,
    cfg: MLConfig,
    grid: dict[str, list[Any]],
    *,
    base: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Return the grid point with the lowest validation log loss inside ``train``."""
    split = inner_split(train, horizon=cfg.horizon_bars, embargo=cfg.embargo_bars)
    X_fit, y_fit = data.X[split.train], data.y[split.train]
    X_val, y_val = data.X[split.test], data.y[split.test]
    counts = sorted(grid.get("n_estimators", [None]), key=lambda v: -1 if v is None else v)
    others = {k: v for k, v in grid.items() if k != "n_estimators"}
    combos = [dict(zip(others, values, strict=True)) for values in itertools.product(*others.values())] or [{}]
    best: tuple[float, dict[str, Any]] | None = None
    for i, combo in enumerate(combos):
        if progress is not None:
            progress("tuning", i, len(combos))
        params = {**(base or {}), **combo}
        most = counts[-1]
        if most is not None:
            params["n_estimators"] = most
        model = make_model(kind, params, seed=cfg.seed, n_jobs=cfg.n_jobs)
        model.fit(X_fit, y_fit)
        for trees in counts:
            if trees is None or trees == most:
                proba = model.predict_proba(X_val)
            elif isinstance(model, EnsembleModel):
                proba = np.mean([_staged(m, X_val, trees) for m in model.members], axis=0)
            else:
                proba = _staged(model, X_val, trees)
            loss = _log_loss(y_val, proba)
            point = {**params, **({"n_estimators": trees} if trees is not None else {})}
            if best is None or loss < best[0] - 1e-12:
                best = (loss, point)
    if progress is not None:
        progress("tuning", len(combos), len(combos))
    assert best is not None
    return best[1]
