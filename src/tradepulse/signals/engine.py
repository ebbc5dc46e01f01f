"""The signal engine: ticks in; bars, online features, model probabilities, signals and order requests out.

Pure logic (no bus, no clock): :class:`~tradepulse.signals.service.SignalService` feeds it from the ``ticks``
stream and publishes what it returns. Per symbol it keeps a bar builder, the online feature set, the
volatility that scales labels, and the predictions waiting for their labels to mature.

Signals happen on bar closes: a bar is closed by the first tick of a later bar, and that tick's stamps carry
on into the signal (``features`` and ``inference`` stamps are added), so tick -> signal latency is measured
from the tick that triggered it.

Orders: a BUY or SELL signal whose confidence reaches ``min_confidence`` becomes a market ``SubmitOrder`` sized
by the sizing policy, unless the symbol is in its cooldown or the order would take this service's own signed
exposure beyond ``max_position``. The client order id is ``{strategy}:{symbol}:{bar end ns}``: the same bar
always gives the same id, so a redelivered tick can never become a second order (the engine dedupes by it,
and here a tick not newer than the symbol's last one is ignored and counted, so it cannot touch a bar twice).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from tradepulse.config import SignalsConfig
from tradepulse.domain import Side, Signal, SignalAction, SubmitOrder, Tick
from tradepulse.domain.orders import validate_client_order_id
from tradepulse.features import BarBuilder, ClosedBar, FeatureSet, OnlineFeatures
from tradepulse.features.online import OnlineLogReturn, OnlineStddev
from tradepulse.signals.sizing import SizingPolicy, lot_decimal, make_sizing

ACTIONS = (SignalAction.SELL, SignalAction.HOLD, SignalAction.BUY)
SELL, HOLD, BUY = 0, 1, 2


class ProbabilityModel(Protocol):
    """What the engine needs of a model (``tradepulse.ml.inference.Predictor`` is one)."""

    @property
    def version(self) -> str: ...

    def predict_one(self, features: Sequence[float]) -> tuple[float, float, float]: ...


@dataclass(frozen=True)
class LabelSpec:
    """How the served model's labels are defined (from its registry record), so live accuracy matches it."""

    method: str = "fixed_horizon"
    horizon: int = 10
    k_sigma: float = 0.5
    vol_window: int = 30


@dataclass
class _Pending:
    close: float
    threshold: float
    predicted: int


@dataclass
class SymbolState:
    bars: BarBuilder
    features: OnlineFeatures
    ret: OnlineLogReturn
    vol: OnlineStddev
    recent: deque[ClosedBar]
    pending: deque[_Pending | None]
    position: Decimal = Decimal(0)
    last_order_ns: int | None = None
    last_ts_ns: int = -1
    bars_closed: int = 0


@dataclass
class EngineCounters:
    bars: int = 0
    signals: dict[str, int] = field(default_factory=lambda: {"BUY": 0, "HOLD": 0, "SELL": 0})
    orders: int = 0
    skipped_confidence: int = 0
    skipped_cooldown: int = 0
    skipped_position: int = 0
    matured: int = 0
    stale_ticks: int = 0


def client_order_id(strategy_id: str, symbol: str, ts_ns: int) -> str:
    """Return the deterministic client order id of a signal (<= 64 characters, hashed when longer)."""
    cid = f"{strategy_id}:{symbol}:{ts_ns}"
    if len(cid) <= 64:
        return cid
    return f"{strategy_id[:24]}:{hashlib.sha256(cid.encode()).hexdigest()[:32]}"


class SignalEngine:
    """Turn ticks into signals and order requests for every symbol it sees."""

    def __init__(
        self,
        model: ProbabilityModel,
        feature_set: FeatureSet,
        cfg: SignalsConfig,
        *,
        bar_seconds: float,
        labels: LabelSpec,
        sizing: SizingPolicy | None = None,
    ) -> None:
        # an id this strategy cannot form would fail every order later; refuse it now, naming the setting
        validate_client_order_id(client_order_id(cfg.strategy_id, "X", 0), "signals.strategy_id")
        self.model = model
        self.feature_set = feature_set
        self.cfg = cfg
        self.labels = labels
        self.bar_ns = round(bar_seconds * 1e9)
        self.sizing = sizing or make_sizing(cfg)
        self.symbols: dict[str, SymbolState] = {}
        self.counters = EngineCounters()
        self._hits: deque[bool] = deque(maxlen=cfg.accuracy_window)
        self._max_position = Decimal(repr(cfg.max_position))
        self._lot = lot_decimal(cfg.lot_size)
        self._cooldown_ns = round(cfg.cooldown_s * 1e9)
        self._sqrt_h = math.sqrt(labels.horizon)

    @property
    def live_accuracy(self) -> float | None:
        """Accuracy over the last ``accuracy_window`` matured labels (None before the first)."""
        return sum(self._hits) / len(self._hits) if self._hits else None

    @property
    def matured(self) -> int:
        return len(self._hits)

    def _state(self, symbol: str) -> SymbolState:
        state = self.symbols.get(symbol)
        if state is None:
            state = self.symbols[symbol] = SymbolState(
                bars=BarBuilder(self.bar_ns),
                features=self.feature_set.online(),
                ret=OnlineLogReturn(1),
                vol=OnlineStddev(self.labels.vol_window),
                recent=deque(maxlen=self.labels.horizon),
                pending=deque(),
            )
        return state

    def on_tick(self, tick: Tick) -> tuple[Signal | None, SubmitOrder | None]:
        """Feed one tick; return the signal and order request it triggered (usually neither)."""
        state = self._state(tick.symbol)
        if tick.ts_ns <= state.last_ts_ns:
            # a redelivered or out-of-order tick: per symbol, ticks arrive with strictly increasing times
            self.counters.stale_ticks += 1
            return None, None
        state.last_ts_ns = tick.ts_ns
        bar = state.bars.add(tick.ts_ns, tick.price, tick.size)
        if bar is None:
            return None, None
        return self._on_bar(tick, state, bar)

    def _on_bar(self, tick: Tick, state: SymbolState, bar: ClosedBar) -> tuple[Signal | None, SubmitOrder | None]:
        self.counters.bars += 1
        state.bars_closed += 1
        stamps = dict(tick.stamps)
        if "consume" not in stamps:
            # when this tick's turn came (so queueing behind a batch counts as consume, not features)
            stamps["consume"] = time.time_ns()
        vector = state.features.update(bar.open, bar.high, bar.low, bar.close, bar.volume)
        r = state.ret.update(bar.close)
        sigma = state.vol.update(r) if not math.isnan(r) else math.nan
        self._mature(state, bar)
        state.recent.append(bar)
        if not state.features.ready:
            state.pending.append(None)
            return None, None
        stamps["features"] = time.time_ns()
        p_sell, p_hold, p_buy = self.model.predict_one(vector)
        stamps["inference"] = time.time_ns()
        probs = (p_sell, p_hold, p_buy)
        best = BUY if p_buy >= p_sell and p_buy >= p_hold else (SELL if p_sell >= p_hold else HOLD)
        action = ACTIONS[best]
        confidence = min(1.0, max(0.0, probs[best]))
        threshold = self.labels.k_sigma * sigma * self._sqrt_h
        state.pending.append(_Pending(bar.close, threshold, best))
        self.counters.signals[action.value] += 1
        end_ns = bar.start_ns + self.bar_ns
        stamps["signal"] = time.time_ns()
        signal = Signal(
            symbol=tick.symbol,
            action=action,
            confidence=confidence,
            model_version=self.model.version,
            ts_ns=end_ns,
            price=Decimal(repr(float(bar.close))),
            probabilities=probs,
            stamps=stamps,
        )
        return signal, self._order(tick.symbol, state, action, confidence, bar.close, sigma, end_ns, stamps)

    def _order(
        self,
        symbol: str,
        state: SymbolState,
        action: SignalAction,
        confidence: float,
        price: float,
        sigma: float,
        end_ns: int,
        stamps: dict[str, int],
    ) -> SubmitOrder | None:
        if action is SignalAction.HOLD:
            return None
        if confidence < self.cfg.min_confidence:
            self.counters.skipped_confidence += 1
            return None
        if state.last_order_ns is not None and end_ns - state.last_order_ns < self._cooldown_ns:
            self.counters.skipped_cooldown += 1
            return None
        side = Side.BUY if action is SignalAction.BUY else Side.SELL
        qty = self.sizing.quantity(price, sigma * self._sqrt_h)
        room = self._max_position - state.position * side.sign
        if room < qty:  # capped: the room, rounded down to the lot
            qty = max((room / self._lot).to_integral_value(rounding=ROUND_DOWN) * self._lot, Decimal(0))
        if qty <= 0:
            self.counters.skipped_position += 1
            return None
        state.position += qty * side.sign
        state.last_order_ns = end_ns
        self.counters.orders += 1
        return SubmitOrder(
            client_order_id=client_order_id(self.cfg.strategy_id, symbol, end_ns),
            symbol=symbol,
            side=side,
            quantity=qty,
            strategy_id=self.cfg.strategy_id,
            ts_ns=end_ns,
            stamps={**stamps, "order": time.time_ns()},
        )

    def _mature(self, state: SymbolState, bar: ClosedBar) -> None:
        """Score the prediction made ``horizon`` bars ago now that its label is known."""
        if len(state.pending) < self.labels.horizon:
            return
        pending = state.pending.popleft()
        if pending is None or math.isnan(pending.threshold):
            return
        # recent holds bars t .. t+horizon-1: keep t+1 .. t+horizon
        window = [*list(state.recent)[1:], bar]
        truth = self._label(pending, window)
        self._hits.append(truth == pending.predicted)
        self.counters.matured += 1

    def _label(self, p: _Pending, window: list[ClosedBar]) -> int:
        if self.labels.method == "triple_barrier":
            up = p.close * math.exp(p.threshold)
            down = p.close * math.exp(-p.threshold)
            for b in window:
                if b.low < down:
                    return SELL
                if b.high > up:
                    return BUY
            return HOLD
        fwd = math.log(window[-1].close / p.close)
        if fwd > p.threshold:
            return BUY
        if fwd < -p.threshold:
            return SELL
        return HOLD
