"""The alert rules and the Prometheus config are valid for promtool, and each alert fires on a synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make test installs it)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=DEPLOY, capture_output=True, text=True, check=False, timeout=60)


def test_rules_are_valid_promql() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_a_synthetic_series() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = (DEPLOY / "alerts_test.yml").read_text()
    for alert in (
        "HighExecutionLatency",
        "HighAPILatency",
        "LowModelAccuracy",
        "BusDeadLetters",
        "EngineRefusingOrders",
        "EngineForwardFallbacks",
    ):
        assert f"alertname: {alert}" in tested


def test_the_seed_form_is_rejected() -> None:
    """The seed's `histogram_quantile(0.95, execution_latency_milliseconds)` is what we must not ship."""
    lines = (DEPLOY / "alerts.yml").read_text().splitlines()
    rules = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert "histogram_quantile(0.95, execution_latency_milliseconds)" not in rules
    assert "rate(execution_latency_milliseconds_bucket[5m])" in rules
