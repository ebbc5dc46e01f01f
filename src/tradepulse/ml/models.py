"""The classifiers: XGBoost, LightGBM, or an ensemble averaging both; native save/load and ONNX export.

Features are fed as float32 (what ONNX Runtime's tree ensembles compare in), in training too, so native and
ONNX predictions agree to float rounding (tested to 1e-5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

ModelKind = Literal["xgboost", "lightgbm", "ensemble"]
MODEL_KINDS: tuple[str, ...] = ("xgboost", "lightgbm", "ensemble")
N_CLASSES = 3

#: small, fast defaults (the --tune grid searches around them)
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 100, "max_depth": 4, "learning_rate": 0.1},
    "lightgbm": {"n_estimators": 100, "max_depth": 4, "learning_rate": 0.1},
}

#: the seed's grid (max_depth x learning_rate x n_estimators)
SEED_GRID: dict[str, list[Any]] = {
    "max_depth": [3, 6, 9],
    "learning_rate": [0.01, 0.1, 0.3],
    "n_estimators": [100, 200, 300],
}

F32 = npt.NDArray[np.float32]


class Classifier(Protocol):
    def fit(self, X: F32, y: npt.NDArray[np.int8]) -> None: ...

    def predict_proba(self, X: F32) -> npt.NDArray[np.float64]: ...


def as_float32(X: npt.ArrayLike) -> F32:
    return np.ascontiguousarray(X, dtype=np.float32)


@dataclass
class TreeModel:
    """One gradient-boosted tree model (``xgboost`` or ``lightgbm``) with fixed hyperparameters."""

    kind: Literal["xgboost", "lightgbm"]
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 7
    n_jobs: int = 1
    model: Any = None

    def _estimator(self) -> Any:
        p = {**DEFAULT_PARAMS[self.kind], **self.params}
        if self.kind == "xgboost":
            from xgboost import XGBClassifier

            return XGBClassifier(
                **p, tree_method="hist", random_state=self.seed, n_jobs=self.n_jobs, objective="multi:softprob"
            )
        from lightgbm import LGBMClassifier

        # LightGBM's depth limit needs a matching leaf count; -1 depth means no limit
        leaves = min(2 ** int(p["max_depth"]), 63) if p.get("max_depth", -1) > 0 else 31
        return LGBMClassifier(
            **p, num_leaves=leaves, random_state=self.seed, n_jobs=self.n_jobs, verbose=-1, deterministic=True
        )

    def fit(self, X: F32, y: npt.NDArray[np.int8]) -> None:
        present = np.unique(y)
        if present.shape[0] != N_CLASSES:
            raise ValueError(f"training labels must contain SELL, HOLD and BUY; got classes {present.tolist()}")
        self.model = self._estimator()
        self.model.fit(as_float32(X), y.astype(np.int64))

    def predict_proba(self, X: F32) -> npt.NDArray[np.float64]:
        if self.kind == "lightgbm":
            # one thread (see _load_member); the Booster also skips scikit-learn's input validation
            return np.asarray(self.model.booster_.predict(as_float32(X), num_threads=1), dtype=np.float64)
        # in-place prediction on the Booster: the same probabilities as predict_proba without its overhead
        return np.asarray(self.model.get_booster().inplace_predict(as_float32(X)), dtype=np.float64).reshape(
            -1, N_CLASSES
        )

    def save(self, directory: Path) -> list[str]:
        if self.kind == "xgboost":
            name = "model.xgb.json"
            self.model.save_model(directory / name)
        else:
            name = "model.lgb.txt"
            self.model.booster_.save_model(str(directory / name))
        return [name]

    def to_onnx(self, n_features: int) -> bytes:
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        types = [("input", FloatTensorType([None, n_features]))]
        if self.kind == "xgboost":
            onx = convert_xgboost(self.model, initial_types=types, target_opset=15)
        else:
            onx = convert_lightgbm(self.model, initial_types=types, zipmap=False, target_opset=15)
        return bytes(onx.SerializeToString())


@dataclass
class EnsembleModel:
    """The mean of an XGBoost and a LightGBM model's probabilities (the seed's "try ensemble")."""

    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 7
    n_jobs: int = 1
    members: list[TreeModel] = field(default_factory=list)
    kind: str = "ensemble"

    def fit(self, X: F32, y: npt.NDArray[np.int8]) -> None:
        self.members = [
            TreeModel("xgboost", self.params.get("xgboost", {}), self.seed, self.n_jobs),
            TreeModel("lightgbm", self.params.get("lightgbm", {}), self.seed, self.n_jobs),
        ]
        for m in self.members:
            m.fit(X, y)

    def predict_proba(self, X: F32) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = np.mean([m.predict_proba(X) for m in self.members], axis=0)
        return out


Model = TreeModel | EnsembleModel


def make_model(kind: str, params: dict[str, Any] | None = None, *, seed: int = 7, n_jobs: int = 1) -> Model:
    """Return an unfitted model of ``kind``; ``params`` are its hyperparameters (per member for ``ensemble``)."""
    params = dict(params or {})
    if kind in ("xgboost", "lightgbm"):
        return TreeModel(kind, params, seed, n_jobs)  # type: ignore[arg-type]
    if kind == "ensemble":
        per_member = {k: dict(v) for k, v in params.items() if k in ("xgboost", "lightgbm")}
        shared = {k: v for k, v in params.items() if k not in ("xgboost", "lightgbm")}
        return EnsembleModel({m: {**shared, **per_member.get(m, {})} for m in ("xgboost", "lightgbm")}, seed, n_jobs)
    raise ValueError(f"unknown model {kind!r}: choose one of {', '.join(MODEL_KINDS)}")


def load_native(kind: str, directory: Path, files: list[str]) -> Model:
    """Load a saved model's native files (the inverse of :func:`save_native`)."""
    if kind == "ensemble":
        ens = EnsembleModel()
        ens.members = [_load_member(directory, f) for f in files]
        return ens
    return _load_member(directory, files[0])


def _load_member(directory: Path, name: str) -> TreeModel:
    if name.endswith(".xgb.json"):
        from xgboost import XGBClassifier

        # one thread: a served model predicts a row at a time, and an OpenMP team on a busy machine turned a
        # 0.2 ms call into 28 ms at p99 (spin-waiting threads); batch callers lose little
        clf = XGBClassifier(n_jobs=1)
        clf.load_model(directory / name)
        clf.get_booster().set_param({"nthread": 1})
        return TreeModel("xgboost", model=clf)
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(directory / name))
    return TreeModel("lightgbm", model=_BoosterHolder(booster))


class _BoosterHolder:
    """What :class:`TreeModel` needs of a fitted LGBMClassifier, from a loaded Booster."""

    def __init__(self, booster: Any) -> None:
        self.booster_ = booster


def save_native(model: Model, directory: Path) -> list[str]:
    """Save the native model file(s) into ``directory``; return their names."""
    if isinstance(model, EnsembleModel):
        names: list[str] = []
        for i, member in enumerate(model.members):
            sub = member.save(directory)
            renamed = f"member{i}.{sub[0]}"
            (directory / sub[0]).rename(directory / renamed)
            names.append(renamed)
        return names
    return model.save(directory)


def onnx_members(model: Model, n_features: int) -> list[bytes]:
    """The ONNX graph(s) of a model: one, or one per ensemble member (averaged at inference)."""
    if isinstance(model, EnsembleModel):
        return [m.to_onnx(n_features) for m in model.members]
    return [model.to_onnx(n_features)]


def describe(model: Model) -> str:
    return json.dumps(
        model.params if isinstance(model, EnsembleModel) else {**DEFAULT_PARAMS[model.kind], **model.params}
    )
