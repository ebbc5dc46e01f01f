"""What a model's held-out predictions are worth: classification metrics against honest baselines, the
information coefficient, and a simple long/short backtest after costs against buy-and-hold.

**Chance, honestly.** Labels of neighbouring samples overlap (each spans ``horizon`` bars), so the held-out
samples are not independent: there are about ``n / horizon`` independent ones. Standard errors here use that
effective count, which is what keeps a random walk from looking like an edge by luck. A model *beats chance*
when its accuracy exceeds the majority-class rate (the best label-blind rule, in hindsight) by more than three
such standard errors, or its balanced accuracy exceeds 1/3 by more than three.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import spearmanr

from tradepulse.ml.labels import BUY, SELL

N_CLASSES = 3


@dataclass(frozen=True)
class Backtest:
    total_return: float
    sharpe: float
    turnover: float  # mean |position change| per bar
    bh_return: float
    bh_sharpe: float
    cost_bps: float


@dataclass(frozen=True)
class Evaluation:
    n: int
    n_effective: float
    accuracy: float
    precision: float  # support-weighted, as the seed printed
    recall: float
    f1: float
    macro_f1: float
    balanced_accuracy: float
    confusion: list[list[int]]  # rows: true SELL/HOLD/BUY, columns: predicted
    class_share: list[float]  # test label distribution
    majority_accuracy: float  # always predict the training majority class
    chance_accuracy: float  # the test set's own majority rate (best label-blind rule in hindsight)
    accuracy_se: float
    balanced_se: float
    ic: float  # Spearman of P(BUY) - P(SELL) vs the forward return
    ic_t: float
    backtest: Backtest

    @property
    def accuracy_edge_se(self) -> float:
        """Accuracy above chance, in standard errors."""
        return (self.accuracy - self.chance_accuracy) / self.accuracy_se if self.accuracy_se > 0 else 0.0

    @property
    def balanced_edge_se(self) -> float:
        return (self.balanced_accuracy - 1 / 3) / self.balanced_se if self.balanced_se > 0 else 0.0

    @property
    def beats_chance(self) -> bool:
        return self.accuracy_edge_se > 3.0 or self.balanced_edge_se > 3.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["accuracy_edge_se"] = self.accuracy_edge_se
        out["balanced_edge_se"] = self.balanced_edge_se
        out["beats_chance"] = self.beats_chance
        return out


def confusion_matrix(y: npt.NDArray[np.int8], pred: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    cm = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(cm, (y.astype(np.int64), pred.astype(np.int64)), 1)
    return cm


def backtest(
    pred: npt.NDArray[np.int64],
    close: npt.NDArray[np.float64],
    *,
    cost_bps: float,
    bars_per_year: float,
) -> Backtest:
    """Hold +1 after a BUY prediction, -1 after SELL, 0 after HOLD, for the next bar; pay ``cost_bps`` per unit
    of position change. ``close`` has one more entry than ``pred`` (the close after the last decision)."""
    position = np.where(pred == BUY, 1.0, np.where(pred == SELL, -1.0, 0.0))
    ret = close[1:] / close[:-1] - 1.0
    turnover = np.abs(np.diff(np.concatenate([[0.0], position])))
    pnl = position * ret - turnover * cost_bps / 1e4
    return Backtest(
        total_return=float(np.prod(1.0 + pnl) - 1.0),
        sharpe=_sharpe(pnl, bars_per_year),
        turnover=float(turnover.mean()),
        bh_return=float(close[-1] / close[0] - 1.0),
        bh_sharpe=_sharpe(ret, bars_per_year),
        cost_bps=cost_bps,
    )


def _sharpe(pnl: npt.NDArray[np.float64], per_year: float) -> float:
    sd = float(pnl.std())
    return float(pnl.mean()) / sd * math.sqrt(per_year) if sd > 0 else 0.0


def evaluate(
    y: npt.NDArray[np.int8],
    proba: npt.NDArray[np.float64],
    *,
    train_majority: int,
    forward_return: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    horizon: int,
    cost_bps: float,
    bars_per_year: float,
) -> Evaluation:
    """Score held-out predictions (``y`` true labels, ``proba`` the model's class probabilities)."""
    pred = proba.argmax(axis=1)
    n = y.shape[0]
    cm = confusion_matrix(y, pred)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision_k = np.where(predicted > 0, tp / predicted, 0.0)
        recall_k = np.where(support > 0, tp / support, 0.0)
        f1_k = np.where(precision_k + recall_k > 0, 2 * precision_k * recall_k / (precision_k + recall_k), 0.0)
    weights = support / n
    share = support / n
    accuracy = float(tp.sum() / n)
    chance = float(share.max())
    n_eff = max(1.0, n / max(1, horizon))
    # balanced accuracy of a label-blind rule with the model's own prediction rates q_k has variance
    # (1/K^2) sum_k q_k (1 - q_k) / n_k, again with effective counts
    q = predicted / n
    n_k_eff = np.maximum(1.0, support / max(1, horizon))
    present = support > 0
    balanced_se = float(np.sqrt(np.sum((q * (1 - q) / n_k_eff)[present])) / present.sum())
    score = proba[:, BUY] - proba[:, SELL]
    ic = float(spearmanr(score, forward_return).statistic) if np.std(score) > 0 and np.std(forward_return) > 0 else 0.0
    ic_t = ic * math.sqrt(max(n_eff - 2, 1.0) / max(1e-12, 1 - ic * ic))
    return Evaluation(
        n=n,
        n_effective=n_eff,
        accuracy=accuracy,
        precision=float(np.sum(precision_k * weights)),
        recall=float(np.sum(recall_k * weights)),
        f1=float(np.sum(f1_k * weights)),
        macro_f1=float(f1_k[present].mean()),
        balanced_accuracy=float(recall_k[present].mean()),
        confusion=cm.tolist(),
        class_share=share.tolist(),
        majority_accuracy=float(np.mean(y == train_majority)),
        chance_accuracy=chance,
        accuracy_se=math.sqrt(chance * (1 - chance) / n_eff),
        balanced_se=balanced_se,
        ic=ic,
        ic_t=ic_t,
        backtest=backtest(pred, close, cost_bps=cost_bps, bars_per_year=bars_per_year),
    )
