"""Exact money and quantity arithmetic.

Money is a :class:`decimal.Decimal` amount with a currency, never a binary float. Arithmetic runs in
:data:`EXACT`, a decimal context that traps inexact results, so a sum, difference or product is either exact or
raises :class:`decimal.Inexact`; nothing is rounded silently. Rounding happens only where it is asked for
(:meth:`Money.round`, the instrument's tick and lot rounding), with an explicit rounding mode.
"""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any

import msgspec

#: The context for money arithmetic: 60 significant digits, and every inexact result is an error.
EXACT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])

ZERO = Decimal(0)


def to_decimal(value: Decimal | int | str, *, field: str = "value") -> Decimal:
    """Return ``value`` as a finite Decimal; floats are refused because they are not exact."""
    if isinstance(value, bool | float):
        raise TypeError(f"{field}: use Decimal, int or str for money, not {type(value).__name__} ({value!r})")
    try:
        result = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{field}: {value!r} is not a number") from exc
    if not result.is_finite():
        raise ValueError(f"{field}: {value!r} is not a finite number")
    return result


def exact_add(a: Decimal, b: Decimal) -> Decimal:
    """Return ``a + b``, raising :class:`decimal.Inexact` rather than rounding."""
    return EXACT.add(a, b)


def exact_sub(a: Decimal, b: Decimal) -> Decimal:
    """Return ``a - b``, raising :class:`decimal.Inexact` rather than rounding."""
    return EXACT.subtract(a, b)


def exact_mul(a: Decimal, b: Decimal) -> Decimal:
    """Return ``a * b``, raising :class:`decimal.Inexact` rather than rounding."""
    return EXACT.multiply(a, b)


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


class Money(msgspec.Struct, frozen=True):
    """An exact amount of one currency."""

    amount: Decimal
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not self.amount.is_finite():
            raise ValueError(f"money amount must be finite, got {self.amount}")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f"currency must be a 3-letter upper-case code, got {self.currency!r}")

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str = "USD") -> Money:
        """Return money from a Decimal, int or string amount (floats are refused)."""
        return cls(to_decimal(amount, field="amount"), currency)

    @classmethod
    def zero(cls, currency: str = "USD") -> Money:
        return cls(ZERO, currency)

    def _check(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(exact_add(self.amount, other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(exact_sub(self.amount, other.amount), self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float | bool):
            raise TypeError("multiply money by a Decimal or int, not a float")
        return Money(exact_mul(self.amount, Decimal(factor)), self.currency)

    __rmul__ = __mul__

    def _cmp(self, other: Any) -> Decimal:
        if not isinstance(other, Money):
            raise TypeError(f"cannot compare Money with {type(other).__name__}")
        self._check(other)
        return self.amount - other.amount

    def __lt__(self, other: Money) -> bool:
        return self._cmp(other) < 0

    def __le__(self, other: Money) -> bool:
        return self._cmp(other) <= 0

    def __gt__(self, other: Money) -> bool:
        return self._cmp(other) > 0

    def __ge__(self, other: Money) -> bool:
        return self._cmp(other) >= 0

    def is_zero(self) -> bool:
        return self.amount == 0

    def round(self, places: int = 2, rounding: str = ROUND_HALF_EVEN) -> Money:
        """Return the amount rounded to ``places`` decimals with an explicit rounding mode."""
        with localcontext(EXACT) as ctx:
            ctx.traps[Inexact] = False
            return Money(self.amount.quantize(Decimal(1).scaleb(-places), rounding=rounding), self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


__all__ = [
    "EXACT",
    "ZERO",
    "CurrencyMismatch",
    "Money",
    "exact_add",
    "exact_mul",
    "exact_sub",
    "to_decimal",
]
