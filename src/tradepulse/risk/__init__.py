"""Pre-trade risk: limits with reason codes, reservations for open orders, rate limits and the kill switch.

The checks are pure and synchronous (:class:`RiskEngine`); the state they need is an
:class:`~tradepulse.risk.book.AccountRisk` per account and the latest :class:`~tradepulse.risk.book.Marks`.
The trading state (ACTIVE / REDUCING / HALTED) is persisted by the ledger store and survives restarts.
"""

from __future__ import annotations

from tradepulse.risk.book import AccountRisk, Marks, SymbolExposure
from tradepulse.risk.engine import RiskDecision, RiskEngine
from tradepulse.risk.instruments import InstrumentRegistry
from tradepulse.risk.rate import RateLimiter, TokenBucket

__all__ = [
    "AccountRisk",
    "InstrumentRegistry",
    "Marks",
    "RateLimiter",
    "RiskDecision",
    "RiskEngine",
    "SymbolExposure",
    "TokenBucket",
]
