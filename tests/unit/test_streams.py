from __future__ import annotations

import subprocess
import sys

import pytest

from tradepulse.bus.streams import order_partition, order_stream, order_streams


def test_partition_is_stable_across_processes() -> None:
    here = [order_partition(s, 8) for s in ("AAPL", "MSFT", "GOOG", "X")]
    code = (
        "from tradepulse.bus.streams import order_partition as p; print([p(s, 8) for s in ('AAPL','MSFT','GOOG','X')])"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert str(here) == other


def test_streams_cover_every_partition() -> None:
    names = order_streams(4)
    assert names == ["orders:0", "orders:1", "orders:2", "orders:3"]
    assert {order_stream(f"S{i}", 4) for i in range(200)} == set(names)
    with pytest.raises(ValueError, match="partitions"):
        order_partition("A", 0)
