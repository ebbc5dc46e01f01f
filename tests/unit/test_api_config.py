"""ApiConfig from the environment, and the service-mode defaults of ``tradepulse api``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradepulse.api.server import service_settings
from tradepulse.config import ConfigError, load_settings


def test_api_settings_from_the_environment() -> None:
    s = load_settings(
        env={"TRADEPULSE_API_PORT": "9001", "TRADEPULSE_API_RATE_PER_S": "25", "TRADEPULSE_API_SERVER": "granian"}
    )
    assert (s.api.port, s.api.rate_per_s, s.api.server) == (9001, 25.0, "granian")
    assert s.api.host == "127.0.0.1"
    with pytest.raises(ConfigError, match=r"api\.server"):
        load_settings(env={"TRADEPULSE_API_SERVER": "gunicorn"})
    with pytest.raises(ConfigError, match="TRADEPULSE_API_WORKER: unknown setting"):
        load_settings(env={"TRADEPULSE_API_WORKER": "2"})


def test_service_mode_defaults_to_redis_and_postgres_but_env_and_file_win(tmp_path: Path) -> None:
    assert load_settings(env={}).bus.transport == "memory"  # embedded defaults
    s = service_settings(env={})
    assert (s.bus.transport, s.database.backend) == ("redis", "postgres")
    s = service_settings(env={"TRADEPULSE_DATABASE_BACKEND": "sqlite"})
    assert (s.bus.transport, s.database.backend) == ("redis", "sqlite")
    config = tmp_path / "tp.toml"
    config.write_text('[bus]\ntransport = "memory"\n')
    s = service_settings(env={"TRADEPULSE_CONFIG": str(config)})
    assert (s.bus.transport, s.database.backend) == ("memory", "postgres")
