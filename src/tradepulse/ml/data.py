"""Training data: simulator bars (the regime market and its random-walk control) or bars from a CSV file.

Simulated bars are made the way the live service makes them: the simulator's ticks (``tick_rate`` per
simulated second) aggregated into ``bar_seconds`` bars by :func:`~tradepulse.features.bars_from_ticks`, so a
model trained here is served the same kind of bars live.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tradepulse.features import BarArrays, bars_from_ticks
from tradepulse.marketdata.simulator import MarketSimulator, RegimeParams, SimulatorMode

#: simulated data starts at a fixed, whole-second epoch time so bars are aligned and runs are reproducible
EPOCH_NS = 1_700_000_000 * 1_000_000_000


@dataclass(frozen=True)
class SimulatedData:
    bars: BarArrays
    #: the true regime at each bar's close (-1 in random_walk mode); for diagnostics, never a feature
    regime: np.ndarray
    source: str


def simulate_bars(
    n_bars: int,
    *,
    mode: SimulatorMode = "regime",
    seed: int = 7,
    bar_seconds: float = 1.0,
    tick_rate: float = 20.0,
    volatility: float = 0.3,
    start_price: float = 100.0,
    regime: RegimeParams | None = None,
) -> SimulatedData:
    """Return ``n_bars`` bars of one simulated symbol."""
    if n_bars < 1:
        raise ValueError(f"n_bars must be >= 1, got {n_bars}")
    ticks_per_bar = max(1, round(bar_seconds * tick_rate))
    dt = bar_seconds / ticks_per_bar
    sim = MarketSimulator(["SIM"], seed=seed, mode=mode, volatility=volatility, start_price=start_price, regime=regime)
    # one extra tick so the last bar is closed by the first tick of the next one, as live
    ticks = sim.generate(n_bars * ticks_per_bar + 1, dt, start_ns=EPOCH_NS + round(dt * 1e9))
    bar_ns = round(bar_seconds * 1e9)
    bars = bars_from_ticks(ticks.ts_ns, ticks.price[:, 0], ticks.size[:, 0], bar_ns).slice(0, n_bars)
    regimes = ticks.regime[ticks_per_bar - 1 :: ticks_per_bar, 0][:n_bars].astype(np.int8)
    return SimulatedData(bars, regimes, f"simulator:{mode}:seed={seed}:bar={bar_seconds}s")


_COLUMNS = ("open", "high", "low", "close", "volume")


def load_bars_csv(path: str | Path) -> BarArrays:
    """Read OHLCV bars from a CSV with a header naming ``open, high, low, close, volume`` (any order, any case)
    and optionally a time column (``time``/``timestamp``/``ts_ns``, used only for ordering checks).

    Errors name the file, the line and the column: a number that does not parse, a non-positive price, high
    below low, an open or close outside [low, high], negative volume, or time going backwards.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        names = [h.strip().lower() for h in header]
        missing = [c for c in _COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{path}: line 1: missing column(s) {', '.join(missing)} (have {', '.join(names)})")
        idx = {c: names.index(c) for c in _COLUMNS}
        time_col = next((names.index(c) for c in ("time", "timestamp", "ts_ns") if c in names), None)
        rows: list[list[float]] = []
        previous_time: str | None = None
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            values = []
            for col in _COLUMNS:
                raw = row[idx[col]] if idx[col] < len(row) else ""
                try:
                    value = float(raw)
                except ValueError:
                    raise ValueError(f"{path}: line {line_no}: column {col}: {raw!r} is not a number") from None
                if not math.isfinite(value):
                    raise ValueError(f"{path}: line {line_no}: column {col}: {raw!r} is not finite")
                values.append(value)
            o, h, lo, c, v = values
            where = f"{path}: line {line_no}"
            if min(o, h, lo, c) <= 0:
                raise ValueError(f"{where}: prices must be > 0 (open={o}, high={h}, low={lo}, close={c})")
            if h < lo:
                raise ValueError(f"{where}: high {h} is below low {lo}")
            if not (lo <= o <= h and lo <= c <= h):
                raise ValueError(f"{where}: open {o} / close {c} outside [low {lo}, high {h}]")
            if v < 0:
                raise ValueError(f"{where}: column volume: {v} is negative")
            if time_col is not None and time_col < len(row):
                stamp = row[time_col].strip()
                if previous_time is not None and _time_key(stamp) <= _time_key(previous_time):
                    raise ValueError(f"{where}: column {names[time_col]}: {stamp!r} is not after {previous_time!r}")
                previous_time = stamp
            rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    a = np.asarray(rows, dtype=np.float64)
    return BarArrays(
        np.arange(a.shape[0], dtype=np.int64),
        a[:, 0].copy(),
        a[:, 1].copy(),
        a[:, 2].copy(),
        a[:, 3].copy(),
        a[:, 4].copy(),
    )


def _time_key(stamp: str) -> tuple[int, float | str]:
    try:
        return (0, float(stamp))
    except ValueError:
        return (1, stamp)  # ISO-8601 strings in one format sort as text


def fingerprint(*arrays: np.ndarray) -> str:
    """Return a SHA-256 over the arrays' bytes: which data a model was trained on, exactly."""
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(str(a.dtype).encode())
        digest.update(str(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()
