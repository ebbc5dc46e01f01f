"""Serving a registered model: ONNX Runtime first (single-threaded), the native model as the fallback.

Single-row calls dominate live serving, and for one row thread pools cost more than they save, so the ONNX
session runs with ``intra_op_num_threads = inter_op_num_threads = 1``. :meth:`Predictor.predict_one` reuses one
preallocated float32 input row. An ensemble's ONNX members run one after the other and are averaged, as the
native ensemble is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tradepulse.ml.models import Model, as_float32, load_native
from tradepulse.ml.registry import ModelRecord

log = logging.getLogger(__name__)

Backend = Literal["onnx", "native"]


def onnx_session(path: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # LightGBM graphs declare a batch of 1 on an output; harmless, but loud
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class Predictor:
    """Class probabilities (SELL, HOLD, BUY) from a registered model."""

    def __init__(self, record: ModelRecord, prefer: Backend = "onnx") -> None:
        self.record = record
        self.version = record.version
        self.n_features = len(record.feature_set.names)
        self._row = np.zeros((1, self.n_features), dtype=np.float32)
        self._native: Model | None = None
        self._sessions: list[Any] = []
        self.fallback_reason: str | None = None
        if prefer == "onnx":
            try:
                if not record.onnx_files:
                    raise FileNotFoundError("the model was saved without an ONNX export")
                self._sessions = [onnx_session(str(record.path / name)) for name in record.onnx_files]
                self._outputs = [self._probability_output(s) for s in self._sessions]
            except Exception as exc:  # any ORT failure: serve the native model rather than nothing
                self.fallback_reason = f"{type(exc).__name__}: {exc}"
                log.warning("model %s: ONNX unavailable (%s); using the native model", self.version, exc)
                self._sessions = []
        self.backend: Backend = "onnx" if self._sessions else "native"
        if self.backend == "native":
            self._native = load_native(record.kind, record.path, record.native_files)

    @staticmethod
    def _probability_output(session: Any) -> str:
        names = [o.name for o in session.get_outputs()]
        return "probabilities" if "probabilities" in names else names[-1]

    def native(self) -> Model:
        """The native model (loaded on first use when ONNX serves)."""
        if self._native is None:
            self._native = load_native(self.record.kind, self.record.path, self.record.native_files)
        return self._native

    def predict(self, X: npt.ArrayLike, backend: Backend | None = None) -> npt.NDArray[np.float64]:
        """Return the ``(n, 3)`` probabilities for the rows of ``X``."""
        X32 = as_float32(X)
        if (backend or self.backend) == "onnx" and self._sessions:
            outs = [
                np.asarray(s.run([name], {"input": X32})[0], dtype=np.float64)
                for s, name in zip(self._sessions, self._outputs, strict=True)
            ]
            return outs[0] if len(outs) == 1 else np.mean(outs, axis=0)
        return self.native().predict_proba(X32)

    def predict_one(self, features: Sequence[float]) -> tuple[float, float, float]:
        """Return (P(SELL), P(HOLD), P(BUY)) for one feature vector."""
        row = self._row
        row[0, :] = features
        if self._sessions:
            if len(self._sessions) == 1:
                p = self._sessions[0].run([self._outputs[0]], {"input": row})[0][0]
            else:
                p = np.mean(
                    [s.run([o], {"input": row})[0][0] for s, o in zip(self._sessions, self._outputs, strict=True)],
                    axis=0,
                )
        else:
            p = self.native().predict_proba(row)[0]
        return float(p[0]), float(p[1]), float(p[2])
