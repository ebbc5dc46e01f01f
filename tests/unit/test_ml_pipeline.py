"""The known-answer checks, the registry, ONNX/native parity and the trainer's command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tradepulse.cli import app
from tradepulse.config import Settings, load_settings
from tradepulse.features import DEFAULT_FEATURES
from tradepulse.ml.data import load_bars_csv, simulate_bars
from tradepulse.ml.inference import Predictor
from tradepulse.ml.pipeline import build_dataset
from tradepulse.ml.registry import ModelRegistry, RegistryError
from tradepulse.ml.trainer import SEED_TARGET, TrainResult, run_training

#: small, seeded models keep these tests to a few seconds
SMALL = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.15}


def _settings(registry: Path, **overrides: Any) -> Settings:
    return load_settings(env={}, overrides={"ml.registry_dir": str(registry), **overrides})


@pytest.fixture(scope="module")
def known_answer(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    registry = tmp_path_factory.mktemp("registry")
    return run_training(_settings(registry), kind="xgboost", samples=10_000, params=SMALL, register=False)


def test_regime_market_is_learned_to_the_seed_target_out_of_sample(known_answer: TrainResult) -> None:
    """Known answer 1: the simulator's regimes are learnable by design; held-out walk-forward accuracy >= 0.70."""
    e = known_answer.main.evaluation
    assert e.n == 5_000  # the held-out half, predicted fold by fold by models trained only on the past
    assert e.accuracy >= SEED_TARGET
    assert e.beats_chance
    assert e.accuracy_edge_se > 3
    assert e.ic > 0.3


def test_random_walk_stays_within_three_standard_errors_of_chance(known_answer: TrainResult) -> None:
    """Known answer 2: the same pipeline finds nothing where there is nothing (no leak)."""
    c = known_answer.control.evaluation
    assert c.accuracy - c.chance_accuracy <= 3 * c.accuracy_se
    assert c.balanced_accuracy - 1 / 3 <= 3 * c.balanced_se
    assert abs(c.ic_t) < 3
    assert not known_answer.leak_suspected


def test_a_look_ahead_feature_is_caught_by_the_control() -> None:
    """The control is not decoration: leak the forward return into the features and it fires."""
    settings = load_settings(env={})
    data = simulate_bars(4_000, mode="random_walk", seed=3)
    dataset = build_dataset(data.bars, DEFAULT_FEATURES, settings.ml)
    leaked = np.column_stack([dataset.X, dataset.forward.astype(np.float32)])
    from dataclasses import replace

    from tradepulse.ml.pipeline import walk_forward_evaluate

    result = walk_forward_evaluate(replace(dataset, X=leaked), "xgboost", settings.ml, params=SMALL)
    assert result.evaluation.beats_chance


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm", "ensemble"])
def test_registry_round_trip_and_onnx_agrees_with_native(kind: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    result = run_training(settings, kind=kind, samples=2_000, params={"n_estimators": 40, "max_depth": 3})
    record = result.record
    assert record is not None
    assert record.version == "v0001"
    assert result.promoted  # the first model, no leak: promoted so the live service has one
    meta = json.loads((record.path / "meta.json").read_text())
    for key in ("version", "kind", "created", "feature_set", "params", "metrics", "data", "training_seconds"):
        assert key in meta, key
    assert len(meta["data"]["fingerprint"]) == 64
    assert meta["feature_set"] == DEFAULT_FEATURES.to_dict()
    assert all((record.path / name).is_file() for name in record.native_files + record.onnx_files)

    data = simulate_bars(1_500, seed=99)
    X = build_dataset(data.bars, DEFAULT_FEATURES, settings.ml).X
    onnx = Predictor(record, "onnx")
    native = Predictor(record, "native")
    assert (onnx.backend, native.backend) == ("onnx", "native")
    p_onnx, p_native = onnx.predict(X), native.predict(X)
    assert p_onnx.shape == (X.shape[0], 3)
    np.testing.assert_allclose(p_onnx, p_native, rtol=0, atol=1e-5)
    np.testing.assert_allclose(p_onnx.sum(axis=1), 1.0, atol=1e-5)
    for i in (0, 7, 100):
        np.testing.assert_allclose(onnx.predict_one(X[i].tolist()), p_native[i], atol=1e-5)
        np.testing.assert_allclose(native.predict_one(X[i].tolist()), p_native[i], atol=1e-12)


def test_registry_versions_promotion_and_fallback(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = run_training(settings, kind="xgboost", samples=1_500, params={"n_estimators": 20})
    second = run_training(settings, kind="xgboost", samples=1_500, params={"n_estimators": 20})
    registry = ModelRegistry(tmp_path)
    assert [r.version for r in registry.list()] == ["v0001", "v0002"]
    assert first.promoted
    assert not second.promoted
    assert registry.promoted_version() == "v0001"
    registry.promote("v0002")
    promoted = registry.promoted()
    assert promoted is not None
    assert promoted.version == "v0002"
    with pytest.raises(RegistryError, match="v0009"):
        registry.promote("v0009")
    assert registry.promoted_version() == "v0002"
    # a model whose ONNX file is missing is served natively, not refused
    (promoted.path / "model.onnx").unlink()
    predictor = Predictor(promoted, "onnx")
    assert predictor.backend == "native"
    assert predictor.fallback_reason
    assert len(predictor.predict_one([0.0] * len(DEFAULT_FEATURES.names))) == 3


runner = CliRunner()


def test_train_command_prints_the_honest_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEPULSE_ML_REGISTRY_DIR", str(tmp_path))
    result = runner.invoke(app, ["train", "--model", "lightgbm", "--samples", "2000"])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "Accuracy:",
        "Precision:",
        "Recall:",
        "F1 Score:",
        "Confusion Matrix",
        "balanced accuracy",
        "macro F1",
        "majority-class baseline",
        "IC (Spearman",
        "backtest",
        "buy-and-hold",
        "leakage control",
        "VERDICT",
        "accuracy target (>= 0.70)",
        "registered as v0001",
    ):
        assert text in out, text

    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0
    assert "v0001" in listed.output
    shown = runner.invoke(app, ["models", "show", "v0001"])
    assert shown.exit_code == 0
    assert '"fingerprint"' in shown.output
    assert runner.invoke(app, ["models", "promote", "v0001"]).exit_code == 0
    missing = runner.invoke(app, ["models", "promote", "v0042"])
    assert missing.exit_code == 1
    assert "v0042" in missing.output
    bad = runner.invoke(app, ["train", "--model", "svm", "--samples", "2000"])
    assert bad.exit_code == 2
    assert "--model" in bad.output


def test_trainer_module_has_the_same_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tradepulse.ml.trainer", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--model", "--samples", "--data", "--tune"):
        assert flag in out


def test_csv_bars_train_and_bad_files_say_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bars = simulate_bars(2_200, seed=5).bars
    good = tmp_path / "bars.csv"
    lines = ["time,open,high,low,close,volume"]
    lines += [
        f"{i},{bars.open[i]},{bars.high[i]},{bars.low[i]},{bars.close[i]},{bars.volume[i]}" for i in range(len(bars))
    ]
    good.write_text("\n".join(lines) + "\n")
    loaded = load_bars_csv(good)
    np.testing.assert_array_equal(loaded.close, bars.close)
    monkeypatch.setenv("TRADEPULSE_ML_REGISTRY_DIR", str(tmp_path / "models"))
    result = runner.invoke(app, ["train", "--samples", "2000", "--data", str(good), "--no-promote"])
    assert result.exit_code == 0, result.output
    assert "on this data's held-out period" in result.output

    bad = tmp_path / "bad.csv"
    bad.write_text("open,high,low,close,volume\n1,2,0.5,1.5,10\n1,0.9,0.5,0.7,10\n")
    with pytest.raises(ValueError, match=r"bad.csv: line 3: open 1.0 / close 0.7 outside"):
        load_bars_csv(bad)
    bad.write_text("open,high,low,close,volume\n1,2,0.5,x,10\n")
    with pytest.raises(ValueError, match=r"line 2: column close: 'x' is not a number"):
        load_bars_csv(bad)
    bad.write_text("time,open,high,low,close,volume\n2,1,2,0.5,1.5,10\n1,1,2,0.5,1.5,10\n")
    with pytest.raises(ValueError, match=r"line 3: column time"):
        load_bars_csv(bad)
    bad.write_text("open,high,close,volume\n")
    with pytest.raises(ValueError, match="missing column"):
        load_bars_csv(bad)


def test_tuning_reads_only_its_training_samples() -> None:
    """Garbage everywhere outside the training index changes nothing: the search never looks there."""
    from dataclasses import replace

    from tradepulse.ml.tuning import tune

    settings = load_settings(env={})
    dataset = build_dataset(simulate_bars(3_000, seed=8).bars, DEFAULT_FEATURES, settings.ml)
    train = np.arange(0, 1_500, dtype=np.int64)
    grid = {"max_depth": [2, 4], "learning_rate": [0.1, 0.3], "n_estimators": [10, 30]}
    clean = tune(dataset, train, "xgboost", settings.ml, grid)
    X = dataset.X.copy()
    y = dataset.y.copy()
    X[1_500:] = np.float32(1e6)
    y[1_500:] = 0
    assert tune(replace(dataset, X=X, y=y), train, "xgboost", settings.ml, grid) == clean
    assert set(clean) == set(grid)
    assert clean["max_depth"] in grid["max_depth"]


def test_signals_command_runs_alone_and_says_when_it_has_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPULSE_ML_REGISTRY_DIR", str(tmp_path))
    monkeypatch.setenv("TRADEPULSE_SIGNALS_BOOTSTRAP", "skip")
    result = runner.invoke(app, ["signals", "--transport", "memory", "--duration", "0.5", "--no-panel"])
    assert result.exit_code == 0, result.output
    assert "idle: no promoted model (run `tradepulse train`)" in result.output


async def test_run_serves_the_promoted_model_signals_and_orders_flow(tmp_path: Path) -> None:
    """The embedded runtime with a promoted model: ticks -> signals -> order requests, live accuracy."""
    from tradepulse.observability.metrics import MODEL_ACCURACY
    from tradepulse.runtime.embedded import EmbeddedRuntime

    settings = _settings(
        tmp_path,
        **{
            "market.speed": 0.0,
            "market.symbols": ["AAA", "BBB"],
            "signals.cooldown_s": 0.0,
            "signals.min_confidence": 0.0,
            # the embedded runtime also runs the execution engine: its ledger and venue journal go here too
            "database.sqlite_path": str(tmp_path / "ledger.db"),
            "venue.journal_dir": str(tmp_path / "venue"),
        },
    )
    trained = run_training(settings, samples=1_500, params={"n_estimators": 20, "max_depth": 3}, promote=True)
    assert trained.promoted
    runtime = EmbeddedRuntime(settings)
    summary = await runtime.run(duration=4.0, panel=False)
    rows = dict(summary.components["signals"])
    assert rows["model"] == "v0001 xgboost (onnx)"
    assert summary.streams["signals"]["published"] > 10
    assert sum(ops.get("published", 0) for s, ops in summary.streams.items() if s.startswith("orders:")) > 0
    assert "over" in rows["live accuracy"]  # labels matured and were scored
    assert 0.0 <= MODEL_ACCURACY.labels(model_version="v0001")._value.get() <= 1.0
    assert set(summary.latency_ms["signals"]) >= {"consume", "features", "inference", "signal", "total"}
