"""The two input paths agree: numpy columns and Decimal mappings give equal problems, plans, orders and errors.

Columns are drawn at random scales (quantity, price and weight decimals), turned into Decimal inputs here,
independently of the library's own helpers, and both paths must build *equal* problems (same canonical arrays,
same fingerprint), equal plans with both engines, and, when one value is made invalid, the same error naming
the same symbol and field.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tradepulse.portfolio.rebalance import (
    RebalanceInputError,
    RebalanceOptions,
    build_problem,
    build_problem_arrays,
    decimal_inputs,
    rebalance_baseline,
    rebalance_vectorized,
    security,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# short and long symbols (over 8 characters they sort on two packed keys), sharing prefixes
SYMBOL = st.from_regex(r"[A-C][A-C0-9]{0,2}([A-C0-9]{6,9})?([.\-][A-Z0-9]{1,2})?", fullmatch=True)


@st.composite
def columns(draw: Any, *, min_rows: int = 0) -> dict[str, Any]:
    """Return build_problem_arrays' keyword arguments for a random small portfolio at random scales."""
    n = draw(st.integers(min_rows, 9))
    names = draw(st.lists(SYMBOL, min_size=n, max_size=n, unique=True))
    qd = draw(st.integers(0, 6))
    pd = draw(st.integers(0, 4))
    wd = draw(st.integers(2, 12))
    fs = draw(st.integers(0, qd))  # the fractional step is 10**-fs shares
    f_units = 10 ** (qd - fs)
    ticks, prices, lots, flags, quantities = [], [], [], [], []
    for _ in range(n):
        tick = draw(st.sampled_from([1, 1, 5, 10]))
        ticks.append(tick)
        prices.append(tick * draw(st.integers(1, 5 * 10**pd // tick + 2000)))
        lots.append(10**qd * draw(st.sampled_from([1, 1, 2, 10, 100])))
        flags.append(fs > 0 and draw(st.booleans()))
        step = f_units if flags[-1] else lots[-1]
        quantities.append(step * draw(st.integers(0, 60)) if draw(st.integers(0, 3)) else 0)
    raw = [draw(st.integers(0, 20)) if draw(st.integers(0, 4)) else 0 for _ in range(n)]
    invested = draw(st.sampled_from([100, 100, 97, 80]))
    total = sum(raw) or 1
    weights = [r * invested * 10**wd // (100 * total) for r in raw]
    options = RebalanceOptions(
        drift_abs=draw(st.sampled_from([None, Decimal("0.01"), Decimal("0.05")])),
        drift_rel=draw(st.sampled_from([None, Decimal("0.1"), Decimal("0.25")])),
        min_trade_notional=Decimal(draw(st.sampled_from([0, 10, 50]))),
        cash_buffer=Decimal(draw(st.sampled_from([0, 25, 100]))),
        max_turnover=draw(st.sampled_from([None, None, Decimal("0.5")])),
        fee_per_order=Decimal(draw(st.sampled_from([0, 1]))),
        fee_rate=draw(st.sampled_from([Decimal(0), Decimal("0.001")])),
        fractional_step=Decimal(1).scaleb(-fs),
        allow_sells=draw(st.integers(0, 5)) > 0,
    )
    return {
        "symbols": np.array(names, dtype=str),
        "quantities": np.array(quantities, dtype=np.int64),
        "prices": np.array(prices, dtype=np.int64),
        "weights": np.array(weights, dtype=np.int64),
        "lot_sizes": np.array(lots, dtype=np.int64),
        "tick_sizes": np.array(ticks, dtype=np.int64),
        "fractional": np.array(flags, dtype=np.bool_),
        "quantity_decimals": qd,
        "price_decimals": pd,
        "weight_decimals": wd,
        "cash": Decimal(draw(st.integers(0, 2_000_000))) / 100,
        "options": options,
    }


def as_decimals(cols: dict[str, Any]) -> dict[str, Any]:
    """Return build_problem's arguments for the same portfolio, every number written as a plain Decimal."""
    qd, pd, wd = cols["quantity_decimals"], cols["price_decimals"], cols["weight_decimals"]

    def dec(units: Any, places: int) -> Decimal:
        return Decimal(int(units)) / Decimal(10) ** places

    secs, holdings, targets = [], {}, {}
    for i, name in enumerate(cols["symbols"].tolist()):
        secs.append(
            security(
                name,
                dec(cols["prices"][i], pd),
                dec(cols["lot_sizes"][i], qd),
                fractional=bool(cols["fractional"][i]),
                tick_size=dec(cols["tick_sizes"][i], pd),
            )
        )
        holdings[name] = dec(cols["quantities"][i], qd)
        targets[name] = dec(cols["weights"][i], wd)
    return {
        "cash": cols["cash"],
        "holdings": holdings,
        "securities": secs,
        "targets": targets,
        "options": cols["options"],
    }


def rescaled(cols: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Return the same portfolio in shuffled rows and finer units (more decimals), which must not matter."""
    order = rng.permutation(len(cols["symbols"]))
    out = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in cols.items()}
    dq = min(2, 12 - cols["quantity_decimals"])
    dp = min(3, 12 - cols["price_decimals"])
    dw = 12 - cols["weight_decimals"]
    for key, shift in (("quantities", dq), ("lot_sizes", dq), ("prices", dp), ("tick_sizes", dp), ("weights", dw)):
        out[key] = out[key] * 10**shift
    out["quantity_decimals"] += dq
    out["price_decimals"] += dp
    out["weight_decimals"] += dw
    return out


@SETTINGS
@given(columns(), st.integers(0, 2**32 - 1))
def test_both_input_paths_build_equal_problems_and_plans(cols: dict[str, Any], seed: int) -> None:
    fast = build_problem_arrays(**cols)
    slow = build_problem(**as_decimals(cols))
    assert fast.symbols == tuple(sorted(cols["symbols"].tolist()))
    assert fast == slow
    assert fast.fingerprint() == slow.fingerprint()
    assert (fast.quantities, fast.prices, fast.steps, fast.weights) == (
        slow.quantities,
        slow.prices,
        slow.steps,
        slow.weights,
    )
    again = build_problem_arrays(**rescaled(cols, np.random.default_rng(seed)))
    assert again == fast
    assert again.fingerprint() == fast.fingerprint()

    plan = rebalance_vectorized(fast)
    assert plan == rebalance_vectorized(slow) == rebalance_baseline(fast) == rebalance_baseline(slow)
    assert plan.trades == rebalance_vectorized(slow).trades
    assert plan.positions == rebalance_vectorized(slow).positions
    assert plan.submit_orders() == rebalance_vectorized(slow).submit_orders()


@SETTINGS
@given(columns())
def test_the_library_conversion_to_decimals_agrees(cols: dict[str, Any]) -> None:
    assert build_problem(**decimal_inputs(**cols)) == build_problem_arrays(**cols)


FAULTS = (
    "price",
    "off_tick",
    "lot",
    "quantity",
    "not_multiple",
    "weight_neg",
    "weight_big",
    "weight_sum",
    "dup",
    "name",
)


@SETTINGS
@given(columns(min_rows=2), st.sampled_from(FAULTS), st.data())
def test_both_input_paths_refuse_the_same_bad_value(cols: dict[str, Any], fault: str, data: Any) -> None:
    n = len(cols["symbols"])
    i = data.draw(st.integers(0, n - 1))
    qd, wd = cols["quantity_decimals"], cols["weight_decimals"]
    f_units = int(cols["options"].fractional_step.scaleb(qd))
    step = f_units if cols["fractional"][i] else int(cols["lot_sizes"][i])
    if fault == "price":
        cols["prices"][i] = -data.draw(st.integers(0, 3)) * cols["tick_sizes"][i]
    elif fault == "off_tick":
        assume(cols["tick_sizes"][i] > 1)
        cols["prices"][i] += 1
    elif fault == "lot":
        cols["lot_sizes"][i] = -data.draw(st.integers(0, 3)) * 10**qd
    elif fault == "quantity":
        cols["quantities"][i] = -step * data.draw(st.integers(1, 3))
    elif fault == "not_multiple":
        assume(step > 1)
        cols["quantities"][i] += 1
    elif fault == "weight_neg":
        cols["weights"][i] = -1
    elif fault == "weight_big":
        cols["weights"][i] = 10**wd + 1
    elif fault == "weight_sum":
        j = (i + 1) % n
        cols["weights"][i] = cols["weights"][j] = 10**wd // 2 + 1
    elif fault == "dup":
        cols["symbols"][i] = cols["symbols"][(i + 1) % n]
    else:
        cols["symbols"] = np.array([*cols["symbols"][:i].tolist(), "B C", *cols["symbols"][i + 1 :].tolist()])

    with pytest.raises(RebalanceInputError) as fast:
        build_problem_arrays(**cols)
    with pytest.raises(RebalanceInputError) as slow:
        build_problem(**as_decimals(cols))
    assert (fast.value.symbol, fast.value.field) == (slow.value.symbol, slow.value.field)
    if fault not in ("lot", "dup", "name"):  # those two are refused by security(), in its own words
        assert str(fast.value) == str(slow.value)
