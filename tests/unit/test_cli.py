"""The command line: --help everywhere, a bounded embedded run, clear configuration errors."""

from __future__ import annotations

from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tradepulse.cli import app

runner = CliRunner()


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


@pytest.mark.parametrize("path", _command_paths(get_command(app)), ids=lambda p: " ".join(p) or "tradepulse")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert "tradepulse 0." in result.output


def test_run_stops_by_itself_and_prints_a_summary(monkeypatch: pytest.MonkeyPatch, tmp_cwd: object) -> None:
    monkeypatch.setenv("TRADEPULSE_MARKET_TICK_RATE", "50")
    monkeypatch.setenv("TRADEPULSE_API_PORT", "0")  # the embedded API on a free port
    result = runner.invoke(app, ["run", "--duration", "1.5", "--no-panel"])
    assert result.exit_code == 0, result.output
    assert "summary after" in result.output
    assert "ticks" in result.output
    assert "consume" in result.output  # the tick path's stage latency
    assert "http://127.0.0.1:" in result.output  # the API's URL, in the summary


def test_bad_configuration_exits_2_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEPULSE_BUS_MAX_DELIVERIES", "zero")
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 2
    assert "bus.max_deliveries" in result.output


def test_config_show_prints_toml() -> None:
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    assert "[bus]" in result.output
