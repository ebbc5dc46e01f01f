"""Metrics (the seed's names), latency histograms and per-stage timing, logging setup."""
