"""tradepulse: a fast, honest algorithmic trading platform.

market data -> features -> ML signal -> pre-trade risk -> order stream -> execution engine -> broker
-> fills -> ledger, with a REST/WebSocket API, Prometheus metrics and reproducible benchmarks.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
