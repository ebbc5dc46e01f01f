from __future__ import annotations

from pathlib import Path

import pytest

from tradepulse.config import ConfigError, Settings, load_settings, settings_as_toml


def test_defaults_are_the_embedded_mode() -> None:
    s = load_settings(env={})
    assert s.bus.transport == "memory"
    assert s.database.backend == "sqlite"
    assert s == Settings()


def test_environment_variables_map_to_sections() -> None:
    s = load_settings(
        env={
            "TRADEPULSE_REDIS_URL": "redis://10.0.0.1:6380/2",
            "TRADEPULSE_DATABASE_URL": "postgresql://db/x",
            "TRADEPULSE_BUS_MAX_DELIVERIES": "7",
            "TRADEPULSE_MARKET_SYMBOLS": "AAA, BBB",
            "TRADEPULSE_LOG_LEVEL": "DEBUG",
            "PATH": "/bin",
        }
    )
    assert s.redis.url == "redis://10.0.0.1:6380/2"
    assert s.database.url == "postgresql://db/x"
    assert s.bus.max_deliveries == 7
    assert s.market.symbols == ("AAA", "BBB")
    assert s.log_level == "DEBUG"


def test_settings_are_frozen() -> None:
    s = load_settings(env={})
    with pytest.raises(AttributeError):
        s.bus = s.bus  # type: ignore[misc]


def test_toml_file_then_environment_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "tp.toml"
    f.write_text('log_level = "WARNING"\n[bus]\ntransport = "redis"\nread_count = 10\n[market]\nseed = 3\n')
    s = load_settings(f, env={"TRADEPULSE_BUS_READ_COUNT": "20"}, overrides={"market.seed": 4})
    assert (s.log_level, s.bus.transport, s.bus.read_count, s.market.seed) == ("WARNING", "redis", 20, 4)
    s2 = load_settings(env={"TRADEPULSE_CONFIG": str(f)})
    assert s2.bus.read_count == 10


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TRADEPULSE_BUS_MAX_DELIVERIES": "0"},
            r"bus\.max_deliveries: .*>= 1.*TRADEPULSE_BUS_MAX_DELIVERIES",
        ),
        ({"TRADEPULSE_BUS_MAX_DELIVERIES": "many"}, r"bus\.max_deliveries: Expected `int`"),
        ({"TRADEPULSE_NOPE": "1"}, r"TRADEPULSE_NOPE: unknown setting"),
        ({"TRADEPULSE_BUS_COLOR": "1"}, r"TRADEPULSE_BUS_COLOR: unknown setting"),
        ({"TRADEPULSE_BUS_TRANSPORT": "kafka"}, r"bus\.transport: Invalid enum value 'kafka'"),
        ({"TRADEPULSE_BUS_BLOCK_MS": "4900"}, r"bus\.block_ms .* redis\.socket_timeout_s"),
    ],
)
def test_bad_environment_names_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_unknown_and_bad_keys_in_the_file_are_named(tmp_path: Path) -> None:
    f = tmp_path / "tp.toml"
    f.write_text("[bus]\nmax_deliverys = 3\n")
    with pytest.raises(ConfigError, match=r"bus\.max_deliverys: unknown setting \(from config file"):
        load_settings(f, env={})
    f.write_text("[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"nonsense: unknown setting"):
        load_settings(f, env={})
    f.write_text("[bus\n")
    with pytest.raises(ConfigError, match=r"tp\.toml"):
        load_settings(f, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})


def test_toml_round_trip(tmp_path: Path) -> None:
    s = load_settings(env={"TRADEPULSE_MARKET_SYMBOLS": "X,Y", "TRADEPULSE_BUS_TRANSPORT": "redis"})
    f = tmp_path / "out.toml"
    f.write_text(settings_as_toml(s))
    assert load_settings(f, env={}) == s
