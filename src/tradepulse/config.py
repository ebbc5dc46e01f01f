"""One typed, frozen Settings object for the whole platform.

Settings come from three layers, later ones winning: the defaults below, an optional TOML file (``--config``
or ``TRADEPULSE_CONFIG``), and environment variables. An environment variable is ``TRADEPULSE_`` + the section
+ ``_`` + the key, upper-cased: ``TRADEPULSE_REDIS_URL`` sets ``redis.url``, ``TRADEPULSE_BUS_MAX_DELIVERIES``
sets ``bus.max_deliveries``; top-level keys drop the section (``TRADEPULSE_LOG_LEVEL``). Lists are written
comma-separated. Unknown keys, in the file or the environment, are errors, and every error names the key.

Each component has its own frozen config struct (``BusConfig``, ``RedisConfig``, ...); components receive
their own part of the one Settings object they are given, never a global.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

ENV_PREFIX = "TRADEPULSE_"
CONFIG_ENV = "TRADEPULSE_CONFIG"

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
#: money, quantities and ratios in settings are exact decimals (write them as strings or integers); msgspec
#: cannot bound a Decimal, so :func:`_check_decimals` does (every Decimal field is finite and >= 0, and those
#: annotated PositiveDecimal > 0)
PositiveDecimal = Annotated[Decimal, msgspec.Meta(description="positive")]
NonNegativeDecimal = Annotated[Decimal, msgspec.Meta(description="non-negative")]


class ConfigError(ValueError):
    """A setting is unknown or invalid. The message names the key and where it came from."""


class _Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    def __post_init__(self) -> None:
        _check_decimals(self)


def _check_decimals(config: msgspec.Struct) -> None:
    """Raise ValueError naming the field if a Decimal setting is not finite, negative, or zero where positive."""
    for field in msgspec.structs.fields(config):
        value = getattr(config, field.name)
        if not isinstance(value, Decimal):
            continue
        if not value.is_finite() or value < 0:
            raise ValueError(f"{field.name}: must be a finite number >= 0, got {value}")
        if value == 0 and "positive" in str(field.type) and "non-negative" not in str(field.type):
            raise ValueError(f"{field.name}: must be > 0, got {value}")


class BusConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The message bus: which transport, and how consumers retry, reclaim and dead-letter."""

    transport: Literal["memory", "redis"] = "memory"
    #: a message whose handler failed this many times goes to the dead-letter stream with its error
    max_deliveries: PositiveInt = 5
    #: entries pending this long (a consumer died or failed) may be claimed by another group member
    claim_idle_ms: PositiveInt = 30_000
    #: how often a consumer looks for such entries
    claim_interval_ms: PositiveInt = 5_000
    #: longest blocking read; must stay below the Redis socket timeout
    block_ms: PositiveInt = 1_000
    #: most entries read per call
    read_count: PositiveInt = 512
    #: approximate retention per stream; entries not yet acknowledged by every group are never trimmed
    maxlen: PositiveInt = 1_000_000
    #: how often the publisher trims streams to ``maxlen``
    trim_interval_ms: PositiveInt = 1_000
    #: number of ``orders:{p}`` partitions (a symbol always maps to the same one; see bus/streams.py)
    order_partitions: PositiveInt = 4


class RedisConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str = "redis://127.0.0.1:6379/0"
    max_connections: PositiveInt = 64
    #: socket timeout for every command; blocking reads are kept shorter than this
    socket_timeout_s: PositiveFloat = 5.0
    connect_timeout_s: PositiveFloat = 2.0
    #: how long a publish keeps retrying while Redis is unreachable before it raises
    publish_retry_s: Annotated[float, msgspec.Meta(ge=0)] = 2.0


class DatabaseConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    url: str = "postgresql://127.0.0.1:5432/postgres"
    sqlite_path: str = "var/tradepulse.db"
    pool_min: PositiveInt = 2
    pool_max: PositiveInt = 10
    #: PostgreSQL schema for our tables ("" = the server's default search path); tests use one per test
    schema: str = ""


class MarketConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The built-in market simulator."""

    symbols: tuple[str, ...] = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")
    seed: int = 7
    #: ticks per second per symbol, in simulated time
    tick_rate: PositiveFloat = 20.0
    #: simulated seconds per real second (1 = real time); 0 means as fast as possible
    speed: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    start_price: PositiveFloat = 100.0
    #: annualised volatility
    volatility: PositiveFloat = 0.3
    #: "regime" (trending up / mean-reverting / trending down, learnable by design) or "random_walk" (iid
    #: returns, nothing to learn); see tradepulse.marketdata.simulator
    mode: Literal["regime", "random_walk"] = "regime"


class MLConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Training, validation and the model registry (tradepulse.ml)."""

    #: where trained models are stored (one directory per version) and which one is promoted
    registry_dir: str = "var/models"
    #: bar length the features and labels are computed on, simulated seconds (live bars use the same)
    bar_seconds: PositiveFloat = 1.0
    #: label horizon in bars, and the threshold in units of sigma * sqrt(horizon)
    horizon_bars: PositiveInt = 10
    threshold_k: PositiveFloat = 0.5
    #: bars of one-bar returns behind the volatility that scales the threshold (known at t)
    vol_window: PositiveInt = 30
    labels: Literal["fixed_horizon", "triple_barrier"] = "fixed_horizon"
    #: walk-forward folds over the held-out last test_fraction of the samples
    n_splits: PositiveInt = 4
    test_fraction: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    #: samples dropped before each test fold on top of the purged label horizon
    embargo_bars: NonNegativeInt = 10
    #: sliding training window in samples; 0 = expanding
    train_window: NonNegativeInt = 0
    #: backtest cost per unit of position change, basis points
    cost_bps: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    seed: int = 7
    #: threads per model fit. 1 by measurement: on a busy 2-core machine OpenMP threads that spin-wait at
    #: barriers made 10k-sample runs 3-5x slower and erratic; one thread was as fast when idle and steady
    #: (inference always runs single-threaded)
    n_jobs: PositiveInt = 1


class SignalsConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The live signal service: ticks -> bars -> features -> model -> signals -> order requests."""

    enabled: bool = True
    strategy_id: str = "ml"
    #: "onnx" (ONNX Runtime, single thread) with the native model as fallback, or "native"
    inference: Literal["onnx", "native"] = "onnx"
    #: BUY/SELL signals below this confidence produce no order
    min_confidence: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.6
    #: simulated seconds after an order during which a symbol gets no new order
    cooldown_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    sizing: Literal["fixed_quantity", "fixed_notional", "volatility_target"] = "fixed_quantity"
    quantity: PositiveFloat = 100.0
    notional: PositiveFloat = 10_000.0
    #: volatility_target: currency risked per order over the label horizon (qty = risk / (price * sigma_h))
    risk_per_order: PositiveFloat = 100.0
    #: the signed position (from this service's own orders) is kept within +-max_position per symbol
    max_position: PositiveFloat = 1_000.0
    #: shares/units are rounded down to this lot
    lot_size: PositiveFloat = 1.0
    #: with no promoted model: "train" a small one on simulator data in the background, or "skip" the service
    bootstrap: Literal["train", "skip"] = "train"
    bootstrap_samples: PositiveInt = 4_000
    #: labels mature after horizon_bars; the model_accuracy gauge is the accuracy over the last this many
    accuracy_window: PositiveInt = 500


class TickStoreConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tick store (``database.backend`` chooses SQLite or PostgreSQL) and the writer feeding it."""

    #: run the tick writer: consume the ``ticks`` stream into the store
    enabled: bool = True
    #: PostgreSQL: wait for the WAL flush at each commit; off, a server crash may lose the last moments of
    #: ticks (never corrupting anything) and writes get cheaper
    synchronous_commit: bool = True
    #: the writer's consumer group on the ``ticks`` stream
    group: str = "tick-store"


class InstrumentSpec(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One tradable instrument (see :class:`tradepulse.domain.Instrument`)."""

    symbol: str
    tick_size: PositiveDecimal = Decimal("0.01")
    lot_size: PositiveDecimal = Decimal(1)
    price_precision: Annotated[int, msgspec.Meta(ge=0, le=12)] = 2
    currency: str = "USD"
    tradable: bool = True


class InstrumentsConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The instrument universe. Empty ``universe`` means: the market simulator's symbols with the defaults."""

    universe: tuple[InstrumentSpec, ...] = ()
    tick_size: PositiveDecimal = Decimal("0.01")
    lot_size: PositiveDecimal = Decimal(1)
    #: symbols known but not tradable (orders are rejected with INSTRUMENT_NOT_TRADABLE)
    halted_symbols: tuple[str, ...] = ()


class RiskConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pre-trade risk limits. Every limit is inclusive: an order exactly at a limit passes, above it fails."""

    #: accounts that may trade, each starting with ``starting_cash`` the first time the ledger sees it
    accounts: tuple[str, ...] = ("default",)
    starting_cash: NonNegativeDecimal = Decimal(10_000_000)
    currency: str = "USD"
    max_order_quantity: PositiveDecimal = Decimal(100_000)
    max_order_notional: PositiveDecimal = Decimal(5_000_000)
    #: a limit price further than this fraction from the reference (last) price is a fat finger
    price_collar: PositiveDecimal = Decimal("0.10")
    #: largest absolute position per symbol, counting every open order as if it filled
    max_position: PositiveDecimal = Decimal(1_000_000)
    #: largest sum over symbols of |worst-case position| x price, counting open orders
    max_gross_exposure: PositiveDecimal = Decimal(100_000_000)
    #: buys need cash minus what open buys reserve, plus this many basis points for fees
    check_cash: bool = True
    fee_reserve_bps: NonNegativeDecimal = Decimal(10)
    #: sells beyond the (position minus open sells) open a short; off means such sells are rejected
    allow_short: bool = True
    #: orders per second per strategy (a token bucket of that size, refilled continuously), per engine process
    max_orders_per_s: PositiveInt = 100_000
    #: a realized + unrealized loss beyond this halts trading (0 = off); only an admin call resumes it
    max_daily_loss: NonNegativeDecimal = Decimal(0)
    #: how often engines re-read the persisted trading state (ACTIVE / REDUCING / HALTED)
    state_poll_ms: PositiveInt = 200
    #: an order that reaches an engine more than this after it was sent (the order client's ``submit`` stamp, else
    #: its ``ts_ns``) is rejected STALE_ORDER instead of executing: orders that waited in Redis while no engine ran
    #: do not trade on a market that has moved since (0 = off). Above ``bus.claim_idle_ms`` +
    #: ``bus.claim_interval_ms``, a dead engine's orders claimed by another still execute; below it, they are
    #: rejected
    max_order_age_ms: NonNegativeInt = 60_000


class VenueConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The simulated exchange and the paper broker."""

    #: fees in basis points of notional, per fill, rounded half-even to the cent
    maker_fee_bps: NonNegativeDecimal = Decimal("0.5")
    taker_fee_bps: NonNegativeDecimal = Decimal(1)
    #: latency model: each call waits base + exponential(jitter) microseconds (0 = answer at once)
    latency_us: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    latency_jitter_us: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    seed: int = 11
    #: synthetic depth built from each tick: this many price levels per side
    depth_levels: PositiveInt = 5
    #: each level holds at least this many lots, whatever the tick's quoted size
    min_level_lots: PositiveInt = 500
    #: each level deeper holds this many times the one before
    depth_growth: PositiveDecimal = Decimal("1.5")
    #: paper broker slippage: fixed basis points plus ``impact_bps`` per quoted size traded
    slippage_bps: NonNegativeDecimal = Decimal(1)
    impact_bps: NonNegativeDecimal = Decimal(5)
    #: where the venue's durable journal lives (it survives a crash of the process hosting the venue): "auto" is
    #: beside the SQLite ledger file, or var/venue with PostgreSQL; "" keeps the venue in memory only
    journal_dir: str = "auto"
    #: fsync the journal on every batch (survives power loss too, at a cost); off survives process crashes
    journal_fsync: bool = False
    #: seconds after midnight UTC at which DAY orders expire (-1 = never, e.g. a 24/7 simulation)
    session_close_s: Annotated[int, msgspec.Meta(ge=-1, le=86_399)] = -1


class ExecutionConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The execution engine."""

    #: this engine's name: owner of the orders it admits (and of its venue's journal); unique per process
    engine_name: str = "engine-1"
    broker: Literal["simulated", "paper"] = "simulated"
    #: most orders handled per batch (one ledger transaction and one broker call each)
    max_batch: PositiveInt = 512
    #: after a short read, wait up to this long for more (0 = adaptive only: take what is waiting, no wait)
    batch_window_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    #: batches admitted concurrently. 1 (measured best on 2 cores, see docs/scaling.md): a batch is read, admitted
    #: and sent while the next orders queue in Redis, so the next read takes them all (batches grow with load)
    #: and its ack rides on that read. More: the next is read and risk-checked while the ledger commits the one
    #: before, and what queues meanwhile goes to the ledger as one statement (group commit)
    max_in_flight_batches: PositiveInt = 1
    #: batches admitted concurrently while an account is contended (another engine overtook this one on it within
    #: the last second): they queue for the ledger's lock on the account, and one turn admits them all
    max_in_flight_contended: PositiveInt = 8
    #: an order for an account another engine overtook this one on (within the last second) is forwarded to that
    #: engine's stream, so one engine admits for a busy shared account and the others do not race it for the
    #: account's admission row; false: every engine admits what it reads, taking turns on the account
    forward_contended: bool = True
    #: a forwarded order the ledger still does not have after this long is admitted by the engine that forwarded
    #: it (the engine it went to is gone or stuck); the ledger's unique client order id keeps it to one execution
    forward_timeout_ms: PositiveInt = 1_000
    #: a broker call slower than this leaves its orders UNKNOWN until a query resolves them
    broker_timeout_ms: PositiveInt = 2_000
    #: how often UNKNOWN orders are queried
    resolve_interval_ms: PositiveInt = 250
    #: an order the broker still does not know this long after it was sent is rejected (never resent)
    unknown_grace_ms: PositiveInt = 5_000
    #: pause between two bookings, so fills book in few, larger transactions (they are reported before booking;
    #: the engine's risk view has them at once). Longer saves PostgreSQL CPU (25 ms: ~15 % less per order at
    #: 1,000 orders/s, docs/scaling.md) but the ledger (what the API's fills and positions read) lags longer
    book_interval_ms: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    #: ledger retry back-off while PostgreSQL is unavailable (new orders are refused meanwhile)
    ledger_retry_ms: PositiveInt = 250
    #: how long SIGTERM waits for in-flight work
    drain_timeout_s: PositiveFloat = 10.0
    #: most events in one ``reports`` stream entry
    report_batch: PositiveInt = 256
    #: orders recently closed kept in memory to answer duplicates without a ledger read
    recent_orders: PositiveInt = 200_000
    #: ``tradepulse engine`` freezes what survived garbage collection this often, so collections stay short
    #: (see :mod:`tradepulse.execution.gcpolicy`; 0 = off)
    gc_freeze_ms: Annotated[float, msgspec.Meta(ge=0)] = 250.0
    #: a built-in random order flow for ``tradepulse run`` (orders per second; 0 = off)
    demo_orders_per_s: NonNegativeDecimal = Decimal(0)


class RuntimeConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: panel refreshes per second
    panel_refresh_hz: PositiveFloat = 2.0


class RebalanceConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Defaults of ``tradepulse rebalance`` (each is also a command-line flag). Amounts are in the account
    currency, bands and turnover are fractions (0.02 = 2 %); 0 turns a band or the turnover cap off."""

    drift_abs: Decimal = Decimal(0)
    drift_rel: Decimal = Decimal(0)
    min_trade_notional: Decimal = Decimal(0)
    cash_buffer: Decimal = Decimal(0)
    max_turnover: Decimal = Decimal(0)
    fee_per_order: Decimal = Decimal(0)
    fee_rate: Decimal = Decimal(0)
    fee_precision: Decimal = Decimal("0.01")
    fractional_step: Decimal = Decimal("0.0001")
    strategy_id: str = "rebalance"
    account_id: str = "default"


class ApiConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The HTTP API (``tradepulse api``; ``tradepulse run`` serves it too when ``embedded``)."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 8000
    #: worker processes of ``tradepulse api`` (each builds the app from settings and opens its own services);
    #: uvicorn with 1 worker measured best on the 2-core benchmark machine (docs/api.md, "the figures")
    workers: PositiveInt = 1
    server: Literal["uvicorn", "granian"] = "uvicorn"
    #: larger request bodies are refused with 413
    max_body_bytes: PositiveInt = 1_048_576
    #: per-key rate limit (GCRA): sustained requests per second, and how many may come at once
    rate_per_s: PositiveFloat = 500.0
    rate_burst: PositiveInt = 1_000
    #: the latest-signals response is cached at most this long (a new signal invalidates it at once)
    signals_cache_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    #: signals kept in memory per symbol for ``/signals/{symbol}/history``
    signals_history: PositiveInt = 1_000
    #: how long POST /orders waits for the engine's report
    order_timeout_s: PositiveFloat = 5.0
    ws_queue_max: PositiveInt = 1_000
    ws_heartbeat_s: PositiveFloat = 15.0
    #: responses larger than this are gzip-compressed when the client accepts it
    gzip_min_bytes: PositiveInt = 1_024
    #: an authenticated key is remembered this long per process (a revoked key stops working within it)
    key_cache_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    #: ``tradepulse run`` serves the API on ``host``:``port``
    embedded: bool = True
    #: the admin key ``tradepulse run`` prints; empty: a fresh one is created for the session
    admin_key: str = ""


class Settings(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    bus: BusConfig = BusConfig()
    redis: RedisConfig = RedisConfig()
    database: DatabaseConfig = DatabaseConfig()
    market: MarketConfig = MarketConfig()
    ml: MLConfig = MLConfig()
    signals: SignalsConfig = SignalsConfig()
    tickstore: TickStoreConfig = TickStoreConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    instruments: InstrumentsConfig = InstrumentsConfig()
    risk: RiskConfig = RiskConfig()
    venue: VenueConfig = VenueConfig()
    execution: ExecutionConfig = ExecutionConfig()
    rebalance: RebalanceConfig = RebalanceConfig()
    api: ApiConfig = ApiConfig()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bus.block_ms >= self.redis.socket_timeout_s * 1000 - 250:
            raise ConfigError(
                f"bus.block_ms ({self.bus.block_ms}) must be at least 250 ms below redis.socket_timeout_s "
                f"({self.redis.socket_timeout_s} s), or blocking reads would time out"
            )


def _sections() -> dict[str, type[_Config]]:
    out: dict[str, type[_Config]] = {}
    for field in msgspec.structs.fields(Settings):
        if isinstance(field.type, type) and issubclass(field.type, _Config):
            out[field.name] = field.type
    return out


def _env_to_path(name: str) -> tuple[str, ...] | None:
    """Map ``TRADEPULSE_BUS_MAX_DELIVERIES`` to ``("bus", "max_deliveries")``; None if no such key."""
    rest = name[len(ENV_PREFIX) :].lower()
    sections = _sections()
    for section in sorted(sections, key=len, reverse=True):
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1 :]
            if key in {f.name for f in msgspec.structs.fields(sections[section])}:
                return (section, key)
    top = {f.name for f in msgspec.structs.fields(Settings)} - set(sections)
    return (rest,) if rest in top else None


def _env_value(value: str, target: Any) -> Any:
    if "tuple" in str(target) or "list" in str(target):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _field_type(path: tuple[str, ...]) -> Any:
    struct: Any = Settings
    ftype: Any = None
    for part in path:
        ftype = next(f.type for f in msgspec.structs.fields(struct) if f.name == part)
        struct = ftype
    return ftype


def _merge(base: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = base
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: cannot set a key inside a non-table value")
    node[path[-1]] = value


#: what one-process-per-service commands (``tradepulse api``, ...) default to, instead of the embedded defaults
SERVICE_DEFAULTS: dict[str, Any] = {"bus.transport": "redis", "database.backend": "postgres"}


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    service: bool = False,
) -> Settings:
    """Return validated Settings from defaults, the TOML file, the environment and ``overrides``.

    ``overrides`` maps dotted keys (``"bus.transport"``) to values, for command-line flags. ``service`` True
    starts from the service-mode defaults (:data:`SERVICE_DEFAULTS`: Redis bus, PostgreSQL) instead of the
    embedded ones; the file, the environment and ``overrides`` still win over them.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or env.get(CONFIG_ENV)
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path}: not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        for section, table in data.items():
            if isinstance(table, dict):
                for key in table:
                    sources[f"{section}.{key}"] = f"config file {path}"
            else:
                sources[section] = f"config file {path}"
    if service:
        for dotted, value in SERVICE_DEFAULTS.items():
            section, key = dotted.split(".")
            table = data.setdefault(section, {})
            if isinstance(table, dict):
                table.setdefault(key, value)
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key_path = _env_to_path(name)
        if key_path is None:
            raise ConfigError(f"{name}: unknown setting (see `tradepulse config show` for the valid keys)")
        _merge(data, key_path, _env_value(value, _field_type(key_path)))
        sources[".".join(key_path)] = f"environment variable {name}"
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        _merge(data, tuple(dotted.split(".")), value)
        sources[dotted] = "command line"
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), sources)) from None
    except ConfigError:
        raise


def _explain(message: str, sources: dict[str, str]) -> str:
    """Turn msgspec's ``... - at `$.bus.max_deliveries``` into a message naming the key and its source."""
    text, _, where = message.rpartition(" - at ")
    if not text:
        text, where = message, ""
    key = where.strip("`").removeprefix("$.").removeprefix("$")
    if text.startswith("Object contains unknown field"):
        unknown = text.split("`")[1]
        key = f"{key}.{unknown}" if key else unknown
        text = "unknown setting"
    if not key:
        return f"invalid settings: {text}"
    origin = sources.get(key)
    return f"{key}: {text}" + (f" (from {origin})" if origin else "")


def settings_as_toml(settings: Settings) -> str:
    """Return the settings as a TOML document (the format the config file takes)."""
    lines: list[str] = []
    raw = msgspec.to_builtins(settings)
    for key, value in raw.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in raw.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)
