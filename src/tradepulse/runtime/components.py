"""The components the embedded runtime starts, in start order (stopped in reverse).

To plug a new part of the platform into ``tradepulse run``, add a factory here. A factory receives the
settings and returns a component, or None when the settings switch the component off.
"""

from __future__ import annotations

from collections.abc import Callable

from tradepulse.config import Settings
from tradepulse.runtime.component import Component
from tradepulse.runtime.execution import DemoTrader, ExecutionComponent
from tradepulse.runtime.market import MarketState, SimulatedFeed
from tradepulse.runtime.signals import make_signal_component
from tradepulse.runtime.tick_writer import TickWriter

ComponentFactory = Callable[[Settings], Component | None]


def _api(settings: Settings) -> Component | None:
    if not settings.api.embedded:
        return None
    from tradepulse.runtime.api import ApiComponent  # the web stack is imported only when the API is served

    return ApiComponent()


#: consumers first, so that they are listening before producers start
COMPONENTS: list[ComponentFactory] = [
    lambda settings: MarketState(),
    lambda settings: ExecutionComponent(),
    lambda settings: TickWriter(settings.tickstore) if settings.tickstore.enabled else None,
    _api,
    make_signal_component,
    lambda settings: SimulatedFeed(),
    lambda settings: (
        DemoTrader(float(settings.execution.demo_orders_per_s)) if settings.execution.demo_orders_per_s > 0 else None
    ),
]
