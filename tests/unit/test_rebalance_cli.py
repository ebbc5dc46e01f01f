"""``tradepulse rebalance``: both file formats, the printed plan, and errors naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradepulse.cli import app
from tradepulse.portfolio.rebalance import RebalanceOptions, rebalance
from tradepulse.portfolio.rebalance_files import RebalanceFileError, load_problem

runner = CliRunner()

HOLDINGS_CSV = """symbol,quantity,price,lot_size,fractional
$CASH,2500.00,,,
AAPL,120,190.12,,
MSFT,40,410.50,,
OLD,300,12.40,,
VTI,33.5012,251.30,,true
"""
TARGETS_CSV = """symbol,weight,price
AAPL,0.30,
MSFT,0.30,
VTI,0.30,
NEW,0.08,42.10
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_prints_the_plan_from_csv_files(tmp_path: Path) -> None:
    holdings = write(tmp_path, "h.csv", HOLDINGS_CSV)
    targets = write(tmp_path, "t.csv", TARGETS_CSV)
    args = ["rebalance", "--holdings", str(holdings), "--targets", str(targets), "--fee-per-order", "1"]
    result = runner.invoke(app, [*args, "--cash-buffer", "100", "--all"])
    assert result.exit_code == 0, result.output
    for text in ("rebalance plan: 5 orders", "SELL", "OLD", "NEW", "30.00%", "turnover", "estimated cost (fees)"):
        assert text in result.output
    assert "5.00 USD" in result.output  # five orders at 1.00


def test_json_files_and_model_portfolio_give_the_same_plan_as_csv(tmp_path: Path) -> None:
    holdings = {
        "cash": "2500.00",
        "positions": [
            {"symbol": "AAPL", "quantity": 120, "price": 190.12},
            {"symbol": "MSFT", "quantity": "40", "price": "410.50"},
            {"symbol": "OLD", "quantity": 300, "price": "12.40"},
            {"symbol": "VTI", "quantity": "33.5012", "price": "251.30", "fractional": True},
        ],
    }
    model = {"model": "core", "invested": "0.98", "weights": {"AAPL": 30, "MSFT": 30, "VTI": 30, "NEW": 8}}
    model["prices"] = {"NEW": "42.10"}
    h = write(tmp_path, "h.json", json.dumps(holdings))
    t = write(tmp_path, "t.json", json.dumps(model))
    options = RebalanceOptions()
    from_json = rebalance(load_problem(h, t, options))
    from_csv = rebalance(
        load_problem(write(tmp_path, "h.csv", HOLDINGS_CSV), write(tmp_path, "t.csv", TARGETS_CSV), options)
    )
    assert [(x.symbol, x.side, x.quantity) for x in from_json.trades] == [
        (x.symbol, x.side, x.quantity) for x in from_csv.trades
    ]


@pytest.mark.parametrize(
    ("holdings", "targets", "message"),
    [
        (HOLDINGS_CSV.replace("MSFT,40,", "MSFT,forty,"), TARGETS_CSV, "h.csv:4: quantity: 'forty' is not a number"),
        (HOLDINGS_CSV.replace("MSFT,40,410.50", "MSFT,40,"), TARGETS_CSV, "h.csv:4: price: missing"),
        (HOLDINGS_CSV.replace("MSFT,40,410.50", "MSFT,40,-1"), TARGETS_CSV, "h.csv:4: price: must be > 0"),
        (HOLDINGS_CSV.replace("MSFT,40,", "MSFT,-40,"), TARGETS_CSV, "h.csv:4: quantity: must be >= 0"),
        (HOLDINGS_CSV + "AAPL,1,190.12,,\n", TARGETS_CSV, "h.csv:7: symbol: duplicate AAPL (first at"),
        (HOLDINGS_CSV.replace("OLD,300,12.40,,", "OLD,300,12.40,0,"), TARGETS_CSV, "h.csv:5: lot_size: must be > 0"),
        (HOLDINGS_CSV.replace(",true", ",maybe"), TARGETS_CSV, "h.csv:6: fractional: 'maybe' is not true or false"),
        (HOLDINGS_CSV.replace("quantity", "qty"), TARGETS_CSV, "h.csv:1: header: missing column(s) quantity"),
        (HOLDINGS_CSV, TARGETS_CSV.replace("MSFT,0.30", "MSFT,NaN"), "t.csv:3: weight: 'NaN' is not a finite"),
        (HOLDINGS_CSV, TARGETS_CSV.replace("MSFT,0.30", "MSFT,-0.1"), "t.csv:3: weight: must be >= 0"),
        (HOLDINGS_CSV, TARGETS_CSV.replace("MSFT,0.30", "MSFT,0.50"), "t.csv: weight: target weights sum to 1.18"),
        (HOLDINGS_CSV, TARGETS_CSV.replace("NEW,0.08,42.10", "NEW,0.08,"), "t.csv:5: price: missing"),
        (HOLDINGS_CSV, TARGETS_CSV + "VTI,0.01,\n", "t.csv:6: symbol: duplicate VTI (first at"),
        (HOLDINGS_CSV, TARGETS_CSV.replace("AAPL,0.30,", "AAPL,0.30,199.99"), "t.csv:2: price: 199.99 differs from"),
    ],
)
def test_bad_files_name_file_line_and_field(tmp_path: Path, holdings: str, targets: str, message: str) -> None:
    h = write(tmp_path, "h.csv", holdings)
    t = write(tmp_path, "t.csv", targets)
    with pytest.raises(RebalanceFileError) as info:
        load_problem(h, t, RebalanceOptions())
    assert message in str(info.value)
    result = runner.invoke(app, ["rebalance", "--holdings", str(h), "--targets", str(t)])
    assert result.exit_code == 2
    assert "invalid input" in result.output


def test_bad_json_names_the_entry(tmp_path: Path) -> None:
    h = write(tmp_path, "h.json", json.dumps({"cash": "1", "positions": [{"symbol": "A", "quantity": "x"}]}))
    t = write(tmp_path, "t.json", json.dumps({"targets": [{"symbol": "A", "weight": "0.5"}]}))
    with pytest.raises(RebalanceFileError, match=r"h.json: positions\[0\]: quantity: 'x' is not a number"):
        load_problem(h, t, RebalanceOptions())
    write(tmp_path, "h.json", "{not json")
    with pytest.raises(RebalanceFileError, match=r"h.json:1: json: "):
        load_problem(h, t, RebalanceOptions())


def test_bad_flag_and_execute_without_the_engine(tmp_path: Path) -> None:
    h = write(tmp_path, "h.csv", HOLDINGS_CSV)
    t = write(tmp_path, "t.csv", TARGETS_CSV)
    result = runner.invoke(app, ["rebalance", "--holdings", str(h), "--targets", str(t), "--drift-abs", "lots"])
    assert result.exit_code == 2
    assert "--drift-abs: 'lots' is not a number" in result.output
    result = runner.invoke(app, ["rebalance", "--holdings", str(h), "--targets", str(t), "--execute"])
    assert result.exit_code == 3
    assert "rebalance plan" in result.output
    assert "bus.transport = memory" in result.output
    assert "nothing was sent" in result.output
