"""The validation both input paths share: int64 columns in, a :class:`RebalanceProblem` out, in whole-array passes.

:func:`problem_from_columns` is called by the columnar path (:mod:`~tradepulse.portfolio.rebalance_columns`)
with the caller's arrays and by the Decimal path (:mod:`~tradepulse.portfolio.rebalance_build`) with the arrays
it converted its Decimals into; so both raise the same errors, naming the symbol and field, and build equal
problems. Each check first runs over the whole array (one numpy pass decides the usual case, nothing wrong) and
only then looks for the first offending row, in symbol order. The columns are made canonical (the smallest
power of ten that keeps every value whole), so the same portfolio gives the same arrays however it was scaled.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradepulse.portfolio.rebalance_problem import (
    MAX_MONEY_DECIMALS,
    MAX_TURNOVER_DECIMALS,
    MAX_UNITS,
    BoolArray,
    IntArray,
    IntView,
    RebalanceInputError,
    RebalanceOptions,
    RebalanceProblem,
    Security,
    StrArray,
    decimals,
    unit_decimal,
)

INT64_MAX = 2**63 - 1
#: most decimal places of a quantity, price or weight column
MAX_COLUMN_DECIMALS = 12


def _tz(value: int, cap: int) -> int:
    """Return how many times 10 divides ``value`` (``cap`` for 0), at most ``cap``."""
    if value == 0:
        return cap
    count = 0
    while count < cap and value % 10 == 0:
        value //= 10
        count += 1
    return count


def _canonical(units: IntArray, exponent: int) -> tuple[IntArray, int]:
    """Return the column with the smallest exponent that keeps every value whole (equal inputs, equal arrays)."""
    if exponent == 0:
        return units, 0
    shift = _tz(abs(int(np.gcd.reduce(units))) if len(units) else 0, exponent)
    return (units // 10**shift, exponent - shift) if shift else (units, exponent)


def _scaled(value: Decimal, exponent: int, symbol: str | None, field_name: str) -> int:
    """Return ``value * 10**exponent`` as an int (it must be exact), bounded by :data:`MAX_UNITS`."""
    numerator, denominator = value.as_integer_ratio()
    scale: int = 10**exponent
    out, rest = divmod(numerator * scale, denominator)
    if rest:
        raise RebalanceInputError(symbol, field_name, f"{value} needs more than {exponent} decimal places")
    if abs(out) >= MAX_UNITS:
        raise RebalanceInputError(symbol, field_name, f"{value} is too large")
    return out


@functools.lru_cache(maxsize=64)
def _option_places(opts: RebalanceOptions) -> tuple[int, int, int, int]:
    """Return the decimal places of the options' money amounts (the most), ``drift_abs``, ``drift_rel`` and
    ``fee_rate`` (cached: a portfolio system rebalances many books with the same options)."""
    money = (opts.cash_buffer, opts.min_trade_notional, opts.fee_per_order, opts.fee_precision)
    return (
        max(decimals(v) for v in money),
        decimals(opts.drift_abs or Decimal(0)),
        decimals(opts.drift_rel or Decimal(0)),
        decimals(opts.fee_rate),
    )


@dataclass(frozen=True)
class _OptionUnits:
    buffer: int
    min_notional: int
    fee_fixed: int
    fee_unit: int
    fee_rate_num: int
    fee_rate_den: int
    turnover_num: int
    abs_tol: int | None
    rel_num: int | None


@functools.lru_cache(maxsize=64)
def _option_units(opts: RebalanceOptions, m: int, places: int) -> _OptionUnits:
    """Return the options as integers: money in units of ``10**-m``, the absolute band over ``10**places``."""
    rate_places = _option_places(opts)[3]
    fee_unit = _scaled(opts.fee_precision, m, None, "fee_precision")
    if fee_unit * 10**rate_places >= MAX_UNITS:
        raise RebalanceInputError(None, "fee_rate", "too many decimal places for the fee precision")
    return _OptionUnits(
        buffer=_scaled(opts.cash_buffer, m, None, "cash_buffer"),
        min_notional=_scaled(opts.min_trade_notional, m, None, "min_trade_notional"),
        fee_fixed=_scaled(opts.fee_per_order, m, None, "fee_per_order"),
        fee_unit=fee_unit,
        fee_rate_num=_scaled(opts.fee_rate, rate_places, None, "fee_rate"),
        fee_rate_den=10**rate_places,
        turnover_num=_scaled(opts.max_turnover or Decimal(0), MAX_TURNOVER_DECIMALS, None, "max_turnover"),
        abs_tol=None if opts.drift_abs is None else _scaled(opts.drift_abs, places, None, "drift_abs"),
        rel_num=None if opts.drift_rel is None else _scaled(opts.drift_rel, _option_places(opts)[2], None, "drift_rel"),
    )


def first_index(mask: npt.NDArray[np.bool_]) -> int | None:
    return int(mask.argmax()) if mask.any() else None


def _sort_order(symbols: StrArray) -> tuple[npt.NDArray[np.intp] | None, int | None]:
    """Return the permutation that sorts ``symbols`` (None if they already are, strictly) and the position, in
    sorted order, of the first duplicate (None if there is none).

    Comparing numpy strings is slow (a stable argsort of 5,000 symbols takes half a millisecond), so ASCII
    symbols are packed into big-endian 64-bit keys, 8 characters each, which sort exactly as the strings do
    (a shorter symbol pads with 0 and sorts first, as a prefix does); other symbols sort as strings.
    """
    n = len(symbols)
    if n < 2:
        return None, None
    width = symbols.dtype.itemsize // 4
    codes = np.ascontiguousarray(symbols).view(np.uint32).reshape(n, width)
    if int(codes.max()) >= 128:
        if bool((symbols[1:] > symbols[:-1]).all()):
            return None, None
        order = np.argsort(symbols, kind="stable")
        names = symbols[order]
        return order, first_index(names[1:] == names[:-1])
    words = -(-width // 8)
    packed = np.zeros((n, words * 8), dtype=np.uint8)
    packed[:, :width] = codes
    keys = packed.view(">u8").astype(np.uint64)  # (n, words), each row's characters as numbers
    if words == 1:
        key = keys[:, 0]
        if bool((key[1:] > key[:-1]).all()):
            return None, None
        order = np.argsort(key)  # not stable, but equal keys are an error whatever their order
        sorted_key = key[order]
        return order, first_index(sorted_key[1:] == sorted_key[:-1])
    order = np.lexsort(keys[:, ::-1].T)
    sorted_keys = keys[order]
    same = (sorted_keys[1:] == sorted_keys[:-1]).all(axis=1)
    if bool((order == np.arange(n)).all()) and not same.any():
        return None, None
    return order, first_index(same)


def problem_from_columns(
    *,
    symbols: StrArray,
    quantity: IntArray,
    quantity_exponent: int,
    price: IntArray,
    price_exponent: int,
    weight: IntArray,
    weight_exponent: int,
    lot: IntArray,
    fractional: BoolArray,
    tick: IntArray,
    cash: Decimal,
    options: RebalanceOptions,
    securities: Sequence[Security] | None = None,
) -> RebalanceProblem:
    """Validate int64 columns (one row per symbol, any order) and return the problem, in whole-array passes.

    ``quantity`` and ``lot`` are in units of ``10**-quantity_exponent``, ``price`` and ``tick`` of
    ``10**-price_exponent``, ``weight`` of ``10**-weight_exponent`` (at most 12). ``securities``, if given, are
    the caller's own, row by row (kept for :attr:`RebalanceProblem.securities`). Symbols must already be valid
    instrument symbols (:func:`check_symbols`). Raises :class:`RebalanceInputError` naming symbol and field.
    """
    opts = options
    if cash < 0:
        raise RebalanceInputError(None, "cash", f"must be >= 0, got {cash}")
    n = len(symbols)

    # sorted order, and duplicates (adjacent once sorted)
    order, same = _sort_order(symbols)
    if order is not None:  # fancy indexing copies
        symbols = symbols[order]
        if same is not None:
            raise RebalanceInputError(str(symbols[same]), "symbol", "duplicate symbol")
        quantity, price, weight, lot, tick = quantity[order], price[order], weight[order], lot[order], tick[order]
        fractional = fractional[order]
    else:  # own copies: the caller may reuse its arrays
        quantity, price, weight, lot, tick = quantity.copy(), price.copy(), weight.copy(), lot.copy(), tick.copy()
        symbols, fractional = symbols.copy(), fractional.copy()

    def sym(i: int) -> str:
        return str(symbols[i])

    qe, pe, we = quantity_exponent, price_exponent, weight_exponent
    one = 10**we
    # one pass decides the usual case (nothing wrong); the checks then run one by one to name the culprit
    if ((lot <= 0) | (tick <= 0) | (price <= 0) | (quantity < 0) | (weight < 0) | (weight > one)).any():
        if (i := first_index(lot <= 0)) is not None:
            raise RebalanceInputError(sym(i), "lot_size", f"must be > 0, got {unit_decimal(int(lot[i]), qe)}")
        if (i := first_index(tick <= 0)) is not None:
            raise RebalanceInputError(sym(i), "tick_size", f"must be > 0, got {unit_decimal(int(tick[i]), pe)}")
        if (i := first_index(price <= 0)) is not None:
            raise RebalanceInputError(sym(i), "price", f"must be > 0, got {unit_decimal(int(price[i]), pe)}")
    if (i := first_index(price % tick != 0)) is not None:
        p, t = unit_decimal(int(price[i]), pe), unit_decimal(int(tick[i]), pe)
        raise RebalanceInputError(sym(i), "price", f"{p} is not a multiple of the tick size {t}")
    if (i := first_index(quantity < 0)) is not None:
        q = unit_decimal(int(quantity[i]), qe)
        raise RebalanceInputError(sym(i), "quantity", f"must be >= 0 (no short positions), got {q}")
    if (i := first_index(weight < 0)) is not None:
        raise RebalanceInputError(sym(i), "weight", f"must be >= 0, got {unit_decimal(int(weight[i]), we)}")
    if (i := first_index(weight > one)) is not None:
        raise RebalanceInputError(sym(i), "weight", f"must be <= 1, got {unit_decimal(int(weight[i]), we)}")
    total = int(weight.sum())  # each <= 10**12: no overflow below 9 million rows
    if total > one:
        raise RebalanceInputError(None, "weight", f"target weights sum to {unit_decimal(total, we)}, more than 1")

    # quantity steps: the lot, or the fractional step
    step = lot
    if fractional.any():
        f_num, f_den = opts.fractional_step.as_integer_ratio()
        f_units, rest = divmod(f_num * 10**qe, f_den)
        if rest:
            raise RebalanceInputError(
                None, "fractional_step", f"{opts.fractional_step} has more decimal places than the quantities' {qe}"
            )
        step = np.where(fractional, np.int64(f_units), lot)
    if (i := first_index(quantity % step != 0)) is not None:
        q, s = unit_decimal(int(quantity[i]), qe), unit_decimal(int(step[i]), qe)
        hint = "" if fractional[i] else " (mark the symbol fractional to trade in fractions)"
        raise RebalanceInputError(sym(i), "quantity", f"{q} is not a multiple of the step {s}{hint}")
    held_lots = quantity // step

    # canonical columns: the same portfolio gives the same arrays, however its numbers were scaled
    price, pe = _canonical(price, pe)
    step, qe = _canonical(step, qe)
    lot, lot_exponent = _canonical(lot, quantity_exponent)
    tick, tick_exponent = _canonical(tick, price_exponent)

    # money unit: the finest decimal of any money input, every lot value (price x step) included
    if (i := first_index(price > INT64_MAX // step)) is not None:
        raise RebalanceInputError(
            sym(i), "price", f"{unit_decimal(int(price[i]) * int(step[i]), pe + qe)} is too large"
        )
    raw = price * step  # lot values in units of 10**-(pe + qe)
    lot_places = pe + qe - _tz(int(np.gcd.reduce(raw)) if n else 0, pe + qe)
    money_places, abs_places, rd, _ = _option_places(opts)
    m = max(lot_places, money_places, decimals(cash))
    if m > MAX_MONEY_DECIMALS:
        where = None
        if lot_places == m:
            where = next(sym(i) for i in range(n) if int(raw[i]) % 10 ** (pe + qe - m + 1) != 0)
        raise RebalanceInputError(where, "price", f"price x step needs {m} decimal places (at most 12)")
    if m >= pe + qe:
        factor = 10 ** (m - pe - qe)
        if (i := first_index(raw >= -(-MAX_UNITS // factor))) is not None:
            lot_value_text = unit_decimal(int(raw[i]), pe + qe)
            raise RebalanceInputError(sym(i), "price", f"{lot_value_text} is too large")
        lot_value = raw * factor
    else:
        lot_value = raw // 10 ** (pe + qe - m)
        if (i := first_index(lot_value >= MAX_UNITS)) is not None:
            raise RebalanceInputError(sym(i), "price", f"{unit_decimal(int(raw[i]), pe + qe)} is too large")
    if (i := first_index(held_lots >= MAX_UNITS)) is not None:
        raise RebalanceInputError(sym(i), "quantity", f"{int(held_lots[i])} is too large")
    if (i := first_index(held_lots > (MAX_UNITS - 1) // lot_value)) is not None:
        q, p = unit_decimal(int(held_lots[i]) * int(step[i]), qe), unit_decimal(int(price[i]), pe)
        raise RebalanceInputError(sym(i), "quantity", f"position value {q} x {p} is too large")
    positions = held_lots * lot_value  # each < 2**60; summed in two halves so int64 cannot overflow
    cash_units = _scaled(cash, m, None, "cash")
    value = cash_units + (int((positions >> 31).sum()) << 31) + int((positions & (2**31 - 1)).sum())
    if value >= MAX_UNITS:
        raise RebalanceInputError(None, "cash", "total portfolio value is too large")

    # weights and band tolerances over 10**(weight decimals + relative band decimals)
    wd = max(we - _tz(int(np.gcd.reduce(weight)) if n else 0, we), abs_places)
    places = wd + rd
    o = _option_units(opts, m, places)
    weight = weight * 10 ** (places - we) if places >= we else weight // 10 ** (we - places)
    tolerance = np.zeros(n, dtype=np.int64)
    if o.rel_num is not None:
        base = weight // 10**rd
        if n and int(base.max()) * o.rel_num > INT64_MAX:
            raise RebalanceInputError(None, "drift_rel", f"{opts.drift_rel} is too large")
        tolerance = base * o.rel_num
        if o.abs_tol is not None:
            tolerance = np.minimum(tolerance, o.abs_tol)
    elif o.abs_tol is not None:
        tolerance = np.full(n, o.abs_tol, dtype=np.int64)

    ints = IntView(
        money_exponent=m,
        weight_scale=10**places,
        held_lots=held_lots,
        lot_value=lot_value,
        weight=weight,
        tolerance=tolerance,
        cash=cash_units,
        buffer=o.buffer,
        min_notional=o.min_notional,
        fee_fixed=o.fee_fixed,
        fee_unit=o.fee_unit,
        fee_rate_num=o.fee_rate_num,
        fee_rate_den=o.fee_rate_den,
        turnover_num=o.turnover_num,
        turnover_den=10**MAX_TURNOVER_DECIMALS,
        has_turnover=opts.max_turnover is not None,
        value=value,
    )
    source = None
    if securities is not None:
        source = tuple(securities) if order is None else tuple(securities[j] for j in order.tolist())
    return RebalanceProblem(
        symbol_array=symbols,
        fractional=fractional,
        price_units=price,
        price_exponent=pe,
        step_units=step,
        quantity_exponent=qe,
        lot_units=lot,
        lot_exponent=lot_exponent,
        tick_units=tick,
        tick_exponent=tick_exponent,
        cash=cash,
        options=opts,
        ints=ints,
        source_securities=source,
    )


__all__ = ["INT64_MAX", "MAX_COLUMN_DECIMALS", "problem_from_columns"]
