"""The fast input path: a portfolio as numpy integer columns, validated and scaled in whole-array passes.

A portfolio system holds its book in columns, not as a dict of Decimals per symbol. Give the rebalancer those
columns in exact integer units with explicit scales and it validates and prepares them without touching a
Decimal per position::

    problem = build_problem_arrays(
        symbols=np.array(["AAPL", "MSFT", "VTI"]),
        quantities=np.array([120_0000, 0, 33_5012]),      # held, in 10**-4 shares  (quantity_decimals=4)
        prices=np.array([19012, 41050, 25130]),           # in cents                (price_decimals=2)
        weights=np.array([500_000_000, 0, 450_000_000]),  # parts per 10**9         (weight_decimals=9)
        fractional=np.array([False, False, True]),
        cash="2500",
        options=RebalanceOptions(drift_abs=Decimal("0.02"), cash_buffer=Decimal(100)),
    )
    plan = rebalance(problem)                             # same plan as from the Decimal inputs

The scales: a quantity is ``quantities[i] / 10**quantity_decimals`` shares, a price ``prices[i] /
10**price_decimals``, a weight ``weights[i] / 10**weight_decimals`` (default 9: parts per billion, finer than
any mandate needs, exact, and millions of them sum exactly in int64), a lot size
``lot_sizes[i] / 10**quantity_decimals`` (default one share), a tick ``tick_sizes[i] / 10**price_decimals``
(default one price unit). Every row is a symbol of the problem: a quantity of 0 is not held, a weight of 0 is
sold entirely. Floats are refused: they are not exact.

The validation itself (:func:`~tradepulse.portfolio.rebalance_validate.problem_from_columns`) is shared with
the Decimal path, which converts its Decimals into these columns; so the two paths raise the same errors,
naming the symbol and field, and build equal problems. Where several rows are wrong, the first in symbol order
is named. Only the symbols' own check (:func:`check_symbols`) is this path's: Decimal callers have
:class:`Instrument` objects, already checked.
"""

from __future__ import annotations

import operator
from decimal import Decimal
from typing import Any

import numpy as np

from tradepulse.portfolio.rebalance_problem import (
    MAX_WEIGHT_DECIMALS,
    IntArray,
    RebalanceInputError,
    RebalanceOptions,
    RebalanceProblem,
    StrArray,
    _dec,
    security,
    unit_decimal,
)
from tradepulse.portfolio.rebalance_validate import INT64_MAX, MAX_COLUMN_DECIMALS, problem_from_columns

_NUL, _PUNCT, _ALNUM, _BAD = 0, 1, 2, 3
_KIND = np.full(128, _BAD, dtype=np.int8)  # ASCII only: other code points are checked apart
_KIND[0] = _NUL
_KIND[[ord("."), ord("-")]] = _PUNCT
for _lo, _hi in (("0", "9"), ("A", "Z"), ("a", "z")):
    _KIND[ord(_lo) : ord(_hi) + 1] = _ALNUM


def check_symbols(symbols: StrArray) -> None:
    """Raise naming the first symbol (in row order) that an :class:`Instrument` would refuse.

    Whole-array checks on the code points decide the usual case (all valid); only if one fails are the rows
    looked at one by one, which also settles non-ASCII letters (valid for ``str.isalnum``) exactly.
    """
    n = len(symbols)
    if n == 0:
        return
    width = symbols.dtype.itemsize // 4
    if width == 0:
        raise RebalanceInputError(None, "symbol", "'' must be 1-32 letters, digits, '.' or '-'")
    codes = np.ascontiguousarray(symbols).view(np.uint32).reshape(n, width)
    suspect = int(codes.max()) >= 128
    if not suspect:
        kind = _KIND.take(codes.astype(np.uint8))
        nul = (kind == _NUL).ravel()
        # empty, too long, a character not allowed, or a NUL before another character in its row
        stops = np.flatnonzero(nul[:-1] > nul[1:]) + 1
        suspect = (
            bool(nul[::width].any())
            or (width > 32 and not nul[32::width].all())
            or bool((kind == _BAD).any())
            or bool((stops % width).any())
        )
        if not suspect and (kind == _PUNCT).any():  # then some row might have no letter or digit at all
            suspect = bool((kind.max(axis=1) < _ALNUM).any())
    if suspect:
        for s in symbols.tolist():
            if not s or len(s) > 32 or not s.replace(".", "").replace("-", "").isalnum() or "\x00" in s:
                raise RebalanceInputError(s or None, "symbol", f"{s!r} must be 1-32 letters, digits, '.' or '-'")


def _int_column(values: Any, name: str, n: int, scale: str) -> IntArray:
    """Return ``values`` as an int64 column of ``n`` rows, refusing floats, other shapes and out-of-range values."""
    column = np.asarray(values)
    if column.ndim != 1 or len(column) != n:
        raise RebalanceInputError(None, name, f"expected one value per symbol ({n}), got shape {column.shape}")
    kind = column.dtype.kind
    if kind == "i":
        return column.astype(np.int64, copy=False)
    if kind == "u":
        if n and int(column.max()) > INT64_MAX:
            raise RebalanceInputError(None, name, "values above 2**63 - 1")
        return column.astype(np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    raise RebalanceInputError(
        None, name, f"must be integers in units of {scale}, not {column.dtype} (floats are not exact)"
    )


def _column_decimals(value: Any, name: str, most: int = MAX_COLUMN_DECIMALS) -> int:
    try:
        places = operator.index(value)
    except TypeError:
        places = -1
    if isinstance(value, bool) or not 0 <= places <= most:
        raise RebalanceInputError(None, name, f"must be an int from 0 to {most}, got {value!r}")
    return places


def build_problem_arrays(
    *,
    symbols: Any,
    quantities: Any,
    prices: Any,
    weights: Any,
    cash: Decimal | int | str,
    lot_sizes: Any = None,
    fractional: Any = None,
    tick_sizes: Any = None,
    quantity_decimals: int = 4,
    price_decimals: int = 2,
    weight_decimals: int = 9,
    options: RebalanceOptions | None = None,
) -> RebalanceProblem:
    """Validate a portfolio given as columns and return the problem (equal to :func:`build_problem`'s).

    ``symbols``: strings (a numpy ``str`` array is fastest; rows in any order, sorted here). ``quantities``,
    ``lot_sizes``: integers in ``10**-quantity_decimals`` shares. ``prices``, ``tick_sizes``: integers in
    ``10**-price_decimals``. ``weights``: integers in ``10**-weight_decimals`` (at most 12). ``fractional``:
    booleans. Raises :class:`RebalanceInputError` naming the symbol and field, as the Decimal path does.
    """
    opts = options if options is not None else RebalanceOptions()
    qd = _column_decimals(quantity_decimals, "quantity_decimals")
    pd = _column_decimals(price_decimals, "price_decimals")
    wd = _column_decimals(weight_decimals, "weight_decimals", MAX_WEIGHT_DECIMALS)
    if not isinstance(symbols, np.ndarray):  # numpy would quietly turn a stray number into a string
        symbols = list(symbols)
        if not all(isinstance(s, str) for s in symbols):
            bad = next(s for s in symbols if not isinstance(s, str))
            raise RebalanceInputError(None, "symbol", f"{bad!r} is not a symbol")
    names = np.asarray(symbols)
    if names.ndim != 1:
        raise RebalanceInputError(None, "symbol", f"expected a list of symbols, got shape {names.shape}")
    if names.dtype.kind != "U":
        if not all(isinstance(s, str) for s in names.tolist()):
            bad = next(s for s in names.tolist() if not isinstance(s, str))
            raise RebalanceInputError(None, "symbol", f"{bad!r} is not a symbol")
        names = names.astype(str) if len(names) else np.zeros(0, dtype="U1")
    if not names.dtype.isnative:  # the code-point checks read the buffer as native uint32
        names = names.astype(names.dtype.newbyteorder("="))
    n = len(names)
    check_symbols(names)
    quantity = _int_column(quantities, "quantity", n, f"10**-{qd} shares")
    price = _int_column(prices, "price", n, f"10**-{pd}")
    weight = _int_column(weights, "weight", n, f"10**-{wd}")
    lot = (
        np.full(n, 10**qd, dtype=np.int64)
        if lot_sizes is None
        else _int_column(lot_sizes, "lot_size", n, f"10**-{qd} shares")
    )
    tick = np.ones(n, dtype=np.int64) if tick_sizes is None else _int_column(tick_sizes, "tick_size", n, f"10**-{pd}")
    if fractional is None:
        flags = np.zeros(n, dtype=np.bool_)
    else:
        flags = np.asarray(fractional)
        if flags.shape != (n,) or (flags.dtype.kind != "b" and n):
            raise RebalanceInputError(None, "fractional", f"expected {n} booleans, got {flags.dtype} {flags.shape}")
        flags = flags.astype(np.bool_, copy=False)
    return problem_from_columns(
        symbols=names,
        quantity=quantity,
        quantity_exponent=qd,
        price=price,
        price_exponent=pd,
        weight=weight,
        weight_exponent=wd,
        lot=lot,
        fractional=flags,
        tick=tick,
        cash=_dec(cash, None, "cash"),
        options=opts,
    )


def decimal_inputs(
    *,
    symbols: Any,
    quantities: Any,
    prices: Any,
    weights: Any,
    cash: Decimal | int | str,
    lot_sizes: Any = None,
    fractional: Any = None,
    tick_sizes: Any = None,
    quantity_decimals: int = 4,
    price_decimals: int = 2,
    weight_decimals: int = 9,
    options: RebalanceOptions | None = None,
) -> dict[str, Any]:
    """Return :func:`build_problem`'s keyword arguments for the same columns, converted one position at a time
    (what a caller without the columnar path does; the benchmark's baseline pays it, the tests compare both)."""
    n = len(symbols)
    lots = [10**quantity_decimals] * n if lot_sizes is None else list(lot_sizes)
    ticks = [1] * n if tick_sizes is None else list(tick_sizes)
    flags = [False] * n if fractional is None else [bool(f) for f in fractional]
    securities = []
    holdings: dict[str, Decimal] = {}
    targets: dict[str, Decimal] = {}
    for i, sym in enumerate(str(s) for s in symbols):
        securities.append(
            security(
                sym,
                unit_decimal(int(prices[i]), price_decimals),
                unit_decimal(int(lots[i]), quantity_decimals),
                fractional=flags[i],
                tick_size=unit_decimal(int(ticks[i]), price_decimals),
            )
        )
        holdings[sym] = unit_decimal(int(quantities[i]), quantity_decimals)
        targets[sym] = unit_decimal(int(weights[i]), weight_decimals)
    return {
        "cash": cash,
        "holdings": holdings,
        "securities": securities,
        "targets": targets,
        "options": options if options is not None else RebalanceOptions(),
    }


__all__ = ["build_problem_arrays", "check_symbols", "decimal_inputs"]
