"""A small broker that really fills: it keeps cash and positions, refuses what it cannot pay for or deliver,
deduplicates by client order id, and can fill only part of an order or reject a symbol outright."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from fractions import Fraction

from tradepulse.domain import (
    Fill,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    RejectReason,
    Side,
    SubmitOrder,
)


class FakeBroker:
    def __init__(
        self,
        cash: Decimal,
        holdings: dict[str, Decimal],
        prices: dict[str, Decimal],
        *,
        fee_per_order: Decimal = Decimal(0),
        fee_rate: Decimal = Decimal(0),
        fee_precision: Decimal = Decimal("0.01"),
        fill_ratio: dict[str, Fraction] | None = None,
        lot: dict[str, Decimal] | None = None,
        reject: set[str] | None = None,
    ) -> None:
        self.cash = cash
        self.holdings = dict(holdings)
        self.prices = prices
        self.fee_per_order = fee_per_order
        self.fee_rate = fee_rate
        self.fee_precision = fee_precision
        self.fill_ratio = fill_ratio or {}
        self.lot = lot or {}
        self.reject = reject or set()
        self.orders: dict[str, Order] = {}
        self.submissions = 0
        self.min_cash_seen = cash

    def fee(self, notional: Decimal) -> Decimal:
        variable = math.ceil(Fraction(self.fee_rate * notional) / Fraction(self.fee_precision)) * self.fee_precision
        return self.fee_per_order + variable

    async def submit(self, cmd: SubmitOrder) -> Order:
        self.submissions += 1
        await asyncio.sleep(0)
        if cmd.client_order_id in self.orders:
            return self.orders[cmd.client_order_id]
        order = Order.from_submit(cmd)
        price = self.prices[cmd.symbol]
        lot = self.lot.get(cmd.symbol, Decimal(1))
        ratio = self.fill_ratio.get(cmd.symbol, Fraction(1))
        qty = Decimal(math.floor(Fraction(cmd.quantity / lot) * ratio)) * lot
        notional = qty * price
        fee = self.fee(notional) if qty else Decimal(0)
        held = self.holdings.get(cmd.symbol, Decimal(0))
        if cmd.symbol in self.reject:
            reason = RejectReason.TRADING_HALTED
        elif cmd.side is Side.SELL and cmd.quantity > held:
            reason = RejectReason.REDUCE_ONLY
        elif cmd.side is Side.BUY and notional + fee > self.cash:
            reason = RejectReason.INSUFFICIENT_CASH
        else:
            reason = None
        if reason is not None:
            order = order.apply(OrderRejected(client_order_id=cmd.client_order_id, reason=reason))
        else:
            order = order.apply(OrderAccepted(client_order_id=cmd.client_order_id))
            if qty:
                fill = Fill(
                    fill_id=f"f-{cmd.client_order_id}",
                    client_order_id=cmd.client_order_id,
                    symbol=cmd.symbol,
                    side=cmd.side,
                    price=price,
                    quantity=qty,
                    fee=fee,
                )
                event = OrderFilled if qty == cmd.quantity else OrderPartiallyFilled
                order = order.apply(event(client_order_id=cmd.client_order_id, fill=fill))
                self.cash += fill.cash_delta
                self.holdings[cmd.symbol] = held + (qty if cmd.side is Side.BUY else -qty)
                self.min_cash_seen = min(self.min_cash_seen, self.cash)
            if not order.is_terminal:
                order = order.apply(OrderCanceled(client_order_id=cmd.client_order_id, message="rest canceled"))
        self.orders[cmd.client_order_id] = order
        return order
