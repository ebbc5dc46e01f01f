"""A seedable, deterministic multi-symbol market simulator with a learnable regime process.

Two modes:

``regime`` (default): each symbol's log mid price ``x`` follows, per simulated second ``dt``::

    dx = mu(regime) dt - kappa(regime) (x - anchor) dt + sigma_t sqrt(dt) (sqrt(rho) z_market + sqrt(1-rho) z_own) + J

* **Regimes** (a Markov chain per symbol, persistent): ``TREND_UP`` (drift ``+trend * sigma``), ``MEAN_REVERT``
  (no drift; pulled back to the price at which the regime began with rate ``mean_reversion`` per second) and
  ``TREND_DOWN`` (drift ``-trend * sigma``). A regime lasts an exponential time with mean
  ``regime_duration_s`` and then moves to one of the two others with equal probability.
* **Volatility clustering**: ``sigma_t = sigma * exp(s_t)`` where ``s_t`` is a mean-reverting (Ornstein-Uhlenbeck)
  log-volatility with stationary standard deviation ``vol_of_vol`` and time constant ``vol_half_life_s / ln 2``;
  a jump kicks ``s_t`` up by ``jump_vol_kick`` (shocks raise volatility for a while, as in GARCH).
* **Jumps**: Poisson with intensity ``jump_rate_per_hour``; sizes normal with ``jump_sigmas`` per-second sigmas.
* **Correlation**: every symbol loads ``rho = correlation`` on one common market factor, so pairwise return
  correlation is ``rho``.
* **Microstructure**: the spread is 1 tick, widening to 2-3 ticks when volatility is high; a trade prints at the
  bid or the ask (50/50); trade sizes are round lots drawn log-normally and scaled by a U-shaped **intraday
  volume profile** over a ``session_s`` trading session (heavy at the open and the close).

``sigma`` is ``volatility`` (annualised) over ``sqrt(252 * 6.5 * 3600)`` trading seconds. With the defaults
(``trend=0.7``, ``mean_reversion=1.0``, ``regime_duration_s=300``) a trend moves the price 0.7 per-second
standard deviations per second, for five minutes on average; a mean-reverting spell pulls deviations back with
a half-life of ln 2 / 1.0 = 0.7 s.

**Why the regime structure is learnable, by design.** A regime persists for hundreds of seconds, so the drift
of the last 10-60 seconds (visible in lagged returns, SMA/EMA ratios, RSI, MACD) says which regime is on now,
and the regime is very likely still on over the next label horizon: in a trend the forward return is
``trend * sigma * h`` on average against a noise of ``sigma * sqrt(h)``, and in the mean-reverting regime the
forward return is bounded by the pull to the anchor. This is deliberately stronger than any real market; it
exists so the ML pipeline can be checked against a known answer (it must find the edge), while
``random_walk`` checks that it finds none where there is none.

``random_walk``: iid Gaussian log returns with constant volatility (no regimes, no volatility clustering, no
jumps). Trades print at the exact mid, off the tick grid: a print at the bid or ask (bid-ask bounce) or a
price rounded to the tick would make the next return slightly predictable (at one-second bars the bounce alone
is worth an IC of ~0.05), and the control must have nothing to find. Quotes stay on the grid around the mid;
the correlation across symbols and the volume profile stay, and volume is independent of returns. Nothing in
the past predicts the sign or size of a future return: the ML pipeline's leakage control relies on this.

Every random number is a standard normal drawn in a fixed order per step (uniforms come from the normal CDF),
so :meth:`MarketSimulator.step` called ``T`` times produces exactly what :meth:`MarketSimulator.generate`
produces for ``T`` steps: the live feed and the training data come from the same process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numba as nb
import numpy as np
import numpy.typing as npt

from tradepulse.domain import Tick

SECONDS_PER_YEAR = 252 * 6.5 * 3600
SimulatorMode = Literal["regime", "random_walk"]
MODES: tuple[str, ...] = ("regime", "random_walk")

TREND_UP, MEAN_REVERT, TREND_DOWN = 0, 1, 2
REGIME_NAMES = ("trend_up", "mean_revert", "trend_down")

#: standard normals per symbol per step: price, regime switch, switch target, jump occurs, jump size,
#: volatility, trade side, trade size, bid size, ask size
_PER_SYMBOL = 10

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RegimeParams:
    """Parameters of the regime mode (documented in the module docstring). Rates are per simulated second."""

    trend: float = 0.7
    mean_reversion: float = 1.0
    regime_duration_s: float = 300.0
    vol_of_vol: float = 0.3
    vol_half_life_s: float = 600.0
    jump_rate_per_hour: float = 2.0
    jump_sigmas: float = 12.0
    jump_vol_kick: float = 0.5
    correlation: float = 0.4
    session_s: float = 23_400.0


@dataclass(frozen=True, slots=True)
class TickArrays:
    """Columnar ticks: ``T`` steps × ``n`` symbols (every symbol prints once per step)."""

    symbols: tuple[str, ...]
    ts_ns: I64  # (T,)
    price: F64  # (T, n)
    size: F64
    bid: F64
    ask: F64
    bid_size: F64
    ask_size: F64
    regime: npt.NDArray[np.int8]  # (T, n): the true regime (-1 in random_walk mode); for tests and docs only


@dataclass(frozen=True, slots=True)
class BarColumns:
    """Columnar OHLCV bars: ``n_bars`` × ``n`` symbols (``start_ns`` is per bar)."""

    symbols: tuple[str, ...]
    start_ns: I64  # (n_bars,)
    open: F64  # (n_bars, n)
    high: F64
    low: F64
    close: F64
    volume: F64
    vwap: F64
    trades: I64


@nb.njit(cache=True)
def _ncdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@nb.njit(cache=True)
def _advance(
    z: F64,  # (T, 1 + n*K) standard normals
    ts_s: F64,  # (T,) simulated time of each step, seconds
    dt: float,
    random_walk: bool,
    sigma: float,
    p: F64,  # packed RegimeParams
    x: F64,  # (n,) log mid relative to start, updated in place
    anchor: F64,
    logvol: F64,
    regime: I64,
    mid_out: F64,  # (T, n) outputs
    spread_out: I64,
    buy_out: npt.NDArray[np.bool_],
    lots_out: I64,
    bid_lots_out: I64,
    ask_lots_out: I64,
    regime_out: npt.NDArray[np.int8],
    start_price: float,
) -> None:
    trend, kappa, duration, vov, half_life, jump_rate, jump_sig, kick, rho, session = (
        p[0],
        p[1],
        p[2],
        p[3],
        p[4],
        p[5],
        p[6],
        p[7],
        p[8],
        p[9],
    )
    n = x.shape[0]
    sq_dt = math.sqrt(dt)
    a_rho = math.sqrt(rho)
    b_rho = math.sqrt(1.0 - rho)
    p_switch = 1.0 - math.exp(-dt / duration)
    p_jump = 1.0 - math.exp(-dt * jump_rate / 3600.0)
    decay = math.exp(-dt * math.log(2.0) / half_life)
    vol_shock = vov * math.sqrt(1.0 - decay * decay)
    for t in range(z.shape[0]):
        zm = z[t, 0]
        frac = (ts_s[t] % session) / session
        profile = 0.6 + 1.6 * (2.0 * frac - 1.0) ** 2
        for i in range(n):
            b = 1 + i * _PER_SYMBOL
            eps = a_rho * zm + b_rho * z[t, b]
            if random_walk:
                x[i] += -0.5 * sigma * sigma * dt + sigma * sq_dt * eps
                regime_out[t, i] = -1
                vol_state = 0.0
            else:
                if _ncdf(z[t, b + 1]) < p_switch:
                    step = 1 if _ncdf(z[t, b + 2]) < 0.5 else 2
                    regime[i] = (regime[i] + step) % 3
                    anchor[i] = x[i]
                logvol[i] = decay * logvol[i] + vol_shock * z[t, b + 5]
                s = sigma * math.exp(logvol[i])
                r = 0.0
                if regime[i] == 0:
                    r = trend * sigma * dt
                elif regime[i] == 2:
                    r = -trend * sigma * dt
                else:
                    r = -kappa * (x[i] - anchor[i]) * dt
                r += s * sq_dt * eps
                if _ncdf(z[t, b + 3]) < p_jump:
                    r += jump_sig * sigma * z[t, b + 4]
                    logvol[i] += kick
                x[i] += r
                if regime[i] != 1:
                    anchor[i] = x[i]
                regime_out[t, i] = regime[i]
                vol_state = logvol[i]
            mid_out[t, i] = start_price * math.exp(x[i])
            spread_out[t, i] = 1 + (1 if vol_state > 0.35 else 0) + (1 if vol_state > 0.7 else 0)
            buy_out[t, i] = z[t, b + 6] > 0.0
            lots_out[t, i] = max(1, round(3.0 * profile * math.exp(0.6 * z[t, b + 7])))
            bid_lots_out[t, i] = max(1, round(5.0 * math.exp(0.5 * z[t, b + 8])))
            ask_lots_out[t, i] = max(1, round(5.0 * math.exp(0.5 * z[t, b + 9])))


class MarketSimulator:
    """Generate ticks for ``symbols``: :meth:`step` for live feeds, :meth:`generate` for columnar batches.

    ``mode`` is ``"regime"`` or ``"random_walk"`` (see the module docstring); ``regime`` overrides the regime
    parameters. The same seed, symbols and step times always give the same ticks.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        seed: int = 7,
        start_price: float = 100.0,
        volatility: float = 0.3,
        tick_size: float = 0.01,
        mode: SimulatorMode = "regime",
        regime: RegimeParams | None = None,
        lot_size: int = 100,
    ) -> None:
        if not symbols:
            raise ValueError("symbols: at least one symbol is needed")
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
        if not (start_price > 0 and volatility > 0 and tick_size > 0):
            raise ValueError("start_price, volatility and tick_size must be > 0")
        self.symbols = tuple(symbols)
        self.mode: SimulatorMode = mode
        self.params = regime or RegimeParams()
        if not 0.0 <= self.params.correlation < 1.0:
            raise ValueError(f"correlation: must be in [0, 1), got {self.params.correlation}")
        self._rng = np.random.default_rng(seed)
        self._tick = tick_size
        self._decimals = max(0, -math.floor(math.log10(tick_size) + 1e-9)) + 2
        self._start = start_price
        self._lot = lot_size
        self._sigma = volatility / math.sqrt(SECONDS_PER_YEAR)
        n = len(self.symbols)
        self._x = np.zeros(n)
        self._anchor = np.zeros(n)
        self._logvol = np.zeros(n)
        # the starting regime is drawn from the same stream, so it depends on the seed only
        self._regime = self._rng.integers(0, 3, n).astype(np.int64)
        p = self.params
        self._packed = np.array(
            [
                p.trend,
                p.mean_reversion,
                p.regime_duration_s,
                p.vol_of_vol,
                p.vol_half_life_s,
                p.jump_rate_per_hour,
                p.jump_sigmas,
                p.jump_vol_kick,
                p.correlation,
                p.session_s,
            ],
            dtype=np.float64,
        )

    @property
    def sigma_per_second(self) -> float:
        """The base volatility of a log return over one simulated second."""
        return self._sigma

    def generate(self, n_steps: int, dt_s: float, start_ns: int = 0) -> TickArrays:
        """Advance every symbol ``n_steps`` times by ``dt_s`` seconds and return the ticks as columns.

        Step ``k`` is stamped ``start_ns + k * dt_s`` (in nanoseconds). This is the fast path for training data;
        it continues from (and updates) the same state as :meth:`step`.
        """
        if n_steps < 0 or dt_s <= 0:
            raise ValueError(f"n_steps must be >= 0 and dt_s > 0, got {n_steps}, {dt_s}")
        dt_ns = round(dt_s * 1e9)
        ts_ns = start_ns + dt_ns * np.arange(n_steps, dtype=np.int64)
        return self._run(ts_ns, dt_s)

    def generate_bars(
        self, n_bars: int, bar_seconds: float = 60.0, ticks_per_bar: int = 20, start_ns: int = 0
    ) -> BarColumns:
        """Simulate ``n_bars`` bars of ``ticks_per_bar`` ticks each and return OHLCV columns, one per symbol.

        Bar ``j`` starts at ``start_ns + j * bar_seconds`` and holds the ticks stamped in it (the first at its
        start); open/high/low/close are trade prices, volume the sum of trade sizes, vwap the size-weighted
        price. Equal to aggregating :meth:`generate`'s ticks by time (tested).
        """
        if n_bars < 1 or ticks_per_bar < 1 or bar_seconds <= 0:
            raise ValueError("n_bars and ticks_per_bar must be >= 1 and bar_seconds > 0")
        ticks = self.generate(n_bars * ticks_per_bar, bar_seconds / ticks_per_bar, start_ns)
        n = len(self.symbols)
        price = ticks.price.reshape(n_bars, ticks_per_bar, n)
        size = ticks.size.reshape(n_bars, ticks_per_bar, n)
        volume = size.sum(axis=1)
        return BarColumns(
            symbols=self.symbols,
            start_ns=ticks.ts_ns[::ticks_per_bar].copy(),
            open=price[:, 0, :].copy(),
            high=price.max(axis=1),
            low=price.min(axis=1),
            close=price[:, -1, :].copy(),
            volume=volume,
            vwap=(price * size).sum(axis=1) / volume,
            trades=np.full((n_bars, n), ticks_per_bar, dtype=np.int64),
        )

    def step(self, ts_ns: int, dt_s: float) -> list[Tick]:
        """Advance every symbol by ``dt_s`` simulated seconds and return one tick per symbol at ``ts_ns``."""
        arrays = self._run(np.array([ts_ns], dtype=np.int64), dt_s)
        return [
            Tick(
                symbol=symbol,
                ts_ns=ts_ns,
                price=float(arrays.price[0, i]),
                size=float(arrays.size[0, i]),
                bid=float(arrays.bid[0, i]),
                ask=float(arrays.ask[0, i]),
                bid_size=float(arrays.bid_size[0, i]),
                ask_size=float(arrays.ask_size[0, i]),
                stamps={"market": ts_ns},  # one dict per tick: no message shares mutable state with another
            )
            for i, symbol in enumerate(self.symbols)
        ]

    def _run(self, ts_ns: I64, dt_s: float) -> TickArrays:
        n_steps, n = ts_ns.shape[0], len(self.symbols)
        z = self._rng.standard_normal((n_steps, 1 + n * _PER_SYMBOL))
        mid = np.empty((n_steps, n))
        spread = np.empty((n_steps, n), dtype=np.int64)
        buy = np.empty((n_steps, n), dtype=np.bool_)
        lots = np.empty((n_steps, n), dtype=np.int64)
        bid_lots = np.empty((n_steps, n), dtype=np.int64)
        ask_lots = np.empty((n_steps, n), dtype=np.int64)
        regime = np.empty((n_steps, n), dtype=np.int8)
        _advance(
            z,
            ts_ns.astype(np.float64) / 1e9,
            float(dt_s),
            self.mode == "random_walk",
            self._sigma,
            self._packed,
            self._x,
            self._anchor,
            self._logvol,
            self._regime,
            mid,
            spread,
            buy,
            lots,
            bid_lots,
            ask_lots,
            regime,
            self._start,
        )
        # quotes on the tick grid around the mid: bid <= mid <= ask, spread ``spread`` ticks
        bid_ticks = np.floor(mid / self._tick - spread / 2.0 + 0.5)
        bid_ticks = np.maximum(bid_ticks, 1.0)
        ask_ticks = bid_ticks + spread
        bid = np.round(bid_ticks * self._tick, self._decimals)
        ask = np.round(ask_ticks * self._tick, self._decimals)
        lot = float(self._lot)
        # random_walk prints at the exact mid: a print at the bid or the ask (bounce) or on the tick grid
        # (discreteness) would make the next return slightly predictable, and the control must have nothing
        price = mid.copy() if self.mode == "random_walk" else np.where(buy, ask, bid)
        return TickArrays(
            symbols=self.symbols,
            ts_ns=ts_ns,
            price=price,
            size=(lots * lot).astype(np.float64),
            bid=bid,
            ask=ask,
            bid_size=(bid_lots * lot).astype(np.float64),
            ask_size=(ask_lots * lot).astype(np.float64),
            regime=regime,
        )


__all__ = [
    "MEAN_REVERT",
    "MODES",
    "REGIME_NAMES",
    "SECONDS_PER_YEAR",
    "TREND_DOWN",
    "TREND_UP",
    "BarColumns",
    "MarketSimulator",
    "RegimeParams",
    "SimulatorMode",
    "TickArrays",
]
