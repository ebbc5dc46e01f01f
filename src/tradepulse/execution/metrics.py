"""An engine's counters for Prometheus, read when /metrics is scraped: nothing is added to the order path.

``tradepulse engine`` registers one :class:`EngineCollector` for its engine. Every series carries the engine's
name, so the engines of a deployment can be told apart, and summed (``sum by (outcome)``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradepulse.execution.engine import ExecutionEngine


class EngineCollector(Collector):
    """Reads ``engine``'s counters at scrape time (see the module docstring)."""

    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        name = engine.name
        c = engine.state.counters
        orders = CounterMetricFamily(
            "engine_orders",
            "Submits an engine handled, by outcome: received; then admitted (sent to the venue), rejected by risk, "
            "duplicate (answered as it stands), refused_ledger_down, or forwarded to the engine admitting for a "
            "busy shared account; forward_fallback counts forwarded ones admitted here after all.",
            labels=["engine", "outcome"],
        )
        for outcome, value in (
            ("received", c.received),
            ("admitted", c.admitted),
            ("rejected", c.rejected),
            ("duplicate", c.duplicates),
            ("refused_ledger_down", c.refused_ledger_down),
            ("forwarded", c.forwarded),
            ("forward_fallback", c.forward_fallbacks),
        ):
            orders.add_metric([name, outcome], value)
        yield orders
        turns = CounterMetricFamily(
            "engine_contended_admissions",
            "Admissions for accounts other engines admit for too: contended turns (decided on fresh state), those "
            "taken under the ledger's lock, and overtaken writes retried.",
            labels=["engine", "kind"],
        )
        for kind, value in (
            ("turn", c.contended_turns),
            ("locked", c.locked_admissions),
            ("retry", c.admission_retries),
        ):
            turns.add_metric([name, kind], value)
        yield turns
        fills = CounterMetricFamily("engine_fills", "Fills the engine applied from its venue.", labels=["engine"])
        fills.add_metric([name], engine.processor.counters.fills)
        yield fills
        timeouts = CounterMetricFamily(
            "engine_broker_timeouts", "Broker calls that timed out (orders left UNKNOWN).", labels=["engine"]
        )
        timeouts.add_metric([name], c.broker_timeouts)
        yield timeouts
        open_orders = GaugeMetricFamily("engine_open_orders", "Orders the engine holds open.", labels=["engine"])
        open_orders.add_metric([name], len(engine.state.orders))
        yield open_orders
        backlog = GaugeMetricFamily(
            "engine_backlog",
            "Work not done yet: events not published on reports, orders whose changes are not booked.",
            labels=["engine", "kind"],
        )
        backlog.add_metric([name, "unpublished"], engine.publisher.backlog)
        backlog.add_metric([name, "unbooked"], engine.booker.backlog)
        yield backlog
        ledger = GaugeMetricFamily(
            "engine_ledger_available",
            "1 while the engine admits new orders, 0 while the ledger is unavailable (orders refused).",
            labels=["engine"],
        )
        ledger.add_metric([name], 1 if engine.ledger_available else 0)
        yield ledger


__all__ = ["EngineCollector"]
