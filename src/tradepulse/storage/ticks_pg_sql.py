"""The SQL of the PostgreSQL tick store (:mod:`tradepulse.storage.ticks_pg`), in one place.

Time travels as Unix microseconds (int8) and is converted in SQL with :func:`ts` / :func:`us`; statements are
assembled from these constants only, never from values (values are parameters, or, for ``COPY (query)``, which
takes none, literals made by :func:`~tradepulse.storage.pg_copy.sql_literal`).
"""

from __future__ import annotations

from tradepulse.storage.pg_copy import TICK_QUERY_COLUMNS, Kind


def ts(param: str) -> str:
    """SQL for the timestamptz of a parameter holding Unix microseconds (exact below 2**53 µs, year 2255)."""
    return f"(timestamptz 'epoch' + {param} * interval '1 microsecond')"


def us(column: str) -> str:
    """SQL for a timestamptz column as Unix microseconds (``extract`` is exact numeric since PostgreSQL 14)."""
    return f"(extract(epoch FROM {column}) * 1000000)::int8"


#: a writer's partial 1-minute bars land here (binary COPY), then merge into ohlc_1min in one statement
STAGE = """
CREATE TEMP TABLE IF NOT EXISTS tp_ohlc_stage (
    symbol text, bucket timestamptz, open float8, high float8, low float8, close float8,
    vm int8, vbig text, ve int4, tm int8, tbig text, te int4, trades int8,
    first_time timestamptz, first_seq int8, last_time timestamptz, last_seq int8
) ON COMMIT DELETE ROWS
"""

#: exact sums m * 2^e: align the exponents and add the mantissas; keep the result in int8 while it fits
MERGE_SUMS = """
    {x}_m = CASE WHEN tp_exact_add(coalesce(o.{x}_big, o.{x}_m), o.{x}_e,
                                   coalesce(EXCLUDED.{x}_big, EXCLUDED.{x}_m), EXCLUDED.{x}_e)
                      BETWEEN -9223372036854775808 AND 9223372036854775807
                 THEN tp_exact_add(coalesce(o.{x}_big, o.{x}_m), o.{x}_e,
                                   coalesce(EXCLUDED.{x}_big, EXCLUDED.{x}_m), EXCLUDED.{x}_e)::int8
                 ELSE 0 END,
    {x}_big = CASE WHEN tp_exact_add(coalesce(o.{x}_big, o.{x}_m), o.{x}_e,
                                     coalesce(EXCLUDED.{x}_big, EXCLUDED.{x}_m), EXCLUDED.{x}_e)
                        BETWEEN -9223372036854775808 AND 9223372036854775807
                   THEN NULL
                   ELSE tp_exact_add(coalesce(o.{x}_big, o.{x}_m), o.{x}_e,
                                     coalesce(EXCLUDED.{x}_big, EXCLUDED.{x}_m), EXCLUDED.{x}_e) END,
    {x}_e = least(o.{x}_e, EXCLUDED.{x}_e)"""

ON_CONFLICT_OHLC = f"""
ON CONFLICT (symbol, bucket) DO UPDATE SET
    open = CASE WHEN (EXCLUDED.first_time, EXCLUDED.first_seq) < (o.first_time, o.first_seq)
                THEN EXCLUDED.open ELSE o.open END,
    first_time = CASE WHEN (EXCLUDED.first_time, EXCLUDED.first_seq) < (o.first_time, o.first_seq)
                      THEN EXCLUDED.first_time ELSE o.first_time END,
    first_seq = CASE WHEN (EXCLUDED.first_time, EXCLUDED.first_seq) < (o.first_time, o.first_seq)
                     THEN EXCLUDED.first_seq ELSE o.first_seq END,
    close = CASE WHEN (EXCLUDED.last_time, EXCLUDED.last_seq) > (o.last_time, o.last_seq)
                 THEN EXCLUDED.close ELSE o.close END,
    last_time = CASE WHEN (EXCLUDED.last_time, EXCLUDED.last_seq) > (o.last_time, o.last_seq)
                     THEN EXCLUDED.last_time ELSE o.last_time END,
    last_seq = CASE WHEN (EXCLUDED.last_time, EXCLUDED.last_seq) > (o.last_time, o.last_seq)
                    THEN EXCLUDED.last_seq ELSE o.last_seq END,
    high = greatest(o.high, EXCLUDED.high),
    low = least(o.low, EXCLUDED.low),
    trades = o.trades + EXCLUDED.trades,
    {MERGE_SUMS.format(x="volume")},
    {MERGE_SUMS.format(x="turnover")}
"""

OHLC_COLUMNS = """symbol, bucket, open, high, low, close, volume_m, volume_big, volume_e,
                   turnover_m, turnover_big, turnover_e, trades, first_time, first_seq, last_time, last_seq"""

#: Rollup merges are serialised by this transaction-level lock (the ticks' COPY before it still runs in
#: parallel). Under it, a partial for a minute after its symbol's latest stored tick (``LATEST_MINUTES``, read
#: after the lock, in a new snapshot) can neither meet an existing row nor one another writer is inserting, so
#: those partials are COPYed straight into ohlc_1min; only the rest (late ticks, batch boundaries) are staged
#: and merged with INSERT ... ON CONFLICT.
ROLLUP_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.ohlc_1min'))"

LATEST_MINUTES = f"""
SELECT symbol, {us("date_bin('1 minute', time, timestamptz 'epoch')")} FROM market_latest WHERE symbol = ANY($1::text[])
"""

#: the columns a partial is COPYed into ohlc_1min with (the *_big columns stay NULL: those partials are staged)
OHLC_COPY_COLUMNS = (
    "symbol", "bucket", "open", "high", "low", "close", "volume_m", "volume_e", "turnover_m", "turnover_e",
    "trades", "first_time", "first_seq", "last_time", "last_seq",
)  # fmt: skip

MERGE_STAGE = f"""
INSERT INTO ohlc_1min AS o ({OHLC_COLUMNS})
SELECT symbol, bucket, open, high, low, close, vm, vbig::numeric, ve, tm, tbig::numeric, te,
       trades, first_time, first_seq, last_time, last_seq
FROM tp_ohlc_stage
ORDER BY symbol, bucket  -- rows are locked in this order by every writer
{ON_CONFLICT_OHLC}
"""

UPSERT_LATEST = f"""
INSERT INTO market_latest AS l (symbol, time, price, size, bid, ask, bid_size, ask_size, seq)
SELECT s, {ts("t")}, p, sz, b, a, bs, az, q
FROM unnest($1::text[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
            $8::float8[], $9::int8[]) AS x(s, t, p, sz, b, a, bs, az, q)
ON CONFLICT (symbol) DO UPDATE SET
    time = EXCLUDED.time, price = EXCLUDED.price, size = EXCLUDED.size, bid = EXCLUDED.bid, ask = EXCLUDED.ask,
    bid_size = EXCLUDED.bid_size, ask_size = EXCLUDED.ask_size, seq = EXCLUDED.seq
WHERE (EXCLUDED.time, EXCLUDED.seq) > (l.time, l.seq)
"""

UPSERT_BARS = f"""
INSERT INTO market_bars AS m (symbol, interval_s, start, open, high, low, close, volume, vwap, trades)
SELECT s, $2, {ts("t")}, o, h, lo, c, v, w, n
FROM unnest($1::text[], $3::int8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[],
            $9::float8[], $10::int8[]) AS x(s, t, o, h, lo, c, v, w, n)
ON CONFLICT (symbol, interval_s, start) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, trades = EXCLUDED.trades
"""

INSERT_INGEST = """
INSERT INTO market_ingests (sha256, path, kind, rows, rejected) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (sha256) DO NOTHING
"""


def exact_sum_float(x: str, emin: str) -> str:
    """SQL for the float nearest to the exact sum of the stored sums ``x`` of a group (aligned to ``emin``)."""
    return f"(sum(coalesce({x}_big, {x}_m) * 2::numeric ^ ({x}_e - {emin}))::float8 * power(2::float8, {emin}))"


#: one symbol's 1-minute bars, fetched as binary COPY (decoded by numpy) and sorted by the client: COPY takes no
#: parameters, so the symbol and the bounds are literals ({symbol}, {start}, {end}). The exact sums come back as
#: their parts, rounded to floats by numpy (measured: a third of the server time when PostgreSQL did it per row)
BARS_1M = f"""
SELECT bucket, open, high, low, close,
       volume_m, volume_e, coalesce(volume_big::float8, 'NaN'),
       turnover_m, turnover_e, coalesce(turnover_big::float8, 'NaN'), trades
FROM ohlc_1min WHERE symbol = {{symbol}} AND bucket >= {ts("{start}::int8")} AND bucket < {ts("{end}::int8")}
"""

BARS_ROLLUP_NATIVE = f"""
WITH m AS (
    SELECT date_bin($4::interval, bucket, timestamptz 'epoch') AS b, *
    FROM ohlc_1min WHERE symbol = $1 AND bucket >= {ts("$2::int8")} AND bucket < {ts("$3::int8")}
), e AS (SELECT b, min(volume_e) AS ve, min(turnover_e) AS te FROM m GROUP BY b)
SELECT {us("b")}, (array_agg(open ORDER BY first_time, first_seq))[1], max(high), min(low),
       (array_agg(close ORDER BY last_time DESC, last_seq DESC))[1],
       {exact_sum_float("volume", "e.ve")}, {exact_sum_float("turnover", "e.te")}, sum(trades)::int8
FROM m JOIN e USING (b)
GROUP BY b, e.ve, e.te ORDER BY b
"""

BARS_1M_TIMESCALE = f"""
SELECT bucket, open, high, low, close, volume::float8, turnover::float8, trades
FROM ohlc_1min WHERE symbol = {{symbol}} AND bucket >= {ts("{start}::int8")} AND bucket < {ts("{end}::int8")}
"""

BARS_ROLLUP_TIMESCALE = f"""
SELECT {us("b")}, first(open, bucket), max(high), min(low), last(close, bucket),
       sum(volume)::float8, sum(turnover)::float8, sum(trades)::int8
FROM (SELECT time_bucket($4::interval, bucket) AS b, *
      FROM ohlc_1min WHERE symbol = $1 AND bucket >= {ts("$2::int8")} AND bucket < {ts("$3::int8")}) m
GROUP BY b ORDER BY b
"""

TICKS_QUERY = f"""
SELECT {", ".join(TICK_QUERY_COLUMNS)} FROM market_ticks
WHERE symbol = {{symbol}} AND time >= {ts("{start}::int8")} AND time < {ts("{end}::int8")}
ORDER BY time, seq
"""

OHLC_FIELDS: list[tuple[str, Kind]] = [
    ("start_us", "timestamptz"),
    ("open", "float8"),
    ("high", "float8"),
    ("low", "float8"),
    ("close", "float8"),
]
BAR_FIELDS = [*OHLC_FIELDS, ("volume", "float8"), ("turnover", "float8"), ("trades", "int8")]
BAR_1M_FIELDS: list[tuple[str, Kind]] = [
    *OHLC_FIELDS,
    ("volume_m", "int8"),
    ("volume_e", "int4"),
    ("volume_big", "float8"),
    ("turnover_m", "int8"),
    ("turnover_e", "int4"),
    ("turnover_big", "float8"),
    ("trades", "int8"),
]

IMPORTED_BARS = f"""
SELECT {us("start")}, open, high, low, close, volume, coalesce(vwap, 'NaN'), trades
FROM market_bars
WHERE symbol = $1 AND interval_s = $2 AND start >= {ts("$3::int8")} AND start < {ts("$4::int8")}
ORDER BY start
"""
