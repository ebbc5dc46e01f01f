"""Schema of the tick store (see :mod:`tradepulse.storage.ticks`).

PostgreSQL, two layouts of the same tables, chosen when the schema is created and recorded in
``market_store_info`` (the store reads it):

- **timescaledb** (when the extension can be created): ``market_ticks`` is a hypertable with one-day chunks,
  compressed after 7 days segmented by symbol, and ``ohlc_1min`` is a continuous aggregate refreshed every
  minute with real-time aggregation on, as in the seed. Its DDL cannot run in a transaction block, hence the
  separate non-transactional migration.
- **native** (plain PostgreSQL): ``market_ticks`` is partitioned by range of ``time``, one partition per UTC
  day, created on demand by ``tp_ensure_tick_partitions`` before a write needs it (rows that somehow reach the
  ``market_ticks_default`` partition are moved out when their day's partition is created, so no insert ever
  fails); old days are dropped with a ``DROP TABLE`` instead of a slow ``DELETE``. ``ohlc_1min`` is a table
  the store maintains incrementally as ticks arrive.

SQLite keeps the same tables; ``market_ticks`` is a ``WITHOUT ROWID`` table clustered on (symbol, time, seq),
which is the seed's (symbol, time DESC) index and the table in one b-tree.
"""

from __future__ import annotations

import asyncpg

from tradepulse.storage.migrations import Migration, PgFeatures

#: seq numbers per block a writer takes from ``market_tick_seq_blocks``: seq = block * SEQ_BLOCK + i
SEQ_BLOCK = 1 << 24

_TICK_COLUMNS = """
    time      timestamptz NOT NULL,
    symbol    text        NOT NULL,
    price     float8      NOT NULL,
    size      float8      NOT NULL,
    bid       float8      NOT NULL,
    ask       float8      NOT NULL,
    bid_size  float8      NOT NULL,
    ask_size  float8      NOT NULL,
    seq       int8        NOT NULL
"""

_COMMON_PG = """
CREATE TABLE market_store_info (key text PRIMARY KEY, value text NOT NULL);

-- one value per write: the writer numbers its ticks block * 2^24 + i (arrival order, unique across writers)
CREATE SEQUENCE market_tick_seq_blocks;

CREATE TABLE market_latest (
    symbol    text PRIMARY KEY,
    time      timestamptz NOT NULL,
    price     float8 NOT NULL,
    size      float8 NOT NULL,
    bid       float8 NOT NULL,
    ask       float8 NOT NULL,
    bid_size  float8 NOT NULL,
    ask_size  float8 NOT NULL,
    seq       int8   NOT NULL
);

CREATE TABLE market_bars (
    symbol      text        NOT NULL,
    interval_s  int4        NOT NULL,
    start       timestamptz NOT NULL,
    open        float8      NOT NULL,
    high        float8      NOT NULL,
    low         float8      NOT NULL,
    close       float8      NOT NULL,
    volume      float8      NOT NULL,
    vwap        float8,
    trades      int8        NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, interval_s, start)
);

CREATE TABLE market_tick_checkpoints (
    stream    text NOT NULL,
    grp       text NOT NULL,
    entry_id  text NOT NULL,
    PRIMARY KEY (stream, grp)
);

CREATE TABLE market_ingests (
    sha256       text PRIMARY KEY,
    path         text NOT NULL,
    kind         text NOT NULL,
    rows         int8 NOT NULL,
    rejected     int8 NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now()
);
"""

_NATIVE_PG = f"""
CREATE TABLE market_ticks ({_TICK_COLUMNS}) PARTITION BY RANGE (time);
CREATE INDEX market_ticks_symbol_time ON market_ticks (symbol, time DESC);
CREATE TABLE market_ticks_default PARTITION OF market_ticks DEFAULT;

CREATE TABLE ohlc_1min (
    symbol      text        NOT NULL,
    bucket      timestamptz NOT NULL,
    open        float8      NOT NULL,
    high        float8      NOT NULL,
    low         float8      NOT NULL,
    close       float8      NOT NULL,
    -- volume, the exact sum of the float sizes, is m * 2^volume_e with m = coalesce(volume_big, volume_m):
    -- the mantissa is an int8 (cheap to insert) unless it outgrows 64 bits, then numeric (see tp_exact_add)
    volume_m      int8      NOT NULL,
    volume_big    numeric,
    volume_e      int4      NOT NULL,
    turnover_m    int8      NOT NULL,  -- turnover, the exact sum of price * size, likewise
    turnover_big  numeric,
    turnover_e    int4      NOT NULL,
    trades      int8        NOT NULL,
    first_time  timestamptz NOT NULL,  -- (first_time, first_seq) is the key of the tick that set open
    first_seq   int8        NOT NULL,
    last_time   timestamptz NOT NULL,  -- (last_time, last_seq) is the key of the tick that set close
    last_seq    int8        NOT NULL,
    PRIMARY KEY (symbol, bucket)
);

-- The mantissa of m1 * 2^e1 + m2 * 2^e2 at exponent least(e1, e2), exactly (trunc keeps the scale 0).
CREATE FUNCTION tp_exact_add(m1 numeric, e1 int, m2 numeric, e2 int) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN e1 <= e2 THEN trunc(m1 + m2 * 2::numeric ^ (e2 - e1))
                ELSE trunc(m1 * 2::numeric ^ (e1 - e2) + m2) END
$$;

-- Create the day partitions of market_ticks for ``days`` (UTC dates) that do not exist yet; return how many.
-- Serialised by an advisory lock; rows of such a day already in the default partition are moved into it.
CREATE FUNCTION tp_ensure_tick_partitions(days date[]) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    d date;
    part text;
    lo timestamptz;
    hi timestamptz;
    created int := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.market_ticks'));
    FOREACH d IN ARRAY days LOOP
        part := 'market_ticks_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(format('%I.%I', current_schema(), part)) IS NULL THEN
            lo := d::timestamp AT TIME ZONE 'UTC';
            hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
            EXECUTE format('CREATE TABLE %I (LIKE market_ticks INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format(
                'WITH moved AS (DELETE FROM market_ticks_default WHERE time >= %L AND time < %L RETURNING *) '
                'INSERT INTO %I SELECT * FROM moved', lo, hi, part);
            EXECUTE format('ALTER TABLE market_ticks ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

INSERT INTO market_store_info (key, value) VALUES ('layout', 'native');
"""

_TIMESCALE_PG = f"""
CREATE TABLE market_ticks ({_TICK_COLUMNS});
SELECT create_hypertable('market_ticks', 'time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX market_ticks_symbol_time ON market_ticks (symbol, time DESC);
ALTER TABLE market_ticks SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol',
    timescaledb.compress_orderby = 'time DESC, seq DESC'
);
SELECT add_compression_policy('market_ticks', INTERVAL '7 days');
INSERT INTO market_store_info (key, value) VALUES ('layout', 'timescaledb');
"""

_TIMESCALE_CAGG = """
CREATE MATERIALIZED VIEW ohlc_1min
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 minute', time) AS bucket,
    symbol,
    first(price, time) AS open,
    max(price) AS high,
    min(price) AS low,
    last(price, time) AS close,
    sum(size) AS volume,
    sum(price * size) AS turnover,
    count(*) AS trades
FROM market_ticks
GROUP BY bucket, symbol
WITH NO DATA;
-- start_offset NULL: every invalidated range is refreshed, so ingesting old files fills their bars too (the
-- refresh only touches buckets whose ticks changed)
SELECT add_continuous_aggregate_policy('ohlc_1min',
    start_offset => NULL, end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
"""


async def _create_postgres(conn: asyncpg.Connection, features: PgFeatures) -> None:
    await conn.execute(_COMMON_PG)
    if features.timescaledb_available:
        try:
            async with conn.transaction():  # a savepoint: without the preloaded library this fails cleanly
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                await conn.execute(_TIMESCALE_PG)
            return
        except asyncpg.PostgresError:
            pass
    await conn.execute(_NATIVE_PG)


async def _timescale_aggregate(conn: asyncpg.Connection, features: PgFeatures) -> None:
    layout = await conn.fetchval("SELECT value FROM market_store_info WHERE key = 'layout'")
    if layout == "timescaledb":
        await conn.execute(_TIMESCALE_CAGG)


_SQLITE = """
CREATE TABLE market_ticks (
    symbol    TEXT    NOT NULL,
    time      INTEGER NOT NULL,  -- microseconds since the Unix epoch, UTC
    seq       INTEGER NOT NULL,
    price     REAL    NOT NULL,
    size      REAL    NOT NULL,
    bid       REAL    NOT NULL,
    ask       REAL    NOT NULL,
    bid_size  REAL    NOT NULL,
    ask_size  REAL    NOT NULL,
    PRIMARY KEY (symbol, time, seq)
) WITHOUT ROWID;

CREATE TABLE market_tick_seq (id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL);
INSERT INTO market_tick_seq (id, next) VALUES (1, 1);

CREATE TABLE ohlc_1min (
    symbol      TEXT    NOT NULL,
    bucket      INTEGER NOT NULL,
    open        REAL    NOT NULL,
    high        REAL    NOT NULL,
    low         REAL    NOT NULL,
    close       REAL    NOT NULL,
    volume_m    NOT NULL,          -- volume = volume_m * 2^volume_e exactly (INTEGER, or TEXT beyond 64 bits)
    volume_e    INTEGER NOT NULL,
    turnover_m  NOT NULL,          -- turnover = turnover_m * 2^turnover_e: the exact sum of price * size
    turnover_e  INTEGER NOT NULL,
    trades      INTEGER NOT NULL,
    first_time  INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_time   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    PRIMARY KEY (symbol, bucket)
) WITHOUT ROWID;

CREATE TABLE market_latest (
    symbol    TEXT PRIMARY KEY,
    time      INTEGER NOT NULL,
    price     REAL NOT NULL,
    size      REAL NOT NULL,
    bid       REAL NOT NULL,
    ask       REAL NOT NULL,
    bid_size  REAL NOT NULL,
    ask_size  REAL NOT NULL,
    seq       INTEGER NOT NULL
);

CREATE TABLE market_bars (
    symbol      TEXT    NOT NULL,
    interval_s  INTEGER NOT NULL,
    start       INTEGER NOT NULL,
    open        REAL    NOT NULL,
    high        REAL    NOT NULL,
    low         REAL    NOT NULL,
    close       REAL    NOT NULL,
    volume      REAL    NOT NULL,
    vwap        REAL,
    trades      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, interval_s, start)
) WITHOUT ROWID;

CREATE TABLE market_tick_checkpoints (
    stream    TEXT NOT NULL,
    grp       TEXT NOT NULL,
    entry_id  TEXT NOT NULL,
    PRIMARY KEY (stream, grp)
) WITHOUT ROWID;

CREATE TABLE market_ingests (
    sha256       TEXT PRIMARY KEY,
    path         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    rows         INTEGER NOT NULL,
    rejected     INTEGER NOT NULL,
    ingested_at  INTEGER NOT NULL  -- microseconds since the Unix epoch
);
"""

MIGRATIONS = [
    Migration("marketdata", 1, "tick_store", postgres=_create_postgres, sqlite=_SQLITE),
    Migration("marketdata", 2, "timescale_ohlc_1min", postgres=_timescale_aggregate, transactional=False),
]
