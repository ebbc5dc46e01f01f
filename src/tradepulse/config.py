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
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

ENV_PREFIX = "TRADEPULSE_"
CONFIG_ENV = "TRADEPULSE_CONFIG"

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class ConfigError(ValueError):
    """A setting is unknown or invalid. The message names the key and where it came from."""


class _Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


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


class TickStoreConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tick store (``database.backend`` chooses SQLite or PostgreSQL) and the writer feeding it."""

    #: run the tick writer: consume the ``ticks`` stream into the store
    enabled: bool = True
    #: PostgreSQL: wait for the WAL flush at each commit; off, a server crash may lose the last moments of
    #: ticks (never corrupting anything) and writes get cheaper
    synchronous_commit: bool = True
    #: the writer's consumer group on the ``ticks`` stream
    group: str = "tick-store"


class RuntimeConfig(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: panel refreshes per second
    panel_refresh_hz: PositiveFloat = 2.0


class Settings(_Config, frozen=True, kw_only=True, forbid_unknown_fields=True):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    bus: BusConfig = BusConfig()
    redis: RedisConfig = RedisConfig()
    database: DatabaseConfig = DatabaseConfig()
    market: MarketConfig = MarketConfig()
    tickstore: TickStoreConfig = TickStoreConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def __post_init__(self) -> None:
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


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Return validated Settings from defaults, the TOML file, the environment and ``overrides``.

    ``overrides`` maps dotted keys (``"bus.transport"``) to values, for command-line flags.
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
    return repr(value)
