"""serve_metrics: a single-process service (engine, signals) exposes the platform's metrics over HTTP."""

from __future__ import annotations

import urllib.request

from tests.support.servers import free_port
from tradepulse.observability.metrics import serve_metrics


def test_serve_metrics_exposes_the_platform_metrics() -> None:
    port = free_port()
    serve_metrics(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert response.status == 200
    assert "# TYPE execution_latency_milliseconds histogram" in body
    assert "# TYPE model_accuracy gauge" in body
