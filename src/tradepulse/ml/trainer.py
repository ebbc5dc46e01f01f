"""Train, evaluate honestly, control for leakage, register.

``tradepulse train --model xgboost|lightgbm|ensemble --samples 10000 [--data simulator|FILE] [--tune]``, also
``python -m tradepulse.ml.trainer`` with the same flags.

1. Bars: the simulator's regime market (``--data simulator``) or an OHLCV CSV file.
2. Features (the shared feature set) and labels (fixed horizon or triple barrier, threshold known at t).
3. Walk-forward evaluation with purging and an embargo (tuning, if asked, inside each fold's training part).
4. The **leakage control**: the very same pipeline and settings on a pure random walk of the same length. A
   pipeline that finds an "edge" there is leaking the future (or the random walk is not random); the report
   says so and the model is not promoted automatically.
5. The final model fitted on every sample, saved with its ONNX export in the registry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradepulse.config import MLConfig, Settings
from tradepulse.features import DEFAULT_FEATURES, BarArrays, FeatureSet
from tradepulse.ml.data import fingerprint, load_bars_csv, simulate_bars
from tradepulse.ml.models import DEFAULT_PARAMS, MODEL_KINDS, SEED_GRID
from tradepulse.ml.pipeline import Dataset, Progress, WalkForwardResult, build_dataset, fit_final, walk_forward_evaluate
from tradepulse.ml.registry import ModelRecord, ModelRegistry

#: the accuracy the seed promised; on the simulator's regime data it is the known-answer check
SEED_TARGET = 0.70


@dataclass
class TrainResult:
    kind: str
    data_source: str
    samples: int
    main: WalkForwardResult
    control: WalkForwardResult
    params: dict[str, Any]
    final_fit_s: float
    timings: dict[str, float] = field(default_factory=dict)
    record: ModelRecord | None = None
    promoted: bool = False
    on_simulator: bool = True
    bar_seconds: float = 1.0

    @property
    def leak_suspected(self) -> bool:
        return self.control.evaluation.beats_chance


def _bars_needed(samples: int, feature_set: FeatureSet, cfg: MLConfig) -> int:
    return samples + max(feature_set.warmup, cfg.vol_window) + cfg.horizon_bars


def load_training_bars(
    data: str, samples: int, settings: Settings, feature_set: FeatureSet = DEFAULT_FEATURES, *, mode: str = "regime"
) -> tuple[BarArrays, str]:
    """Return the bars for ``data`` (``simulator`` or a CSV path) and a description of the source."""
    cfg = settings.ml
    if data == "simulator":
        sim = simulate_bars(
            _bars_needed(samples, feature_set, cfg),
            mode=mode,  # type: ignore[arg-type]
            seed=cfg.seed,
            bar_seconds=cfg.bar_seconds,
            tick_rate=settings.market.tick_rate,
            volatility=settings.market.volatility,
            start_price=settings.market.start_price,
        )
        return sim.bars, sim.source
    bars = load_bars_csv(Path(data))
    need = _bars_needed(samples, feature_set, cfg)
    if len(bars) > need:
        bars = bars.slice(len(bars) - need, len(bars))
    return bars, f"file:{data}"


def run_training(
    settings: Settings,
    *,
    kind: str = "xgboost",
    samples: int = 10_000,
    data: str = "simulator",
    tune_grid: dict[str, list[Any]] | None = None,
    params: dict[str, Any] | None = None,
    register: bool = True,
    promote: bool | None = None,
    progress: Progress | None = None,
    feature_set: FeatureSet = DEFAULT_FEATURES,
) -> TrainResult:
    """Run the whole pipeline and return what happened. ``promote=None`` promotes only when nothing is promoted
    yet, no leak is suspected and the model beats chance out of sample."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"--model: choose one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    if samples < 500:
        raise ValueError(f"--samples: at least 500 are needed for walk-forward validation, got {samples}")
    cfg = settings.ml
    report = progress or (lambda what, done, total: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    bars, source = load_training_bars(data, samples, settings, feature_set)
    dataset = build_dataset(bars, feature_set, cfg)
    timings["data_s"] = time.perf_counter() - t0

    def scoped(prefix: str) -> Progress:
        return lambda what, done, total: report(f"{prefix}{what}", done, total)

    main = walk_forward_evaluate(dataset, kind, cfg, params=params, tune_grid=tune_grid, progress=scoped(""))
    timings["walk_forward_s"] = main.seconds
    model, chosen, fit_s = fit_final(dataset, kind, cfg, params=params, tune_grid=tune_grid, progress=scoped("final "))
    timings["final_fit_s"] = fit_s

    t1 = time.perf_counter()
    control_bars, _ = load_training_bars("simulator", len(dataset), settings, feature_set, mode="random_walk")
    control_data = build_dataset(control_bars, feature_set, cfg)
    control = walk_forward_evaluate(
        control_data, kind, cfg, params=params, tune_grid=tune_grid, progress=scoped("control ")
    )
    timings["control_s"] = time.perf_counter() - t1

    result = TrainResult(
        kind=kind,
        data_source=source,
        samples=len(dataset),
        main=main,
        control=control,
        params=dict(chosen.items()) or _defaults(kind),
        final_fit_s=fit_s,
        timings=timings,
        on_simulator=data == "simulator",
        bar_seconds=cfg.bar_seconds,
    )
    if register:
        t2 = time.perf_counter()
        registry = ModelRegistry(settings.ml.registry_dir)
        result.record = registry.save(
            model,
            kind=kind,
            feature_set=feature_set,
            meta=_meta(result, dataset, cfg, settings),
        )
        timings["register_s"] = time.perf_counter() - t2
        should = (
            promote
            if promote is not None
            else (
                registry.promoted_version() is None
                and not result.leak_suspected
                and result.main.evaluation.beats_chance
            )
        )
        if should:
            registry.promote(result.record.version)
            result.promoted = True
    timings["total_s"] = time.perf_counter() - t0
    return result


def _defaults(kind: str) -> dict[str, Any]:
    if kind == "ensemble":
        return {m: DEFAULT_PARAMS[m] for m in ("xgboost", "lightgbm")}
    return dict(DEFAULT_PARAMS[kind])


def _meta(result: TrainResult, dataset: Dataset, cfg: MLConfig, settings: Settings) -> dict[str, Any]:
    return {
        "params": result.params,
        "bar_seconds": cfg.bar_seconds,
        "labels": {
            "method": cfg.labels,
            "horizon_bars": cfg.horizon_bars,
            "threshold_k": cfg.threshold_k,
            "vol_window": cfg.vol_window,
        },
        "validation": {
            "scheme": "walk-forward, expanding"
            if not cfg.train_window
            else f"walk-forward, sliding {cfg.train_window}",
            "n_splits": cfg.n_splits,
            "test_fraction": cfg.test_fraction,
            "purge_bars": cfg.horizon_bars,
            "embargo_bars": cfg.embargo_bars,
        },
        "metrics": {
            "walk_forward": result.main.evaluation.as_dict(),
            "fold_accuracy": result.main.fold_accuracy,
            "control_random_walk": result.control.evaluation.as_dict(),
            "leak_suspected": result.leak_suspected,
        },
        "data": {
            "source": result.data_source,
            "samples": len(dataset),
            "fingerprint": fingerprint(dataset.X, dataset.y),
            "market": {"volatility": settings.market.volatility, "tick_rate": settings.market.tick_rate},
        },
        "training_seconds": result.final_fit_s,
        "pipeline_seconds": result.timings,
    }


def main() -> None:
    """``python -m tradepulse.ml.trainer``: the same command as ``tradepulse train``."""
    from tradepulse.ml.cli import train_main

    train_main()


if __name__ == "__main__":
    main()

__all__ = ["SEED_GRID", "SEED_TARGET", "TrainResult", "load_training_bars", "run_training"]
