"""The columnar input path on hand-made portfolios: scales, ordering, ownership of the arrays, and bad columns."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import numpy as np
import pytest

from tradepulse.domain import Side
from tradepulse.portfolio.rebalance import (
    RebalanceInputError,
    RebalanceOptions,
    build_problem,
    build_problem_arrays,
    rebalance,
    security,
)

OPTIONS = RebalanceOptions(drift_abs=D("0.02"), min_trade_notional=D(50), cash_buffer=D(100), fee_per_order=D(1))


def book(**overrides: Any) -> dict[str, Any]:
    """Return the README's example portfolio as columns (AAPL held, OLD to sell, VTI new and fractional)."""
    cols: dict[str, Any] = {
        "symbols": np.array(["AAPL", "OLD", "VTI"]),
        "quantities": np.array([120_0000, 300_0000, 0]),  # 10**-4 shares
        "prices": np.array([19012, 1240, 25130]),  # cents
        "weights": np.array([500_000_000, 0, 450_000_000]),  # parts per 10**9
        "fractional": np.array([False, False, True]),
        "cash": "2500",
        "options": OPTIONS,
    }
    cols.update(overrides)
    return cols


def test_columns_give_the_same_problem_and_orders_as_decimals() -> None:
    problem = build_problem_arrays(**book())
    same = build_problem(
        cash="2500",
        holdings={"AAPL": 120, "OLD": 300},
        securities=[security("AAPL", "190.12"), security("OLD", "12.40"), security("VTI", "251.30", fractional=True)],
        targets={"AAPL": "0.5", "VTI": "0.45"},
        options=OPTIONS,
    )
    assert problem == same
    plan = rebalance(problem)
    assert plan == rebalance(same)
    assert [(t.side, t.symbol, str(t.quantity), str(t.price)) for t in plan.trades] == [
        (Side.SELL, "AAPL", "44", "190.12"),  # V = 29,034.40, I = 28,934.40: AAPL 14,467.20 -> 76 shares
        (Side.SELL, "OLD", "300", "12.40"),
        (Side.BUY, "VTI", "51.8125", "251.30"),  # 13,020.48 / 251.30 = 51.81249.. -> the nearest 1e-4
    ]
    assert [o.client_order_id for o in plan.submit_orders()] == [
        o.client_order_id for o in rebalance(same).submit_orders()
    ]


def test_securities_rebuilt_from_columns_round_trip() -> None:
    problem = build_problem_arrays(**book(tick_sizes=np.array([1, 5, 10]), lot_sizes=np.array([10000, 1000000, 10000])))
    secs = problem.securities
    assert [(s.symbol, s.price, s.instrument.lot_size, s.instrument.tick_size, s.fractional) for s in secs] == [
        ("AAPL", D("190.12"), 1, D("0.01"), False),
        ("OLD", D("12.40"), 100, D("0.05"), False),
        ("VTI", D("251.30"), 1, D("0.1"), True),
    ]
    again = build_problem(
        cash=problem.cash,
        holdings=dict(zip(problem.symbols, problem.quantities, strict=True)),
        securities=secs,
        targets=dict(zip(problem.symbols, problem.weights, strict=True)),
        options=problem.options,
    )
    assert again == problem


def test_rows_in_any_order_and_the_callers_arrays_stay_the_callers() -> None:
    order = np.array([2, 0, 1])
    shuffled = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in book().items()}
    problem = build_problem_arrays(**shuffled)
    assert problem.symbols == ("AAPL", "OLD", "VTI")
    assert problem == build_problem_arrays(**book())
    cols = book()
    sorted_problem = build_problem_arrays(**cols)
    cols["quantities"][0] = 0  # the caller reuses its buffers: the problem must not change under it
    cols["symbols"][0] = "ZZZ"
    assert sorted_problem == build_problem_arrays(**book())


def test_scales_are_the_callers_choice() -> None:
    cents = build_problem_arrays(**book())
    finer = build_problem_arrays(
        **book(
            quantities=np.array([120_000_000, 300_000_000, 0]),
            quantity_decimals=6,
            prices=np.array([1901200, 124000, 2513000]),
            price_decimals=4,
            tick_sizes=np.full(3, 100),
            weights=np.array([50, 0, 45]),
            weight_decimals=2,
            lot_sizes=np.full(3, 1_000_000, dtype=np.uint32),
        )
    )
    assert finer == cents  # the same canonical columns, whatever units they came in
    assert finer.fingerprint() == cents.fingerprint()
    # with whole-share quantities a fractional step of 1e-4 cannot be expressed: say so
    with pytest.raises(RebalanceInputError, match=r"fractional_step: 0\.0001 has more decimal places"):
        build_problem_arrays(**book(quantities=np.array([120, 300, 0]), quantity_decimals=0))


def test_an_empty_book_is_only_cash() -> None:
    empty = np.zeros(0, dtype=np.int64)
    problem = build_problem_arrays(
        symbols=np.array([], dtype=str), quantities=empty, prices=empty, weights=empty, cash="10"
    )
    assert len(problem) == 0
    assert len(rebalance(problem)) == 0
    assert rebalance(problem).cash_after == 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prices": np.array([190.12, 12.40, 251.30])}, "price: must be integers in units of 10**-2, not float64"),
        ({"weights": np.array([1, 2])}, "weight: expected one value per symbol (3), got shape (2,)"),
        ({"symbols": np.array(["AAPL", "B C", "VTI"])}, "B C: symbol: 'B C' must be 1-32 letters"),
        ({"symbols": np.array(["AAPL", "", "VTI"])}, "symbol: '' must be 1-32 letters"),
        ({"symbols": ["AAPL", 7, "VTI"]}, "symbol: 7 is not a symbol"),
        ({"symbols": np.array(["AAPL", "VTI", "VTI"])}, "VTI: symbol: duplicate symbol"),
        ({"prices": np.array([19012, 0, 25130])}, "OLD: price: must be > 0, got 0"),
        ({"tick_sizes": np.array([5, 5, 5])}, "AAPL: price: 190.12 is not a multiple of the tick size 0.05"),
        ({"lot_sizes": np.array([10000, 0, 10000])}, "OLD: lot_size: must be > 0, got 0"),
        ({"quantities": np.array([120_0000, -1, 0])}, "OLD: quantity: must be >= 0 (no short positions), got -0.0001"),
        ({"quantities": np.array([120_5000, 0, 0])}, "AAPL: quantity: 120.5 is not a multiple of the step 1"),
        ({"weights": np.array([-1, 0, 0])}, "AAPL: weight: must be >= 0, got -1E-9"),
        ({"weights": np.array([600_000_000, 0, 450_000_000])}, "weight: target weights sum to 1.05, more than 1"),
        ({"weight_decimals": 13}, "weight_decimals: must be an int from 0 to 12, got 13"),
        ({"fractional": np.array([0, 0, 1])}, "fractional: expected 3 booleans"),
        ({"prices": np.array([2**62, 1240, 25130])}, "AAPL: price: 46116860184273879.04 is too large"),
        ({"cash": "-1"}, "cash: must be >= 0, got -1"),
    ],
)
def test_bad_columns_name_the_symbol_and_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(RebalanceInputError) as info:
        build_problem_arrays(**book(**overrides))
    assert message in str(info.value)


def test_symbols_as_any_sequence_of_str_and_non_ascii_letters() -> None:
    listed = build_problem_arrays(**book(symbols=["AAPL", "OLD", "VTI"]))
    assert listed == build_problem_arrays(**book())
    big_endian = build_problem_arrays(**book(symbols=np.array(["AAPL", "OLD", "VTI"], dtype=">U4")))
    assert big_endian == listed
    assert build_problem_arrays(**book(symbols=np.array(["ÅB", "OLD", "BRK.B"], dtype=object))).symbols == (
        "BRK.B",
        "OLD",
        "ÅB",
    )


def test_long_and_prefix_symbols_sort_as_strings() -> None:
    names = ["ABCDEFGHIJ", "ABCDEFGHI", "ABCDEFGHIA", "ABCDEFGH", "A", "ABCDEFGHIJKLMNOPQ", "B", "AB.C-D"]
    n = len(names)
    problem = build_problem_arrays(
        symbols=np.array(names),
        quantities=np.zeros(n, dtype=np.int64),
        prices=np.full(n, 100),
        weights=np.full(n, 10**8),
        cash="1000",
    )
    assert problem.symbols == tuple(sorted(names))
    with pytest.raises(RebalanceInputError, match="ABCDEFGHIJ: symbol: duplicate symbol"):
        build_problem_arrays(
            symbols=np.array([*names, "ABCDEFGHIJ"]),
            quantities=np.zeros(n + 1, dtype=np.int64),
            prices=np.full(n + 1, 100),
            weights=np.zeros(n + 1, dtype=np.int64),
            cash="1000",
        )
