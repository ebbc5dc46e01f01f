"""Pre-trade risk check CPU per order against an account holding many symbols (a portfolio and its rebalance).

    .venv/bin/python -m benchmarks.tools.risk_check [--symbols 7 100 500 2000] [--orders 2000]

The account holds a position in each of ``--symbols`` symbols, all marked; ``--orders`` market buys, one symbol
after the other (a rebalance batch), are checked and reserved by :class:`~tradepulse.risk.RiskEngine` with every
limit on. Prints microseconds of process CPU per check for each account size: a check must not grow with the
number of symbols the account holds (the gross exposure limit is the one that looks at all of them).
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

from tradepulse.clock import LIVE_CLOCK
from tradepulse.config import InstrumentsConfig, InstrumentSpec, RiskConfig
from tradepulse.domain import OrderType, Side, SubmitOrder, TimeInForce
from tradepulse.risk import AccountRisk, InstrumentRegistry, Marks, RiskEngine

D = Decimal


def per_check_us(symbols: int, orders: int) -> float:
    names = [f"S{i:05d}" for i in range(symbols)]
    instruments = InstrumentRegistry.from_config(
        InstrumentsConfig(universe=tuple(InstrumentSpec(symbol=s) for s in names))
    )
    config = RiskConfig(
        starting_cash=D(10**12),
        max_order_notional=D(10**12),
        max_position=D(10**9),
        max_gross_exposure=D(10**13),
        max_orders_per_s=10**9,
    )
    risk = RiskEngine(config, instruments, LIVE_CLOCK)
    marks = Marks()
    account = AccountRisk("default", D(10**12))
    for s in names:
        marks.set(s, D("100.00"))
        account.exposure(s).position = D(10)
    cmds = [
        SubmitOrder(
            client_order_id=f"c{i}",
            symbol=names[i % symbols],
            side=Side.BUY,
            quantity=D(5),
            order_type=OrderType.MARKET,
            time_in_force=TimeInForce.IOC,
        )
        for i in range(orders)
    ]
    t0 = time.process_time()
    accepted = sum(risk.check(c, account, marks).accepted for c in cmds)
    elapsed = time.process_time() - t0
    if accepted != orders:
        raise SystemExit(f"only {accepted} of {orders} orders were accepted: the limits are not what this measures")
    return elapsed / orders * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, nargs="+", default=[7, 100, 500, 2000])
    p.add_argument("--orders", type=int, default=2000)
    args = p.parse_args()
    for n in args.symbols:
        print(f"account holding {n:>6,} symbols: {per_check_us(n, args.orders):7.1f} us CPU per risk check")


if __name__ == "__main__":
    main()
