"""Prometheus metric definitions, in one place, with the seed's names where the seed names them.

Histograms in milliseconds use buckets fine enough for a sub-millisecond platform and wide enough for the
seed's 100 ms alert thresholds.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MS_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
)

BUS_MESSAGES = Counter(
    "bus_messages_total",
    "Bus messages by stream and operation (published, delivered, acked, redelivered, dead_lettered, ...).",
    ["stream", "operation"],
)

STAGE_LATENCY = Histogram(
    "stage_latency_milliseconds",
    "Time a message spent in each stage of the trading loop, from its stage stamps.",
    ["stage"],
    buckets=MS_BUCKETS,
)

EXECUTION_LATENCY = Histogram(
    "execution_latency_milliseconds",
    "Order submitted -> terminal execution report, end to end (the seed's execution SLO).",
    buckets=MS_BUCKETS,
)

MODEL_ACCURACY = Gauge(
    "model_accuracy",
    "Accuracy of the live model's signals on labels that have matured (the seed's LowModelAccuracy alert).",
    ["model_version"],
)

TICKS_STORED = Counter("ticks_stored_total", "Ticks written to the tick store by the tick writer.")

TICK_STORE_WRITE_LATENCY = Histogram(
    "tick_store_write_milliseconds",
    "Time to write one batch of ticks to the tick store (one transaction).",
    buckets=MS_BUCKETS,
)

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_ms",
    "API request duration by method, route template and status (the seed's HighAPILatency alert).",
    ["method", "route", "status"],
    buckets=MS_BUCKETS,
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose this process's metrics on ``http://host:port/metrics`` from a daemon thread (0: don't).

    For single-process services (``tradepulse engine``, ``tradepulse signals``); the API serves ``/metrics`` itself
    and aggregates its worker processes.
    """
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host)
