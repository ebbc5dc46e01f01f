"""The instrument universe: which symbols exist, their tick and lot, and whether they trade."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tradepulse.config import InstrumentsConfig, Settings
from tradepulse.domain import Instrument


class InstrumentRegistry:
    """Instruments by symbol. Built from settings; an empty universe means the market simulator's symbols."""

    __slots__ = ("_by_symbol",)

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_symbol: dict[str, Instrument] = {}
        for instrument in instruments:
            if instrument.symbol in self._by_symbol:
                raise ValueError(f"instruments: {instrument.symbol} is defined twice")
            self._by_symbol[instrument.symbol] = instrument

    @classmethod
    def from_settings(cls, settings: Settings) -> InstrumentRegistry:
        return cls.from_config(settings.instruments, settings.market.symbols)

    @classmethod
    def from_config(cls, config: InstrumentsConfig, default_symbols: Iterable[str] = ()) -> InstrumentRegistry:
        halted = set(config.halted_symbols)
        if config.universe:
            specs = [
                Instrument(
                    symbol=s.symbol,
                    tick_size=s.tick_size,
                    lot_size=s.lot_size,
                    price_precision=s.price_precision,
                    currency=s.currency,
                    tradable=s.tradable and s.symbol not in halted,
                )
                for s in config.universe
            ]
        else:
            precision = max(0, -int(config.tick_size.normalize().as_tuple().exponent))
            specs = [
                Instrument(
                    symbol=symbol,
                    tick_size=config.tick_size,
                    lot_size=config.lot_size,
                    price_precision=precision,
                    tradable=symbol not in halted,
                )
                for symbol in default_symbols
            ]
        return cls(specs)

    def get(self, symbol: str) -> Instrument | None:
        return self._by_symbol.get(symbol)

    def __getitem__(self, symbol: str) -> Instrument:
        return self._by_symbol[symbol]

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_symbol.values())

    def __len__(self) -> int:
        return len(self._by_symbol)

    @property
    def symbols(self) -> list[str]:
        return list(self._by_symbol)
