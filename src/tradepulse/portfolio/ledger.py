"""The ledger: fills -> positions, cash, fees, realized and unrealized PnL, booked exactly once.

The arithmetic is the domain's (:meth:`Position.apply_fill`, :attr:`Fill.cash_delta`, exact Decimals); the
persistence is a :class:`~tradepulse.storage.ledger_store.LedgerStore`. A booking applies a batch of order
updates in one transaction: for each order, its new fills (moving its position and the account's cash), what is
released from its reservation (the filled quantity, and the unfilled rest once the order is closed), and its new
state.

:func:`verify` checks the books against the fills, exactly, in a way that does not depend on the order the fills
were booked in:

* per position: quantity = sum of signed fill quantities; cost basis - realized PnL = sum of signed fill
  notionals; fees = sum of fill fees;
* per account: cash = starting cash + sum of fill cash deltas (notional and fee);
* per order: filled quantity and fees = the sums over its fills; FILLED exactly when nothing is left;
* per (account, symbol): reserved - released = what the open orders still reserve.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from tradepulse.domain import Fill, Order, OrderStatus, Position, Side
from tradepulse.domain.money import ZERO, exact_add, exact_mul, exact_sub
from tradepulse.storage.ledger_store import AccountRow, LedgerStore, PositionRow, Quantities


class BookItem(msgspec.Struct, kw_only=True):
    """What one order contributes to a booking."""

    order: Order
    reserve_price: Decimal
    fills: list[Fill] = msgspec.field(default_factory=list)
    #: quantity released from the reservation other than by fills (the rest of a closed order)
    release_quantity: Decimal = ZERO


def _release(released: Quantities, side: Side, quantity: Decimal, price: Decimal) -> None:
    notional = exact_mul(quantity, price)
    if side is Side.BUY:
        released.buy_qty = exact_add(released.buy_qty, quantity)
        released.buy_notional = exact_add(released.buy_notional, notional)
    else:
        released.sell_qty = exact_add(released.sell_qty, quantity)
        released.sell_notional = exact_add(released.sell_notional, notional)


class Ledger:
    """Book order updates and fills through a store; read account summaries."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.booked_fills = 0
        self.bookings = 0

    async def book(self, items: Sequence[BookItem], now_ns: int | None = None) -> None:
        """Book ``items`` in one transaction (raises DuplicateFill or LedgerUnavailable, writing nothing)."""
        if not items:
            return
        now = time.time_ns() if now_ns is None else now_ns
        account_ids = sorted({i.order.account_id for i in items})
        keys = sorted({(i.order.account_id, i.order.symbol) for i in items if i.fills or i.release_quantity})
        async with self.store.booking(account_ids, keys) as tx:
            accounts: dict[str, AccountRow] = {}
            positions: dict[tuple[str, str], PositionRow] = {}
            fills: list[Fill] = []
            for item in items:
                order = item.order
                if not item.fills and not item.release_quantity:
                    continue
                key = (order.account_id, order.symbol)
                row = positions.get(key)
                if row is None:
                    row = tx.positions.get(key)
                    if row is None:
                        row = PositionRow(position=Position(account_id=order.account_id, symbol=order.symbol))
                    positions[key] = row
                account = accounts.get(order.account_id)
                if account is None:
                    account = tx.accounts.get(order.account_id)
                    if account is None:
                        raise ValueError(
                            f"order {order.client_order_id}: account {order.account_id!r} is not in the ledger"
                        )
                    accounts[order.account_id] = account
                for fill in item.fills:
                    before = row.position.realized_pnl
                    row.position = row.position.apply_fill(fill)
                    account.cash = exact_add(account.cash, fill.cash_delta)
                    account.fees = exact_add(account.fees, fill.fee)
                    account.realized_pnl = exact_add(account.realized_pnl, exact_sub(row.position.realized_pnl, before))
                    account.updated_ns = max(account.updated_ns, fill.ts_exchange_ns)
                    _release(row.released, order.side, fill.quantity, item.reserve_price)
                    fills.append(fill)
                if item.release_quantity:
                    _release(row.released, order.side, item.release_quantity, item.reserve_price)
                row.position = msgspec.structs.replace(row.position, updated_ns=max(row.position.updated_ns, now))
            await tx.write(
                fills=fills,
                orders=[i.order for i in items],
                positions=list(positions.values()),
                accounts=list(accounts.values()),
                booked_ns=now,
            )
        self.booked_fills += len(fills)
        self.bookings += 1

    async def summary(self, account_id: str, marks: Mapping[str, Decimal] | None = None) -> AccountSummary | None:
        """Return the account's cash, positions and PnL, marking positions at ``marks`` (else the stored marks)."""
        account = await self.store.account(account_id)
        if account is None:
            return None
        prices = dict(await self.store.marks()) if marks is None else dict(marks)
        rows = await self.store.positions(account_id)
        unrealized = ZERO
        market_value = ZERO
        lines: list[PositionLine] = []
        for row in rows:
            p = row.position
            mark = prices.get(p.symbol)
            upnl = p.unrealized_pnl(mark) if mark is not None and p.quantity else ZERO
            value = p.market_value(mark) if mark is not None else p.cost_basis
            unrealized = exact_add(unrealized, upnl)
            market_value = exact_add(market_value, value)
            lines.append(PositionLine(position=p, mark=mark, unrealized_pnl=upnl, market_value=value))
        return AccountSummary(
            account=account,
            positions=lines,
            realized_pnl=account.realized_pnl,
            unrealized_pnl=unrealized,
            fees=account.fees,
            equity=exact_add(account.cash, market_value),
        )


@dataclass(frozen=True)
class PositionLine:
    position: Position
    mark: Decimal | None
    unrealized_pnl: Decimal
    market_value: Decimal


@dataclass(frozen=True)
class AccountSummary:
    account: AccountRow
    positions: list[PositionLine]
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    equity: Decimal


async def verify(store: LedgerStore, account_id: str) -> list[str]:
    """Return every discrepancy between the account's books and its fills (empty when the books are right)."""
    problems: list[str] = []
    account = await store.account(account_id)
    if account is None:
        return [f"account {account_id!r} is not in the ledger"]
    fills = await store.fills(account_id=account_id)
    ids = [f.fill_id for f in fills]
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} fill ids are booked more than once")
    qty: dict[str, Decimal] = {}
    signed_notional: dict[str, Decimal] = {}
    fees: dict[str, Decimal] = {}
    cash = account.starting_cash
    by_order: dict[str, list[Fill]] = {}
    for f in fills:
        sign = Decimal(f.side.sign)
        qty[f.symbol] = exact_add(qty.get(f.symbol, ZERO), exact_mul(sign, f.quantity))
        signed_notional[f.symbol] = exact_add(signed_notional.get(f.symbol, ZERO), exact_mul(sign, f.notional))
        fees[f.symbol] = exact_add(fees.get(f.symbol, ZERO), f.fee)
        cash = exact_add(cash, f.cash_delta)
        by_order.setdefault(f.client_order_id, []).append(f)
    if cash != account.cash:
        problems.append(f"cash {account.cash} != starting cash + fills = {cash}")
    if account.fees != sum(fees.values(), ZERO):
        problems.append(f"account fees {account.fees} != sum of fill fees {sum(fees.values(), ZERO)}")
    positions = {row.position.symbol: row for row in await store.positions(account_id)}
    realized = ZERO
    for symbol in set(positions) | set(qty):
        row = positions.get(symbol)
        p = row.position if row is not None else Position(account_id=account_id, symbol=symbol)
        realized = exact_add(realized, p.realized_pnl)
        if p.quantity != qty.get(symbol, ZERO):
            problems.append(f"{symbol}: position {p.quantity} != sum of fills {qty.get(symbol, ZERO)}")
        if exact_sub(p.cost_basis, p.realized_pnl) != signed_notional.get(symbol, ZERO):
            problems.append(
                f"{symbol}: cost basis - realized PnL {exact_sub(p.cost_basis, p.realized_pnl)} "
                f"!= signed fill notional {signed_notional.get(symbol, ZERO)}"
            )
        if p.fees != fees.get(symbol, ZERO):
            problems.append(f"{symbol}: fees {p.fees} != sum of fill fees {fees.get(symbol, ZERO)}")
    if realized != account.realized_pnl:
        problems.append(f"account realized PnL {account.realized_pnl} != sum over positions {realized}")
    orders = await store.orders(account_id=account_id)
    open_left: dict[str, Quantities] = {}
    for record in orders:
        o = record.order
        mine = by_order.pop(o.client_order_id, [])
        filled = sum((f.quantity for f in mine), ZERO)
        if filled != o.filled_quantity:
            problems.append(f"order {o.client_order_id}: filled {o.filled_quantity} != sum of its fills {filled}")
        if sum((f.fee for f in mine), ZERO) != o.fees:
            problems.append(f"order {o.client_order_id}: fees {o.fees} != sum of its fill fees")
        if (o.status is OrderStatus.FILLED) != (o.filled_quantity == o.quantity):
            problems.append(f"order {o.client_order_id}: status {o.status} with {o.filled_quantity}/{o.quantity}")
        if o.status.is_open:
            left = open_left.setdefault(o.symbol, Quantities())
            _release(left, o.side, exact_sub(o.quantity, o.filled_quantity), record.reserve_price)
    if by_order:
        problems.append(f"fills of orders missing from the ledger: {sorted(by_order)[:5]}")
    snap = (await store.snapshot([account_id])).get(account_id)
    if snap is not None:
        for symbol in set(snap.reserved) | set(open_left) | set(snap.positions):
            reserved = snap.reserved.get(symbol, Quantities())
            released = snap.positions[symbol].released if symbol in snap.positions else Quantities()
            expected = open_left.get(symbol, Quantities())
            for name in ("buy_qty", "sell_qty", "buy_notional", "sell_notional"):
                outstanding = exact_sub(getattr(reserved, name), getattr(released, name))
                if outstanding != getattr(expected, name):
                    problems.append(
                        f"{symbol}: reserved - released {name} = {outstanding} "
                        f"!= what open orders reserve {getattr(expected, name)}"
                    )
    return problems


__all__ = ["AccountSummary", "BookItem", "Ledger", "PositionLine", "verify"]
