"""Rebalancer inputs: validated once, then held both as Decimals and as exact integers.

:func:`build_problem` checks every input (naming the symbol and field of anything wrong) and returns a
:class:`RebalanceProblem`, which both implementations read: the baseline its Decimal fields, the vectorized one
its integer arrays. Nothing is computed from input that failed validation.

Integer view (exact, no floats):

- quantities are whole numbers of *steps* ("lots"): the step is the instrument's ``lot_size``, or
  ``options.fractional_step`` for a symbol traded in fractions;
- money is in *units* of ``10**-money_exponent``, the finest decimal any money input needs (cash, buffer,
  minimum notional, fees, and every lot value = price x step), so each lot value is an integer number of units;
- weights and band tolerances are integers over ``weight_scale`` (``10**(weight decimals + relative band
  decimals)``), so the relative band ``r x w`` is exact too.

Magnitudes are bounded (every amount below 2**60 units, weights below 10**18 scaled) so that the kernels'
int64 and 128-bit arithmetic cannot overflow; beyond that the input is refused with a clear error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from tradepulse.domain import Instrument, InstrumentError
from tradepulse.domain.money import ZERO, exact_mul

#: Largest money amount in units, lot count or value sum the kernels accept (keeps int64 sums safe).
MAX_UNITS = 2**60
#: Most decimal places of a weight or the absolute band, and of the relative band.
MAX_WEIGHT_DECIMALS = 12
MAX_REL_BAND_DECIMALS = 6
#: Most decimal places of any money amount or quantity (prices x steps included).
MAX_MONEY_DECIMALS = 12
#: Most decimal places of the turnover cap (a fraction; 0.25 = 25 %).
MAX_TURNOVER_DECIMALS = 6


class RebalanceInputError(ValueError):
    """Input to the rebalancer is invalid. ``symbol`` and ``field`` say where (``symbol`` may be None)."""

    def __init__(self, symbol: str | None, field: str, message: str) -> None:
        self.symbol = symbol
        self.field = field
        self.message = message
        where = f"{symbol}: {field}" if symbol else field
        super().__init__(f"{where}: {message}")


def _dec(value: Any, symbol: str | None, field: str) -> Decimal:
    """Return ``value`` as a finite Decimal, or raise naming ``symbol`` and ``field``. Floats are refused."""
    if isinstance(value, (bool, float)):
        raise RebalanceInputError(symbol, field, f"use a Decimal, int or str, not {type(value).__name__} {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value.strip() if isinstance(value, str) else value)
        except ArithmeticError:
            raise RebalanceInputError(symbol, field, f"{value!r} is not a number") from None
    else:
        raise RebalanceInputError(symbol, field, f"{value!r} is not a number")
    if result.is_nan():
        raise RebalanceInputError(symbol, field, "is NaN")
    if not result.is_finite():
        raise RebalanceInputError(symbol, field, f"{result} is not finite")
    return result


def decimals(value: Decimal) -> int:
    """Return how many decimal places ``value`` needs (``0.10`` needs 1, ``100`` needs 0)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


class RebalanceOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to rebalance. Amounts are in the account currency; weights and bands are fractions (0.02 = 2 %).

    - ``drift_abs``: leave a held, targeted position alone while ``|weight - target| <= drift_abs``.
    - ``drift_rel``: ... while ``|weight - target| <= drift_rel * target``. With both set, the tighter one
      applies (trade when either is exceeded, like the 5/25 rule). With neither, every position goes to its
      nearest lot.
    - ``min_trade_notional``: skip trades smaller than this (a sale of the whole holding is exempt).
    - ``cash_buffer``: cash kept aside; targets apply to the investable value (total - buffer), and buys never
      take cash below it.
    - ``max_turnover``: most traded notional (buys + sells) as a fraction of the total value; larger plans are
      scaled down pro rata and the rest is left for the next run.
    - ``fee_per_order`` + ``fee_rate`` x notional, rounded up to ``fee_precision``: the per-trade cost estimate.
    - ``fractional_step``: the quantity step of symbols traded in fractions.
    - ``allow_sells``: false for a buy-only rebalance (deploy cash without selling anything).
    """

    drift_abs: Decimal | None = None
    drift_rel: Decimal | None = None
    min_trade_notional: Decimal = ZERO
    cash_buffer: Decimal = ZERO
    max_turnover: Decimal | None = None
    fee_per_order: Decimal = ZERO
    fee_rate: Decimal = ZERO
    fee_precision: Decimal = Decimal("0.01")
    fractional_step: Decimal = Decimal("0.0001")
    allow_sells: bool = True
    currency: str = "USD"

    def __post_init__(self) -> None:
        def check(name: str, value: Decimal | None, low: Decimal, high: Decimal | None, low_ok: bool) -> None:
            if value is None:
                return
            v = _dec(value, None, name)
            if v < low or (v == low and not low_ok) or (high is not None and v > high):
                bound = f"{'>=' if low_ok else '>'} {low}" + (f" and <= {high}" if high is not None else "")
                raise RebalanceInputError(None, name, f"must be {bound}, got {v}")

        one = Decimal(1)
        check("drift_abs", self.drift_abs, ZERO, one, True)
        check("drift_rel", self.drift_rel, ZERO, None, True)
        check("min_trade_notional", self.min_trade_notional, ZERO, None, True)
        check("cash_buffer", self.cash_buffer, ZERO, None, True)
        check("max_turnover", self.max_turnover, ZERO, Decimal(100), True)
        check("fee_per_order", self.fee_per_order, ZERO, None, True)
        check("fee_rate", self.fee_rate, ZERO, one, True)
        check("fee_precision", self.fee_precision, ZERO, None, False)
        check("fractional_step", self.fractional_step, ZERO, one, False)
        if self.drift_abs is not None and decimals(self.drift_abs) > MAX_WEIGHT_DECIMALS:
            raise RebalanceInputError(None, "drift_abs", f"more than {MAX_WEIGHT_DECIMALS} decimal places")
        if self.drift_rel is not None and decimals(self.drift_rel) > MAX_REL_BAND_DECIMALS:
            raise RebalanceInputError(None, "drift_rel", f"more than {MAX_REL_BAND_DECIMALS} decimal places")
        if decimals(self.fee_rate) > MAX_MONEY_DECIMALS:
            raise RebalanceInputError(None, "fee_rate", f"more than {MAX_MONEY_DECIMALS} decimal places")
        if self.max_turnover is not None and decimals(self.max_turnover) > MAX_TURNOVER_DECIMALS:
            raise RebalanceInputError(None, "max_turnover", f"more than {MAX_TURNOVER_DECIMALS} decimal places")

    @property
    def has_bands(self) -> bool:
        return self.drift_abs is not None or self.drift_rel is not None


class Security(msgspec.Struct, frozen=True, kw_only=True):
    """A tradable symbol with its price: the instrument gives the lot size (and tick), ``fractional`` lets the
    rebalancer trade it in steps of ``options.fractional_step`` instead."""

    instrument: Instrument
    price: Decimal
    fractional: bool = False

    @property
    def symbol(self) -> str:
        return self.instrument.symbol


class ModelPortfolio(msgspec.Struct, frozen=True, kw_only=True):
    """A named model: relative weights (any positive scale) turned into target weights summing to ``invested``.

    Each weight is ``invested * w / sum(w)`` rounded *down* to 12 decimals, so the sum never exceeds
    ``invested``; what rounding leaves over stays in cash.
    """

    name: str
    weights: Mapping[str, Decimal]
    invested: Decimal = Decimal(1)

    def targets(self) -> dict[str, Decimal]:
        """Return the target weights of the model."""
        rel = {s: _dec(w, s, "weight") for s, w in self.weights.items()}
        for s, w in rel.items():
            if w < 0:
                raise RebalanceInputError(s, "weight", f"must be >= 0, got {w}")
        invested = _dec(self.invested, None, "invested")
        if not 0 <= invested <= 1:
            raise RebalanceInputError(None, "invested", f"must be between 0 and 1, got {invested}")
        total = sum(rel.values(), ZERO)
        if total == 0:
            return dict.fromkeys(rel, ZERO)
        step = Decimal(1).scaleb(-MAX_WEIGHT_DECIMALS)
        from fractions import Fraction

        out: dict[str, Decimal] = {}
        for s, w in rel.items():
            exact = Fraction(invested) * Fraction(w) / Fraction(total)
            out[s] = (Decimal(int(exact / Fraction(step))) * step).normalize()
        return out


IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class IntView:
    """The problem as exact integers (see the module docstring)."""

    money_exponent: int
    weight_scale: int
    held_lots: IntArray
    lot_value: IntArray
    weight: IntArray
    tolerance: IntArray
    cash: int
    buffer: int
    min_notional: int
    fee_fixed: int
    fee_unit: int
    fee_rate_num: int
    fee_rate_den: int
    turnover_num: int
    turnover_den: int
    has_turnover: bool
    value: int


@dataclass(frozen=True, eq=False)
class RebalanceProblem:
    """Validated rebalancer input. Symbols are sorted; every per-symbol tuple follows that order."""

    symbols: tuple[str, ...]
    quantities: tuple[Decimal, ...]
    prices: tuple[Decimal, ...]
    steps: tuple[Decimal, ...]
    weights: tuple[Decimal, ...]
    cash: Decimal
    options: RebalanceOptions
    ints: IntView
    #: the security (instrument, price, fractional flag) of each symbol
    securities: tuple[Security, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.symbols)

    def index(self, symbol: str) -> int:
        """Return the position of ``symbol`` in :attr:`symbols`."""
        if not self._index:
            self._index.update((s, i) for i, s in enumerate(self.symbols))
        return self._index[symbol]

    def fingerprint(self) -> str:
        """Return a short hash of every input, so a re-run of the same rebalance yields the same order ids."""
        h = hashlib.blake2b(digest_size=8)
        h.update(msgspec.json.encode(self.options))
        h.update(str(self.cash).encode())
        for row in zip(self.symbols, self.quantities, self.prices, self.steps, self.weights, strict=True):
            h.update("|".join(map(str, row)).encode())
            h.update(b"\n")
        return h.hexdigest()


Pairs = Mapping[str, Any] | Iterable[tuple[str, Any]]


def _pairs(values: Pairs, what: str, field_name: str) -> dict[str, Decimal]:
    """Return symbol -> Decimal, refusing duplicates and malformed symbols."""
    items = values.items() if isinstance(values, Mapping) else values
    out: dict[str, Decimal] = {}
    for symbol, value in items:
        if not isinstance(symbol, str) or not symbol.strip():
            raise RebalanceInputError(None, "symbol", f"{what}: {symbol!r} is not a symbol")
        if symbol in out:
            raise RebalanceInputError(symbol, "symbol", f"duplicate symbol in {what}")
        out[symbol] = _dec(value, symbol, field_name)
    return out


def _scaled(value: Decimal, exponent: int, symbol: str | None, field_name: str) -> int:
    """Return ``value * 10**exponent`` as an int (it must be exact), bounded by :data:`MAX_UNITS`."""
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise RebalanceInputError(symbol, field_name, f"{value} needs more than {exponent} decimal places")
    out = int(scaled)
    if abs(out) >= MAX_UNITS:
        raise RebalanceInputError(symbol, field_name, f"{value} is too large")
    return out


def build_problem(
    *,
    cash: Decimal | int | str,
    holdings: Pairs,
    securities: Iterable[Security],
    targets: Pairs | ModelPortfolio,
    options: RebalanceOptions | None = None,
) -> RebalanceProblem:
    """Validate the inputs and return the problem both rebalancer implementations solve.

    ``holdings`` and ``targets`` are symbol -> quantity / weight, as a mapping or as (symbol, value) pairs (pairs
    are checked for duplicates). Every held or targeted symbol needs a :class:`Security` (its price and lot).
    Raises :class:`RebalanceInputError` naming the symbol and field of the first problem found.
    """
    opts = options if options is not None else RebalanceOptions()
    cash_d = _dec(cash, None, "cash")
    if cash_d < 0:
        raise RebalanceInputError(None, "cash", f"must be >= 0, got {cash_d}")

    secs: dict[str, Security] = {}
    for sec in securities:
        sym = sec.symbol
        if sym in secs:
            raise RebalanceInputError(sym, "symbol", "duplicate symbol in securities")
        price = _dec(sec.price, sym, "price")
        if price <= 0:
            raise RebalanceInputError(sym, "price", f"must be > 0, got {price}")
        if not sec.instrument.is_valid_price(price):
            raise RebalanceInputError(
                sym, "price", f"{price} is not a multiple of the tick size {sec.instrument.tick_size}"
            )
        secs[sym] = sec

    held = _pairs(holdings, "holdings", "quantity")
    target = targets.targets() if isinstance(targets, ModelPortfolio) else _pairs(targets, "targets", "weight")

    for sym, qty in held.items():
        if sym not in secs:
            raise RebalanceInputError(sym, "symbol", "unknown symbol in holdings (no price or instrument)")
        if qty < 0:
            raise RebalanceInputError(sym, "quantity", f"must be >= 0 (no short positions), got {qty}")
    total = ZERO
    for sym, w in target.items():
        if sym not in secs:
            raise RebalanceInputError(sym, "symbol", "unknown symbol in targets (no price or instrument)")
        if w < 0:
            raise RebalanceInputError(sym, "weight", f"must be >= 0, got {w}")
        if w > 1:
            raise RebalanceInputError(sym, "weight", f"must be <= 1, got {w}")
        if decimals(w) > MAX_WEIGHT_DECIMALS:
            raise RebalanceInputError(sym, "weight", f"{w} has more than {MAX_WEIGHT_DECIMALS} decimal places")
        total += w
    if total > 1:
        raise RebalanceInputError(None, "weight", f"target weights sum to {total}, more than 1")

    symbols = tuple(sorted(set(held) | set(target)))
    steps: list[Decimal] = []
    quantities: list[Decimal] = []
    for sym in symbols:
        sec = secs[sym]
        step = opts.fractional_step if sec.fractional else sec.instrument.lot_size
        qty = held.get(sym, ZERO)
        if qty % step != 0:
            hint = "" if sec.fractional else " (mark the symbol fractional to trade in fractions)"
            raise RebalanceInputError(sym, "quantity", f"{qty} is not a multiple of the step {step}{hint}")
        steps.append(step)
        quantities.append(qty)
    prices = tuple(secs[s].price for s in symbols)
    weights = tuple(target.get(s, ZERO) for s in symbols)
    ints = _int_view(cash_d, tuple(quantities), prices, tuple(steps), weights, symbols, opts)
    return RebalanceProblem(
        symbols=symbols,
        quantities=tuple(quantities),
        prices=prices,
        steps=tuple(steps),
        weights=weights,
        cash=cash_d,
        options=opts,
        ints=ints,
        securities=tuple(secs[s] for s in symbols),
    )


def _int_view(
    cash: Decimal,
    quantities: tuple[Decimal, ...],
    prices: tuple[Decimal, ...],
    steps: tuple[Decimal, ...],
    weights: tuple[Decimal, ...],
    symbols: tuple[str, ...],
    opts: RebalanceOptions,
) -> IntView:
    lot_values = [exact_mul(p, s) for p, s in zip(prices, steps, strict=True)]
    money = [cash, opts.cash_buffer, opts.min_trade_notional, opts.fee_per_order, opts.fee_precision, *lot_values]
    m = max(decimals(v) for v in money)
    if m > MAX_MONEY_DECIMALS:
        worst = max(range(len(lot_values)), key=lambda i: decimals(lot_values[i]), default=0)
        where = symbols[worst] if lot_values and decimals(lot_values[worst]) == m else None
        raise RebalanceInputError(where, "price", f"price x step needs {m} decimal places (at most 12)")
    wd = max([decimals(w) for w in weights] + [decimals(opts.drift_abs or ZERO)])
    rd = decimals(opts.drift_rel or ZERO)
    scale = 10 ** (wd + rd)

    held_lots = np.empty(len(symbols), dtype=np.int64)
    lot_value = np.empty(len(symbols), dtype=np.int64)
    weight = np.empty(len(symbols), dtype=np.int64)
    tolerance = np.empty(len(symbols), dtype=np.int64)
    abs_tol = _scaled(opts.drift_abs, wd + rd, None, "drift_abs") if opts.drift_abs is not None else None
    rel_num = _scaled(opts.drift_rel, rd, None, "drift_rel") if opts.drift_rel is not None else None
    value = _scaled(cash, m, None, "cash")
    for i, sym in enumerate(symbols):
        lots = quantities[i] / steps[i]
        held_lots[i] = _scaled(lots, 0, sym, "quantity")
        lot_value[i] = _scaled(lot_values[i], m, sym, "price")
        if lot_value[i] == 0:
            raise RebalanceInputError(sym, "price", "price x step is zero")
        w = _scaled(weights[i], wd + rd, sym, "weight")
        weight[i] = w
        tol = 0
        if abs_tol is not None and rel_num is not None:
            tol = min(abs_tol, (w // 10**rd) * rel_num)
        elif abs_tol is not None:
            tol = abs_tol
        elif rel_num is not None:
            tol = (w // 10**rd) * rel_num
        tolerance[i] = tol
        position = int(held_lots[i]) * int(lot_value[i])
        if position >= MAX_UNITS:
            raise RebalanceInputError(sym, "quantity", f"position value {quantities[i]} x {prices[i]} is too large")
        value += position
    if value >= MAX_UNITS:
        raise RebalanceInputError(None, "cash", "total portfolio value is too large")
    fee_unit = _scaled(opts.fee_precision, m, None, "fee_precision")
    rate_dec = decimals(opts.fee_rate)
    if fee_unit * 10**rate_dec >= MAX_UNITS:
        raise RebalanceInputError(None, "fee_rate", "too many decimal places for the fee precision")
    turnover_dec = MAX_TURNOVER_DECIMALS
    return IntView(
        money_exponent=m,
        weight_scale=scale,
        held_lots=held_lots,
        lot_value=lot_value,
        weight=weight,
        tolerance=tolerance,
        cash=_scaled(cash, m, None, "cash"),
        buffer=_scaled(opts.cash_buffer, m, None, "cash_buffer"),
        min_notional=_scaled(opts.min_trade_notional, m, None, "min_trade_notional"),
        fee_fixed=_scaled(opts.fee_per_order, m, None, "fee_per_order"),
        fee_unit=fee_unit,
        fee_rate_num=_scaled(opts.fee_rate, rate_dec, None, "fee_rate"),
        fee_rate_den=10**rate_dec,
        turnover_num=_scaled(opts.max_turnover or ZERO, turnover_dec, None, "max_turnover"),
        turnover_den=10**turnover_dec,
        has_turnover=opts.max_turnover is not None,
        value=value,
    )


def security(
    symbol: str,
    price: Decimal | int | str,
    lot_size: Decimal | int | str = 1,
    *,
    fractional: bool = False,
    tick_size: Decimal | str = "0.01",
) -> Security:
    """Return a :class:`Security` from plain values, turning instrument errors into input errors."""
    try:
        instrument = Instrument(
            symbol,
            tick_size=_dec(tick_size, symbol, "tick_size"),
            lot_size=_dec(lot_size, symbol, "lot_size"),
            price_precision=max(2, decimals(_dec(tick_size, symbol, "tick_size"))),
        )
    except InstrumentError as exc:
        text = str(exc)
        fld = next((f for f in ("lot_size", "tick_size", "price_precision", "symbol") if f in text), "instrument")
        detail = text.split(": ", 1)[-1]
        raise RebalanceInputError(symbol, fld, detail.removeprefix(fld + " ")) from None
    return Security(instrument=instrument, price=_dec(price, symbol, "price"), fractional=fractional)


__all__ = [
    "IntView",
    "ModelPortfolio",
    "RebalanceInputError",
    "RebalanceOptions",
    "RebalanceProblem",
    "Security",
    "build_problem",
    "decimals",
    "security",
]
