"""HDR latency histograms and per-stage latency from message stamps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hdrh.histogram import HdrHistogram

from tradepulse.domain.messages import stage_durations
from tradepulse.observability.metrics import STAGE_LATENCY

_MAX_NS = 3_600_000_000_000  # one hour: anything slower is recorded as one hour


class LatencyHistogram:
    """An HDR histogram of nanosecond latencies (1 ns .. 1 h, 3 significant digits), read in milliseconds."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = HdrHistogram(1, _MAX_NS, 3)

    def record_ns(self, value_ns: int) -> None:
        """Record one latency; negative values (clock steps between hosts) are recorded as 1 ns."""
        self._h.record_value(min(max(value_ns, 1), _MAX_NS))

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, percentile: float) -> float:
        """Return the latency at ``percentile`` (0-100) in milliseconds; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        return float(self._h.get_value_at_percentile(percentile)) / 1e6

    def percentiles_ms(self, percentiles: Iterable[float] = (50, 95, 99, 99.9)) -> dict[str, float]:
        """Return ``{"p50": ..., "p99.9": ...}`` in milliseconds."""
        return {f"p{p:g}": self.percentile_ms(p) for p in percentiles}

    def max_ms(self) -> float:
        return float(self._h.get_max_value()) / 1e6 if self.count else 0.0

    def mean_ms(self) -> float:
        return float(self._h.get_mean_value()) / 1e6 if self.count else 0.0

    def merge(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    def encode(self) -> str:
        """Return the histogram in HdrHistogram's compressed base64 form (to ship between processes)."""
        encoded: bytes = self._h.encode()
        return encoded.decode("ascii")

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        out = cls()
        out._h.decode_and_add(text)
        return out

    def reset(self) -> None:
        self._h.reset()


class StageLatency:
    """Per-stage latency histograms fed from message stamps (see :func:`~tradepulse.domain.stage_durations`)."""

    __slots__ = ("_export", "stages", "total")

    def __init__(self, export: bool = True) -> None:
        self.stages: dict[str, LatencyHistogram] = {}
        self.total = LatencyHistogram()
        self._export = export

    def record(self, stamps: Mapping[str, int]) -> None:
        """Record each stage's duration and the first-to-last total."""
        durations = stage_durations(dict(stamps))
        if not durations:
            return
        total = 0
        for stage, ns in durations:
            hist = self.stages.get(stage)
            if hist is None:
                hist = self.stages[stage] = LatencyHistogram()
            hist.record_ns(ns)
            total += ns
            if self._export:
                STAGE_LATENCY.labels(stage=stage).observe(ns / 1e6)
        self.total.record_ns(total)
