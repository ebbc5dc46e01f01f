"""The model registry: one directory per trained model version, and a pointer to the promoted one.

Layout under the registry root (``ml.registry_dir``, default ``var/models``)::

    v0001/meta.json          version, kind, created, feature-set definition, label and bar settings,
                             parameters, metrics (walk-forward and leakage control), data fingerprint,
                             training time, library versions, file names
    v0001/model.xgb.json     the native model (model.lgb.txt for LightGBM; member0/1.* for an ensemble)
    v0001/model.onnx         its ONNX export (member0/1.onnx for an ensemble)
    PROMOTED                 the version the live service loads

A version is written into a temporary directory and renamed into place, and ``PROMOTED`` is replaced
atomically, so a reader never sees half a model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradepulse.features import FeatureSet
from tradepulse.ml.models import Model, onnx_members, save_native

_VERSION = re.compile(r"^v(\d{4,})$")
PROMOTED = "PROMOTED"


class RegistryError(ValueError):
    """A version does not exist, or the registry holds something unreadable (the message says which)."""


@dataclass(frozen=True)
class ModelRecord:
    version: str
    path: Path
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def feature_set(self) -> FeatureSet:
        return FeatureSet.from_dict(self.meta["feature_set"])

    @property
    def native_files(self) -> list[str]:
        return list(self.meta["files"]["native"])

    @property
    def onnx_files(self) -> list[str]:
        return list(self.meta["files"]["onnx"])


def _library_versions() -> dict[str, str]:
    import lightgbm
    import onnxruntime
    import xgboost

    return {"xgboost": xgboost.__version__, "lightgbm": lightgbm.__version__, "onnxruntime": onnxruntime.__version__}


class ModelRegistry:
    """Save, list, inspect and promote model versions under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p.name) for p in self.root.iterdir() if (m := _VERSION.match(p.name))]
        return [name for _, name in sorted(found)]

    def save(
        self,
        model: Model,
        *,
        kind: str,
        feature_set: FeatureSet,
        meta: dict[str, Any],
        export_onnx: bool = True,
    ) -> ModelRecord:
        """Store ``model`` as the next version with ``meta`` (parameters, metrics, data, timing, settings)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            native = save_native(model, tmp)
            onnx: list[str] = []
            if export_onnx:
                graphs = onnx_members(model, len(feature_set.names))
                for i, graph in enumerate(graphs):
                    name = "model.onnx" if len(graphs) == 1 else f"member{i}.onnx"
                    (tmp / name).write_bytes(graph)
                    onnx.append(name)
            while True:
                existing = self._versions()
                number = int(existing[-1][1:]) + 1 if existing else 1
                version = f"v{number:04d}"
                full = {
                    "version": version,
                    "kind": kind,
                    "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "feature_set": feature_set.to_dict(),
                    "libraries": _library_versions(),
                    **meta,
                    "files": {"native": native, "onnx": onnx},
                }
                (tmp / "meta.json").write_text(json.dumps(full, indent=2, default=_json_default) + "\n")
                try:
                    os.rename(tmp, self.root / version)  # fails if another writer took this number
                except OSError:
                    if (self.root / version).exists():
                        continue
                    raise
                return ModelRecord(version, self.root / version, full)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def list(self) -> list[ModelRecord]:
        return [self.get(v) for v in self._versions()]

    def get(self, version: str) -> ModelRecord:
        path = self.root / version
        meta_file = path / "meta.json"
        if not _VERSION.match(version) or not meta_file.is_file():
            known = ", ".join(self._versions()) or "none"
            raise RegistryError(f"model {version!r} not found in {self.root} (versions: {known})")
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{meta_file}: unreadable ({exc})") from exc
        return ModelRecord(version, path, meta)

    def promote(self, version: str) -> ModelRecord:
        """Make ``version`` the one the live service loads (atomically)."""
        record = self.get(version)
        fd, tmp = tempfile.mkstemp(prefix=".promoted-", dir=self.root)
        with os.fdopen(fd, "w") as handle:
            handle.write(version + "\n")
        os.replace(tmp, self.root / PROMOTED)
        return record

    def promoted_version(self) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            text = (self.root / PROMOTED).read_text().strip()
            return text or None
        return None

    def promoted(self) -> ModelRecord | None:
        version = self.promoted_version()
        return None if version is None else self.get(version)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in meta.json")
