"""A simulated exchange: per-symbol price-time-priority books, MARKET / LIMIT / STOP / STOP_LIMIT,
DAY / GTC / IOC / FOK, partial fills, maker/taker fees, a latency model, and liquidity from market data.

Matching rules, as a real venue's rulebook would state them:

* An incoming order trades against the best price on the other side first: resting client orders and the
  synthetic depth from the latest tick; at one price, resting client orders (older) trade before the synthetic
  depth (just refreshed). A trade prints at the resting side's price; the incoming order pays the taker fee.
* MARKET orders take whatever liquidity there is and never rest: an unfilled remainder is canceled; a market
  order that arrives when there is no liquidity at all is rejected (NO_LIQUIDITY).
* LIMIT orders trade up to their price; DAY and GTC remainders rest, IOC remainders are canceled, FOK orders
  trade in full or not at all.
* STOP and STOP_LIMIT orders wait until the last trade reaches the stop (at or above it for a buy, at or below
  for a sell), then act as MARKET or LIMIT orders entered at that moment.
* When a tick moves the market through resting orders, they trade at their own limit price (they are the maker).
* Self-trade prevention: an incoming order never trades with a resting order of the same account; the resting
  order is canceled (cancel-oldest).
* DAY orders expire at :meth:`~tradepulse.execution.brokers.venue.VenueCore.end_of_session`.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

from tradepulse.clock import LIVE_CLOCK, Clock
from tradepulse.config import VenueConfig
from tradepulse.domain import Liquidity, Order, OrderStatus, OrderType, RejectReason, Side, Tick, TimeInForce
from tradepulse.execution.brokers.book import SideBook, SyntheticDepth
from tradepulse.execution.brokers.venue import Grid, VenueCore, VenueOrder
from tradepulse.risk.instruments import InstrumentRegistry


class _SymbolBook:
    __slots__ = ("asks", "bids", "buy_stops", "last", "sell_stops", "synth_asks", "synth_bids")

    def __init__(self) -> None:
        self.bids = SideBook(bids=True)
        self.asks = SideBook(bids=False)
        self.synth_bids = SyntheticDepth()
        self.synth_asks = SyntheticDepth()
        self.buy_stops: list[VenueOrder] = []
        self.sell_stops: list[VenueOrder] = []
        self.last: int | None = None


class SimulatedExchange(VenueCore):
    """An in-process exchange fed by the market simulator's ticks. See the module docstring for its rules."""

    kind = "simulated"

    def __init__(
        self,
        venue: str,
        instruments: InstrumentRegistry,
        config: VenueConfig,
        *,
        journal: str | Path | None = None,
        clock: Clock = LIVE_CLOCK,
    ) -> None:
        super().__init__(venue, instruments, config, journal=journal, clock=clock)
        self.books: dict[str, _SymbolBook] = {symbol: _SymbolBook() for symbol in self.grids}
        self._growth = self.config.depth_growth

    # -- incoming orders ------------------------------------------------------------------------------------

    def _validate(self, order: Order) -> tuple[RejectReason, str] | None:
        refusal = super()._validate(order)
        if refusal is None and order.order_type is OrderType.MARKET:
            book = self.books[order.symbol]
            buy = order.side is Side.BUY
            if (book.asks if buy else book.bids).best() is None and (
                book.synth_asks if buy else book.synth_bids
            ).best() is None:
                return RejectReason.NO_LIQUIDITY, f"no liquidity to {order.side.lower()} {order.symbol} at market"
        return refusal

    def _on_new(self, vo: VenueOrder, now: int) -> None:
        book = self.books[vo.order.symbol]
        order_type = vo.order.order_type
        if order_type is OrderType.STOP or order_type is OrderType.STOP_LIMIT:
            if book.last is not None and self._stop_hit(vo, book.last):
                self._trigger(vo)
                self._execute(vo, book, now)
            else:
                (book.buy_stops if vo.buy else book.sell_stops).append(vo)
            return
        self._execute(vo, book, now)

    def _execute(self, vo: VenueOrder, book: _SymbolBook, now: int) -> None:
        """Trade an incoming (or just triggered) order, then rest, cancel or reject what is left."""
        order = vo.order
        market = order.order_type is OrderType.MARKET or order.order_type is OrderType.STOP
        limit = None if market else vo.limit_ticks
        tif = order.time_in_force
        if tif is TimeInForce.FOK and self._available(vo, book, limit) < vo.leaves:
            self._close(vo, OrderStatus.CANCELED, now, "FOK: not enough liquidity to fill in full")
            return
        self._match(vo, book, limit, now)
        if vo.leaves == 0:
            return
        if market:
            self._close(vo, OrderStatus.CANCELED, now, "market order: no more liquidity for the remainder")
        elif tif is TimeInForce.IOC or tif is TimeInForce.FOK:
            self._close(vo, OrderStatus.CANCELED, now, f"{tif}: remainder canceled")
        else:
            assert vo.limit_ticks is not None
            (book.bids if vo.buy else book.asks).add(vo, vo.limit_ticks)

    def _match(self, vo: VenueOrder, book: _SymbolBook, limit: int | None, now: int) -> None:
        buy = vo.buy
        resting = book.asks if buy else book.bids
        synth = book.synth_asks if buy else book.synth_bids
        account = vo.order.account_id
        while vo.leaves > 0:
            client_px = resting.best()
            synth_px = synth.best()
            if client_px is None and synth_px is None:
                return
            use_client = synth_px is None or (
                client_px is not None and (client_px <= synth_px if buy else client_px >= synth_px)
            )
            price = client_px if use_client else synth_px
            assert price is not None
            if limit is not None and (price > limit if buy else price < limit):
                return
            if use_client:
                maker = resting.front(price)
                if maker.order.account_id == account:
                    resting.pop_front(price)
                    self._close(maker, OrderStatus.CANCELED, now, "self-trade prevention: canceled the resting order")
                    continue
                lots = min(vo.leaves, maker.leaves)
                self._trade(maker, lots, price, Liquidity.MAKER, now)
                if maker.leaves == 0:
                    resting.pop_front(price)
            else:
                lots = synth.take(vo.leaves)
            self._trade(vo, lots, price, Liquidity.TAKER, now)
            book.last = price

    def _available(self, vo: VenueOrder, book: _SymbolBook, limit: int | None) -> int:
        """Return how many lots ``vo`` could trade now up to ``limit`` (for FOK), excluding its own account."""
        buy = vo.buy
        total = 0
        resting = book.asks if buy else book.bids
        for price, level in resting.walk():
            if limit is not None and (price > limit if buy else price < limit):
                break
            total += sum(o.leaves for o in level if o.order.account_id != vo.order.account_id)
        for price, lots in (book.synth_asks if buy else book.synth_bids).levels:
            if limit is not None and (price > limit if buy else price < limit):
                break
            total += lots
        return total

    # -- market data ----------------------------------------------------------------------------------------

    def _on_tick(self, tick: Tick, grid: Grid, now: int) -> None:
        book = self.books[tick.symbol]
        bid = grid.ticks_from_float(tick.bid)
        ask = grid.ticks_from_float(tick.ask)
        book.synth_bids.levels = self._depth(bid, -1, tick.bid_size, grid)
        book.synth_asks.levels = self._depth(ask, +1, tick.ask_size, grid)
        book.last = grid.ticks_from_float(tick.price)
        self._cross_resting(book, now)
        self._trigger_stops(book, now)

    def _depth(self, best: int, step: int, quoted: float, grid: Grid) -> list[list[int]]:
        if best <= 0:
            return []
        base = max(self.config.min_level_lots, int(quoted / float(grid.lot)))
        levels: list[list[int]] = []
        size = Decimal(base)
        for k in range(self.config.depth_levels):
            price = best + step * k
            if price <= 0:
                break
            levels.append([price, int(size.to_integral_value(rounding=ROUND_FLOOR))])
            size *= self._growth
        return levels

    def _cross_resting(self, book: _SymbolBook, now: int) -> None:
        """Trade resting client orders that the new quotes cross, at the resting orders' own prices."""
        for resting, synth, buy in ((book.bids, book.synth_asks, True), (book.asks, book.synth_bids, False)):
            while resting:
                price = resting.best()
                synth_px = synth.best()
                if price is None or synth_px is None or (synth_px > price if buy else synth_px < price):
                    break
                vo = resting.front(price)
                lots = synth.take(vo.leaves)
                self._trade(vo, lots, price, Liquidity.MAKER, now)
                if vo.leaves == 0:
                    resting.pop_front(price)

    def _stop_hit(self, vo: VenueOrder, last: int) -> bool:
        assert vo.stop_ticks is not None
        return last >= vo.stop_ticks if vo.buy else last <= vo.stop_ticks

    def _trigger_stops(self, book: _SymbolBook, now: int) -> None:
        if book.last is None:
            return
        for stops in (book.buy_stops, book.sell_stops):
            if not stops:
                continue
            hit = [vo for vo in stops if vo.is_open and self._stop_hit(vo, book.last)]
            if not hit:
                continue
            stops[:] = [vo for vo in stops if vo not in hit and vo.is_open]
            for vo in sorted(hit, key=lambda o: o.seq):
                self._trigger(vo)
                self._execute(vo, book, now)

    def _after_batch(self, now: int) -> None:
        for book in self.books.values():
            if book.buy_stops or book.sell_stops:
                self._trigger_stops(book, now)

    # -- cancels and recovery -------------------------------------------------------------------------------

    def _remove(self, vo: VenueOrder) -> None:
        book = self.books.get(vo.order.symbol)
        if book is None:
            return
        if self.remaining_stop(vo):
            stops = book.buy_stops if vo.buy else book.sell_stops
            if vo in stops:
                stops.remove(vo)
            return
        if vo.limit_ticks is not None:
            (book.bids if vo.buy else book.asks).remove(vo, vo.limit_ticks)

    def _restore(self, vo: VenueOrder) -> None:
        book = self.books.get(vo.order.symbol)
        if book is None:
            return
        if self.remaining_stop(vo):
            (book.buy_stops if vo.buy else book.sell_stops).append(vo)
        elif vo.limit_ticks is not None:
            (book.bids if vo.buy else book.asks).add(vo, vo.limit_ticks)

    def depth(self, symbol: str) -> dict[str, list[tuple[str, str]]]:
        """Return the resting client orders and the synthetic depth of ``symbol`` (for tools and tests)."""
        book = self.books[symbol]
        grid = self.grids[symbol]

        def side(sb: SideBook) -> list[tuple[str, str]]:
            return [(str(grid.price(p)), str(grid.quantity(sum(o.leaves for o in q)))) for p, q in sb.walk()]

        return {
            "bids": side(book.bids),
            "asks": side(book.asks),
            "synthetic_bids": [(str(grid.price(p)), str(grid.quantity(n))) for p, n in book.synth_bids.levels],
            "synthetic_asks": [(str(grid.price(p)), str(grid.quantity(n))) for p, n in book.synth_asks.levels],
        }


__all__ = ["SimulatedExchange"]
