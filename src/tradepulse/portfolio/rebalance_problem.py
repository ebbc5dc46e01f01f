"""Rebalancer inputs: the options, the securities, and the validated problem as exact integer columns.

A :class:`RebalanceProblem` is built either from Decimal mappings (:mod:`~tradepulse.portfolio.rebalance_build`,
the convenient path) or from numpy integer columns (:mod:`~tradepulse.portfolio.rebalance_columns`, the fast
path); both run the same vectorized validation and give equal problems. Both implementations read it: the
vectorized one its integer arrays, the baseline its Decimal views. Nothing is computed from input that failed
validation.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, localcontext
from typing import Any, cast

import msgspec
import numpy as np
import numpy.typing as npt

from tradepulse.domain import Instrument, InstrumentError
from tradepulse.domain.money import EXACT, ZERO

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
    if type(value) is Decimal and value.is_finite():
        return value
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
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]


def unit_decimal(units: int, exponent: int) -> Decimal:
    """Return ``units * 10**-exponent`` as a Decimal without trailing zeros after the point (``1.5``, ``100``)."""
    while exponent > 0 and units % 10 == 0:
        units //= 10
        exponent -= 1
    return Decimal(units).scaleb(-exponent, EXACT)


def row_decimals(units: IntArray, exponent: int) -> npt.NDArray[np.int64]:
    """Return how many decimal places each ``units[i] * 10**-exponent`` needs (0 for whole numbers)."""
    out = np.full(units.shape, exponent, dtype=np.int64)
    for k in range(1, exponent + 1):
        out[units % 10**k == 0] = exponent - k
    return out


def decimal_column(units: IntArray, exponent: int, places: npt.NDArray[np.int64] | None = None) -> tuple[Decimal, ...]:
    """Return each ``units[i] * 10**-exponent`` as a Decimal with ``places[i]`` decimals (default: as few as
    exact). ``places[i]`` must be at least what the value needs."""
    shown = row_decimals(units, exponent) if places is None else places
    shifted = (units // 10 ** (exponent - shown)).tolist()
    with localcontext(EXACT):
        return tuple(Decimal(u).scaleb(-d) for u, d in zip(shifted, shown.tolist(), strict=True))


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

    def key(self) -> tuple[Any, ...]:
        """Return every field, arrays as lists (for equality)."""
        return tuple(
            v.tolist() if isinstance(v, np.ndarray) else v for v in (getattr(self, f.name) for f in fields(self))
        )


@dataclass(frozen=True, eq=False)
class RebalanceProblem:
    """Validated rebalancer input, held as exact integer columns in sorted symbol order.

    Built by :func:`~tradepulse.portfolio.rebalance_build.build_problem` (Decimal mappings) or
    :func:`~tradepulse.portfolio.rebalance_columns.build_problem_arrays` (numpy columns); both give equal
    problems for the same portfolio. Each column is canonical: ``price_units * 10**-price_exponent`` is the price
    with the smallest exponent that keeps every price whole (likewise steps, lot sizes and ticks), so equal
    inputs give equal arrays whichever way they came in. The Decimal views (:attr:`symbols`, :attr:`quantities`,
    :attr:`prices`, :attr:`steps`, :attr:`weights`, :attr:`securities`) are built on first use: the vectorized
    engine never needs them, the baseline and the reports do.
    """

    symbol_array: StrArray
    fractional: BoolArray
    price_units: IntArray
    price_exponent: int
    #: quantity step of each symbol (its lot size, or ``options.fractional_step`` if fractional)
    step_units: IntArray
    quantity_exponent: int
    lot_units: IntArray
    lot_exponent: int
    tick_units: IntArray
    tick_exponent: int
    cash: Decimal
    options: RebalanceOptions
    ints: IntView
    #: the caller's own Security objects (Decimal path), in sorted order; else built from the columns when asked
    source_securities: tuple[Security, ...] | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.symbol_array)

    def key(self) -> tuple[Any, ...]:
        """Return everything that defines the problem (for equality; not the engine-independent caches)."""
        return (
            self.symbol_array.tolist(),
            self.fractional.tolist(),
            self.price_units.tolist(),
            self.price_exponent,
            self.step_units.tolist(),
            self.quantity_exponent,
            self.lot_units.tolist(),
            self.lot_exponent,
            self.tick_units.tolist(),
            self.tick_exponent,
            self.cash,
            self.options,
            self.ints.key(),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RebalanceProblem):
            return NotImplemented
        return self is other or self.key() == other.key()

    __hash__ = None  # type: ignore[assignment]

    def _cached(self, name: str, build: Callable[[], Any]) -> Any:
        value = self._cache.get(name)
        if value is None:
            value = self._cache[name] = build()
        return value

    @property
    def symbols(self) -> tuple[str, ...]:
        """Return the symbols, sorted."""
        return cast(tuple[str, ...], self._cached("symbols", lambda: tuple(self.symbol_array.tolist())))

    def index(self, symbol: str) -> int:
        """Return the position of ``symbol`` in :attr:`symbols`."""
        index = self._cached("index", lambda: {s: i for i, s in enumerate(self.symbols)})
        return cast(int, index[symbol])

    @property
    def step_decimals(self) -> npt.NDArray[np.int64]:
        """Return the decimal places of each symbol's step (quantities are shown with as many)."""
        return cast(
            IntArray, self._cached("step_decimals", lambda: row_decimals(self.step_units, self.quantity_exponent))
        )

    @property
    def price_decimals(self) -> npt.NDArray[np.int64]:
        """Return the decimal places each price is shown with: its own, or its tick's if that has more."""

        def build() -> IntArray:
            ticks = row_decimals(self.tick_units, self.tick_exponent)
            return np.maximum(
                row_decimals(self.price_units, self.price_exponent), np.minimum(ticks, self.price_exponent)
            )

        return cast(IntArray, self._cached("price_decimals", build))

    @property
    def quantities(self) -> tuple[Decimal, ...]:
        """Return the held quantities (shares), with as many decimals as each symbol's step."""

        def build() -> tuple[Decimal, ...]:
            places = self.step_decimals
            row_steps = (self.step_units // 10 ** (self.quantity_exponent - places)).tolist()
            lots = self.ints.held_lots.tolist()  # Python ints: lots x step may not fit an int64
            with localcontext(EXACT):
                return tuple(
                    Decimal(k * s).scaleb(-d) for k, s, d in zip(lots, row_steps, places.tolist(), strict=True)
                )

        return cast(tuple[Decimal, ...], self._cached("quantities", build))

    @property
    def prices(self) -> tuple[Decimal, ...]:
        """Return the prices."""
        return cast(
            tuple[Decimal, ...],
            self._cached("prices", lambda: decimal_column(self.price_units, self.price_exponent, self.price_decimals)),
        )

    @property
    def steps(self) -> tuple[Decimal, ...]:
        """Return each symbol's quantity step."""
        return cast(
            tuple[Decimal, ...],
            self._cached("steps", lambda: decimal_column(self.step_units, self.quantity_exponent, self.step_decimals)),
        )

    @property
    def weights(self) -> tuple[Decimal, ...]:
        """Return the target weights (0 for symbols to sell entirely)."""
        places = len(str(self.ints.weight_scale)) - 1
        return cast(tuple[Decimal, ...], self._cached("weights", lambda: decimal_column(self.ints.weight, places)))

    @property
    def securities(self) -> tuple[Security, ...]:
        """Return each symbol's security (instrument with lot and tick, price, fractional flag)."""

        def build() -> tuple[Security, ...]:
            if self.source_securities is not None:
                return self.source_securities
            lots = decimal_column(self.lot_units, self.lot_exponent)
            ticks = decimal_column(self.tick_units, self.tick_exponent)
            return tuple(
                security(s, p, lot, fractional=f, tick_size=t)
                for s, p, lot, f, t in zip(
                    self.symbols, self.prices, lots, self.fractional.tolist(), ticks, strict=True
                )
            )

        return cast(tuple[Security, ...], self._cached("securities", build))

    def fingerprint(self) -> str:
        """Return a short hash of every input, so a re-run of the same rebalance yields the same order ids.

        It hashes the canonical columns, so the same portfolio gives the same fingerprint through either input
        path, however its numbers were written (``190.1`` or ``190.10``).
        """

        def build() -> str:
            h = hashlib.blake2b(digest_size=8)
            h.update(msgspec.json.encode(self.options))
            h.update(str(self.cash.normalize()).encode())
            h.update("\n".join(self.symbols).encode())
            exponents = (self.price_exponent, self.quantity_exponent, self.lot_exponent, self.tick_exponent)
            h.update(repr((exponents, self.ints.weight_scale)).encode())
            for column in (self.ints.held_lots, self.price_units, self.step_units, self.lot_units, self.tick_units):
                h.update(column.astype("<i8").tobytes())
            h.update(self.ints.weight.astype("<i8").tobytes())
            h.update(self.fractional.tobytes())
            return h.hexdigest()

        return cast(str, self._cached("fingerprint", build))


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
    "MAX_MONEY_DECIMALS",
    "MAX_REL_BAND_DECIMALS",
    "MAX_TURNOVER_DECIMALS",
    "MAX_UNITS",
    "MAX_WEIGHT_DECIMALS",
    "IntView",
    "ModelPortfolio",
    "RebalanceInputError",
    "RebalanceOptions",
    "RebalanceProblem",
    "Security",
    "decimal_column",
    "decimals",
    "row_decimals",
    "security",
    "unit_decimal",
]
