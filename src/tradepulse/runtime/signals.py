"""The signal service as a runtime component: load the promoted model (or bootstrap one), then serve.

With no promoted model in the registry (a fresh machine), ``signals.bootstrap = "train"`` trains a small model
on simulator data in a background thread — the same pipeline, validation and leakage control as
``tradepulse train`` — registers and promotes it, and starts serving when it is ready (a few seconds); the
rest of the platform starts at once. ``"skip"`` leaves the service idle with a panel line saying how to train
one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tradepulse.config import Settings
from tradepulse.runtime.component import RuntimeContext

log = logging.getLogger(__name__)


class SignalComponent:
    name = "signals"

    def __init__(self) -> None:
        self.state = "starting"
        self.service: Any = None
        self.record: Any = None
        self.backend = ""
        self._ctx: RuntimeContext | None = None

    async def start(self, ctx: RuntimeContext) -> None:
        from tradepulse.ml.registry import ModelRegistry, RegistryError

        self._ctx = ctx
        registry = ModelRegistry(ctx.settings.ml.registry_dir)
        try:
            record = registry.promoted()
        except RegistryError as exc:
            self.state = f"promoted model unreadable: {exc}"
            log.error("signals: %s", self.state)
            return
        if record is not None:
            await self._serve(ctx, record)
        elif ctx.settings.signals.bootstrap == "train":
            self.state = f"training a bootstrap model ({ctx.settings.signals.bootstrap_samples:,} samples)…"
            ctx.spawn(self._bootstrap(ctx), "signals-bootstrap")
        else:
            self.state = "idle: no promoted model (run `tradepulse train`)"

    async def _bootstrap(self, ctx: RuntimeContext) -> None:
        from tradepulse.ml.trainer import run_training

        settings = ctx.settings
        try:
            result = await asyncio.to_thread(
                run_training,
                settings,
                kind="xgboost",
                samples=settings.signals.bootstrap_samples,
                register=True,
                promote=True,
            )
        except Exception as exc:
            self.state = f"bootstrap training failed: {exc}"
            log.exception("signals: bootstrap training failed")
            return
        e = result.main.evaluation
        log.info(
            "signals: bootstrap model %s trained (held-out accuracy %.3f, chance %.3f, control %s)",
            result.record.version if result.record else "?",
            e.accuracy,
            e.chance_accuracy,
            "LEAK?" if result.leak_suspected else "ok",
        )
        if result.record is not None:
            await self._serve(ctx, result.record)

    async def _serve(self, ctx: RuntimeContext, record: Any) -> None:
        from tradepulse.ml.inference import Predictor
        from tradepulse.signals.engine import LabelSpec, SignalEngine
        from tradepulse.signals.service import SignalService, freeze_heap

        settings = ctx.settings
        predictor = await asyncio.to_thread(Predictor, record, settings.signals.inference)
        labels = record.meta.get("labels", {})
        engine = SignalEngine(
            predictor,
            record.feature_set,
            settings.signals,
            bar_seconds=float(record.meta.get("bar_seconds", settings.ml.bar_seconds)),
            labels=LabelSpec(
                method=labels.get("method", settings.ml.labels),
                horizon=int(labels.get("horizon_bars", settings.ml.horizon_bars)),
                k_sigma=float(labels.get("threshold_k", settings.ml.threshold_k)),
                vol_window=int(labels.get("vol_window", settings.ml.vol_window)),
            ),
        )
        self.service = SignalService(ctx.bus, engine, settings, latency=ctx.stage_latency("signals"))
        freeze_heap()
        await self.service.start()
        ctx.tasks.append(self.service._task)
        self.record = record
        self.backend = predictor.backend
        self.state = "serving"

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.close()

    def panel_rows(self) -> list[tuple[str, str]]:
        if self.service is None:
            return [("model", self.state)]
        engine = self.service.engine
        s = engine.counters.signals
        acc = engine.live_accuracy
        warm = min((st.features.bars_seen for st in engine.symbols.values()), default=0)
        need = engine.feature_set.warmup + 1
        return [
            ("model", f"{self.record.version} {self.record.kind} ({self.backend})"),
            ("bars closed", f"{engine.counters.bars:,}" + (f" (warming up {warm}/{need})" if warm < need else "")),
            ("signals BUY/HOLD/SELL", f"{s['BUY']:,} / {s['HOLD']:,} / {s['SELL']:,}"),
            ("orders requested", f"{self.service.published_orders:,}"),
            (
                "live accuracy",
                "waiting for labels to mature" if acc is None else f"{acc:.3f} over {engine.matured:,} labels",
            ),
        ]


def make_signal_component(settings: Settings) -> SignalComponent | None:
    return SignalComponent() if settings.signals.enabled else None
