"""The incrementally maintained 1-minute bars equal the bars aggregated from the raw ticks, exactly.

Randomised ticks (ties at one microsecond, several batches touching one minute, batches arriving out of time
order, awkward floats from tiny to huge sizes) are written in random batches; then every interval's bars must
equal, field for field and bit for bit, an independent aggregation of the ticks the store holds.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.ticks import DAY0_US, bar_tuples, reference_bars
from tradepulse.domain import TickBatch
from tradepulse.storage.ticks import TickStore

MINUTE_US = 60_000_000

#: tick times (µs from a day start): mostly a few minutes, so that minutes get many ticks from several batches;
#: often the same microsecond (ties broken by arrival), sometimes far away (other days, partitions)
minutes = st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(-3000, 3000))
within = st.one_of(st.sampled_from([0, 1, 2, 30_000_000, MINUTE_US - 1]), st.integers(0, MINUTE_US - 1))
offsets = st.builds(lambda m, u: m * MINUTE_US + u, minutes, within)
prices = st.one_of(
    st.sampled_from([1.0, 1.01, 99.99, 100.0]),
    st.floats(min_value=0.01, max_value=10_000, allow_nan=False, allow_infinity=False).map(lambda p: round(p, 2)),
    st.floats(min_value=1e-8, max_value=1e8, allow_nan=False, allow_infinity=False, allow_subnormal=False),
).filter(lambda p: p > 0)
#: sizes of mixed magnitudes, so that float running sums would round differently from exact ones (sums stay
#: above the subnormal range, below 2.2e-308, which no market data reaches)
sizes = st.one_of(
    st.integers(0, 10_000).map(float),
    st.sampled_from([0.1, 0.2, 0.3, 1e-3, 1e16, 3.0e15 + 1]),
    st.floats(min_value=1e-6, max_value=1e16, allow_nan=False, allow_infinity=False),
)
#: (time offset, price, size, symbol number, batch number): batches are written in number order
ticks_strategy = st.lists(
    st.tuples(offsets, prices, sizes, st.integers(0, 2), st.integers(0, 4)), min_size=1, max_size=120
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ticks_strategy, order=st.randoms(use_true_random=False))
async def test_rollup_equals_raw_aggregation(
    tick_store: TickStore, rows: list[tuple[int, float, float, int, int]], order: Any
) -> None:
    tag = uuid.uuid4().hex[:8]  # every example writes its own symbols into the shared store
    symbols = [f"S{k}{tag}" for k in range(3)]
    batch = TickBatch.from_columns(
        [symbols[r[3]] for r in rows],
        [(DAY0_US + r[0]) * 1000 for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )
    for number in range(5):
        members = [i for i, r in enumerate(rows) if r[4] == number]
        order.shuffle(members)  # within a batch, ticks are not in time order either
        if members:
            await tick_store.write(batch.take(np.array(members, dtype=np.int64)))
    start, end = (DAY0_US - 3 * 86_400_000_000) * 1000, (DAY0_US + 3 * 86_400_000_000) * 1000
    for symbol in symbols:
        raw = await tick_store.ticks(symbol, start, end)
        assert len(raw) == sum(1 for r in rows if symbols[r[3]] == symbol)
        for interval, seconds in (("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86400)):
            got = (await tick_store.bars(symbol, interval, start, end)).to_bars()
            assert bar_tuples(got) == bar_tuples(reference_bars(raw, symbol, seconds)), interval
