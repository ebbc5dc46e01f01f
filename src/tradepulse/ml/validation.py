"""Walk-forward validation with purging and an embargo, so no test label leaks into training.

Sample t's features use bars ``<= t``; its label uses bars ``t+1 .. t+horizon``. A training sample whose label
interval reaches into a test fold would carry test-period prices into training, so it is **purged**: training
for a fold starting at ``s`` stops at ``s - horizon``. The **embargo** drops ``embargo`` more samples before the
test fold (and, for folds that have training data after them in :func:`purged_kfold`, after it), because
features and labels are serially correlated beyond the label interval itself.

The held-out period is the last ``test_fraction`` of the samples, cut into ``n_splits`` consecutive folds; each
fold is predicted by a model trained only on what came before it (expanding window, or the last
``train_window`` samples for a sliding window). Hyperparameters are tuned inside the first fold's training part
(the earliest data) with the same purged split (:func:`inner_split`), never on a test fold.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Index = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Fold:
    train: Index
    test: Index

    @property
    def test_start(self) -> int:
        return int(self.test[0])


def walk_forward(
    n: int,
    *,
    n_splits: int = 4,
    test_fraction: float = 0.5,
    horizon: int = 10,
    embargo: int = 10,
    train_window: int | None = None,
    min_train: int = 200,
) -> list[Fold]:
    """Return the walk-forward folds over ``n`` time-ordered samples (see the module docstring)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if n_splits < 1 or horizon < 0 or embargo < 0:
        raise ValueError("n_splits must be >= 1, horizon and embargo >= 0")
    first_test = n - int(n * test_fraction)
    edges = np.linspace(first_test, n, n_splits + 1).round().astype(np.int64)
    folds: list[Fold] = []
    for start, stop in itertools.pairwise(edges):
        if stop <= start:
            continue
        train_stop = int(start) - horizon - embargo
        train_start = 0 if train_window is None else max(0, train_stop - train_window)
        if train_stop - train_start < min_train:
            raise ValueError(
                f"fold at {start}: only {max(0, train_stop - train_start)} training samples after purging "
                f"{horizon} and embargoing {embargo} (need {min_train}); use more samples or fewer splits"
            )
        folds.append(Fold(np.arange(train_start, train_stop), np.arange(start, stop)))
    return folds


def inner_split(train: Index, *, horizon: int, embargo: int, validation_fraction: float = 0.25) -> Fold:
    """Split a (contiguous) training index into an earlier training part and a later validation part, purged."""
    n = train.shape[0]
    cut = n - max(1, int(n * validation_fraction))
    stop = cut - horizon - embargo
    if stop < 50:
        raise ValueError(f"too few training samples ({n}) to tune inside the fold")
    return Fold(train[:stop], train[cut:])


def purged_kfold(n: int, *, k: int, horizon: int, embargo: int) -> Iterator[Fold]:
    """K-fold over time-ordered samples with purging on both sides of each test fold and an embargo after it.

    Not used by the walk-forward report (which never trains on the future); provided for model comparisons
    where using all the data matters more than imitating live trading.
    """
    edges = np.linspace(0, n, k + 1).round().astype(np.int64)
    every = np.arange(n)
    for start, stop in itertools.pairwise(edges):
        test = np.arange(start, stop)
        # a training sample t is kept if its label (t, t+h] ends before the fold and it starts after
        # the fold's end plus the embargo
        keep = (every + horizon < start) | (every >= stop + embargo)
        yield Fold(every[keep], test)
