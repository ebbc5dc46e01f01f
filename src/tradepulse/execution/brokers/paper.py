"""A paper broker: orders fill against the latest quote, with a slippage model, and never walk a book.

Paper trading is an adapter like any other (no ``if dry_run:`` anywhere): the engine, the ledger and the
recovery are the same as with the simulated exchange or a real broker.

* A marketable order fills in full at once at the quote moved against it by ``slippage_bps`` plus
  ``impact_bps`` per quoted size traded (a buy of twice the quoted ask size pays ``slippage + 2 x impact``
  basis points over the ask), rounded to the tick away from the trader, and never beyond its limit price.
* A limit order that is not marketable rests (DAY, GTC) or is canceled (IOC, FOK) and fills on the first tick
  whose quote reaches it. Stops trigger on the last trade price, as on the exchange.
* Fees are the taker fee for orders that fill on arrival and the maker fee for resting orders that fill later.
"""

from __future__ import annotations

import math
from pathlib import Path

from tradepulse.clock import LIVE_CLOCK, Clock
from tradepulse.config import VenueConfig
from tradepulse.domain import Liquidity, Order, OrderStatus, OrderType, RejectReason, Tick, TimeInForce
from tradepulse.execution.brokers.venue import Grid, VenueCore, VenueOrder
from tradepulse.risk.instruments import InstrumentRegistry


class PaperBroker(VenueCore):
    """Fill against the latest quotes with slippage. See the module docstring."""

    kind = "paper"

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
        self.quotes: dict[str, Tick] = {}
        self.resting: dict[str, list[VenueOrder]] = {symbol: [] for symbol in self.grids}
        self._slip = float(config.slippage_bps) / 1e4
        self._impact = float(config.impact_bps) / 1e4

    def _validate(self, order: Order) -> tuple[RejectReason, str] | None:
        refusal = super()._validate(order)
        if refusal is None and order.symbol not in self.quotes:
            return RejectReason.NO_LIQUIDITY, f"no quote for {order.symbol} yet"
        return refusal

    def _fill_price(self, vo: VenueOrder, quote: Tick) -> int | None:
        """Return the slipped fill price in ticks if ``vo`` is marketable against ``quote``, else None."""
        grid = vo.grid
        lots_quoted = (quote.ask_size if vo.buy else quote.bid_size) / float(grid.lot)
        size_ratio = vo.leaves / lots_quoted if lots_quoted > 0 else 1.0
        slip = self._slip + self._impact * size_ratio
        if vo.buy:
            price = math.ceil(quote.ask * (1 + slip) / float(grid.tick) - 1e-9)
            touch = grid.ticks_from_float(quote.ask)
        else:
            price = max(1, math.floor(quote.bid * (1 - slip) / float(grid.tick) + 1e-9))
            touch = grid.ticks_from_float(quote.bid)
        market = vo.order.order_type in (OrderType.MARKET, OrderType.STOP)
        if market or vo.limit_ticks is None:
            return price
        if vo.buy:
            return min(price, vo.limit_ticks) if touch <= vo.limit_ticks else None
        return max(price, vo.limit_ticks) if touch >= vo.limit_ticks else None

    def _on_new(self, vo: VenueOrder, now: int) -> None:
        quote = self.quotes[vo.order.symbol]
        if self.remaining_stop(vo):
            last = vo.grid.ticks_from_float(quote.price)
            if not self._stop_hit(vo, last):
                self.resting[vo.order.symbol].append(vo)
                return
            self._trigger(vo)
        self._execute(vo, quote, now, Liquidity.TAKER)

    def _execute(self, vo: VenueOrder, quote: Tick, now: int, liquidity: Liquidity) -> None:
        price = self._fill_price(vo, quote)
        if price is not None:
            self._trade(vo, vo.leaves, price, liquidity, now)
            return
        tif = vo.order.time_in_force
        if tif is TimeInForce.IOC or tif is TimeInForce.FOK:
            self._close(vo, OrderStatus.CANCELED, now, f"{tif}: not marketable at the quote")
        else:
            self.resting[vo.order.symbol].append(vo)

    def _stop_hit(self, vo: VenueOrder, last: int) -> bool:
        assert vo.stop_ticks is not None
        return last >= vo.stop_ticks if vo.buy else last <= vo.stop_ticks

    def _on_tick(self, tick: Tick, grid: Grid, now: int) -> None:
        self.quotes[tick.symbol] = tick
        waiting = self.resting[tick.symbol]
        if not waiting:
            return
        last = grid.ticks_from_float(tick.price)
        still: list[VenueOrder] = []
        for vo in sorted(waiting, key=lambda o: o.seq):
            if not vo.is_open:
                continue
            if self.remaining_stop(vo):
                if not self._stop_hit(vo, last):
                    still.append(vo)
                    continue
                self._trigger(vo)
                self._execute(vo, tick, now, Liquidity.TAKER)
                if vo.is_open:
                    still.append(vo)
                continue
            price = self._fill_price(vo, tick)
            if price is None:
                still.append(vo)
            else:
                self._trade(vo, vo.leaves, price, Liquidity.MAKER, now)
        self.resting[tick.symbol] = [vo for vo in still if vo.is_open]

    def _remove(self, vo: VenueOrder) -> None:
        waiting = self.resting.get(vo.order.symbol)
        if waiting is not None and vo in waiting:
            waiting.remove(vo)

    def _restore(self, vo: VenueOrder) -> None:
        self.resting.setdefault(vo.order.symbol, []).append(vo)


__all__ = ["PaperBroker"]
