"""The market simulator: deterministic, live steps equal batch generation, and each mode has the structure
(or the absence of structure) its docstring promises."""

from __future__ import annotations

import numpy as np
import pytest

from tradepulse.config import load_settings
from tradepulse.marketdata.simulator import MEAN_REVERT, TREND_DOWN, TREND_UP, MarketSimulator, RegimeParams
from tradepulse.ml.data import simulate_bars

SYMBOLS = ["AAA", "BBB", "CCC"]


@pytest.mark.parametrize("mode", ["regime", "random_walk"])
def test_same_seed_same_ticks_and_step_equals_generate(mode: str) -> None:
    live = MarketSimulator(SYMBOLS, seed=11, mode=mode)  # type: ignore[arg-type]
    batch = MarketSimulator(SYMBOLS, seed=11, mode=mode)  # type: ignore[arg-type]
    arrays = batch.generate(200, 0.05, start_ns=1_000_000_000)
    for k in range(200):
        ticks = live.step(1_000_000_000 + k * 50_000_000, 0.05)
        assert [t.symbol for t in ticks] == SYMBOLS
        for i, tick in enumerate(ticks):
            assert tick.ts_ns == arrays.ts_ns[k]
            assert (tick.price, tick.bid, tick.ask, tick.size) == (
                arrays.price[k, i],
                arrays.bid[k, i],
                arrays.ask[k, i],
                arrays.size[k, i],
            )
            assert tick.stamps == {"market": tick.ts_ns}
    other = MarketSimulator(SYMBOLS, seed=12, mode=mode).generate(200, 0.05)  # type: ignore[arg-type]
    assert not np.array_equal(other.price, arrays.price)


def test_quotes_are_on_the_tick_grid_and_bracket_the_trade() -> None:
    t = MarketSimulator(SYMBOLS, seed=3).generate(5000, 0.05)
    assert np.all(t.bid < t.ask)
    assert np.all((t.price == t.bid) | (t.price == t.ask))
    cents = np.round(t.bid * 100)
    np.testing.assert_allclose(t.bid * 100, cents, atol=1e-6)
    spread_ticks = np.round((t.ask - t.bid) * 100)
    assert set(np.unique(spread_ticks)) <= {1.0, 2.0, 3.0}
    assert np.all(t.size % 100 == 0)
    assert np.all(t.size > 0)


def test_regimes_persist_and_visit_all_three() -> None:
    t = MarketSimulator(["X"], seed=5).generate(200_000, 0.05)  # 10,000 simulated seconds
    r = t.regime[:, 0]
    assert set(np.unique(r)) == {TREND_UP, MEAN_REVERT, TREND_DOWN}
    switches = int(np.count_nonzero(np.diff(r)))
    mean_duration_s = 10_000 / max(1, switches)
    assert 150 < mean_duration_s < 600  # documented mean: 300 s


def test_trend_regimes_drift_the_way_they_say() -> None:
    sim = MarketSimulator(["X"], seed=9)
    t = sim.generate(400_000, 0.05)
    mid = np.log((t.bid[:, 0] + t.ask[:, 0]) / 2)
    r = np.diff(mid)
    regime = t.regime[1:, 0]
    sigma_step = sim.sigma_per_second * np.sqrt(0.05)
    up, down = r[regime == TREND_UP].mean(), r[regime == TREND_DOWN].mean()
    expected = RegimeParams().trend * sim.sigma_per_second * 0.05
    assert up > 0.5 * expected
    assert down < -0.5 * expected
    assert abs(r[regime == MEAN_REVERT].mean()) < 0.2 * expected + 3 * sigma_step / np.sqrt((regime == 1).sum())


def test_random_walk_returns_have_no_autocorrelation_and_prints_at_the_mid() -> None:
    t = MarketSimulator(["X"], seed=4, mode="random_walk").generate(100_000, 0.05)
    assert np.all(t.regime == -1)
    np.testing.assert_allclose(t.price[:, 0], t.price[:, 0])  # finite
    assert np.all((t.bid[:, 0] <= t.price[:, 0]) & (t.price[:, 0] <= t.ask[:, 0]))
    r = np.diff(np.log(t.price[:, 0]))
    for lag in (1, 2, 5, 20):
        rho = np.corrcoef(r[:-lag], r[lag:])[0, 1]
        assert abs(rho) < 4 / np.sqrt(r.size), (lag, rho)
    # constant volatility: squared returns are not autocorrelated either (no clustering)
    rho2 = np.corrcoef(r[:-1] ** 2, r[1:] ** 2)[0, 1]
    assert abs(rho2) < 4 / np.sqrt(r.size)


def test_regime_mode_clusters_volatility() -> None:
    t = MarketSimulator(["X"], seed=4).generate(200_000, 0.05)
    bars = np.log(t.price[::20, 0])  # one-second samples
    r = np.diff(bars)
    a = np.abs(r - r.mean())
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.02


def test_symbols_share_a_common_factor() -> None:
    t = MarketSimulator(["A", "B"], seed=2, mode="random_walk").generate(50_000, 0.05)
    r = np.diff(np.log(t.price), axis=0)
    rho = np.corrcoef(r[:, 0], r[:, 1])[0, 1]
    assert abs(rho - RegimeParams().correlation) < 0.03


def test_intraday_volume_profile_is_u_shaped() -> None:
    sim = MarketSimulator(["X"], seed=1)
    t = sim.generate(23_400, 1.0)  # one session, one tick per second
    size = t.size[:, 0]
    open_, mid, close = size[:2000].mean(), size[10_700:12_700].mean(), size[-2000:].mean()
    assert open_ > 1.5 * mid
    assert close > 1.5 * mid


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="symbols"):
        MarketSimulator([])
    with pytest.raises(ValueError, match="mode"):
        MarketSimulator(["X"], mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="correlation"):
        MarketSimulator(["X"], regime=RegimeParams(correlation=1.0))


def test_simulated_bars_are_ohlc_consistent() -> None:
    data = simulate_bars(2000, seed=3)
    b = data.bars
    assert len(b) == 2000
    assert data.regime.shape == (2000,)
    assert np.all(b.low <= np.minimum(b.open, b.close))
    assert np.all(np.maximum(b.open, b.close) <= b.high)
    assert np.all(np.diff(b.start_ns) == 1_000_000_000)
    assert np.all(b.volume > 0)


def test_market_settings_have_a_mode() -> None:
    settings = load_settings(env={"TRADEPULSE_MARKET_MODE": "random_walk"})
    assert settings.market.mode == "random_walk"
    assert load_settings(env={}).market.mode == "regime"


def test_generated_bars_equal_aggregated_ticks() -> None:
    from tradepulse.features import bars_from_ticks

    bars = MarketSimulator(SYMBOLS, seed=21).generate_bars(300, bar_seconds=5.0, ticks_per_bar=10, start_ns=10**12)
    ticks = MarketSimulator(SYMBOLS, seed=21).generate(3000, 0.5, start_ns=10**12)
    assert bars.close.shape == (300, 3)
    for i in range(3):
        ref = bars_from_ticks(ticks.ts_ns, ticks.price[:, i], ticks.size[:, i], 5_000_000_000)
        np.testing.assert_array_equal(bars.start_ns, ref.start_ns)
        for name in ("open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(bars, name)[:, i], getattr(ref, name))
    assert np.all((bars.low <= bars.vwap) & (bars.vwap <= bars.high))
