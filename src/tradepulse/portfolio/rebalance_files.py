"""Holdings and targets files for ``tradepulse rebalance``: CSV or JSON, validated with file, line and field.

Holdings (``.csv``): a header, then one row per position; a row whose symbol is ``$CASH`` gives the cash in
its ``quantity`` column::

    symbol,quantity,price,lot_size,fractional,tick_size
    $CASH,25000.00,,,,
    AAPL,120,190.12,,,
    BRK.A,1,612000.00,1,false,
    VTI,33.5012,251.30,,true,

Holdings (``.json``)::

    {"cash": "25000.00",
     "positions": [{"symbol": "AAPL", "quantity": "120", "price": "190.12"},
                   {"symbol": "VTI", "quantity": "33.5012", "price": "251.30", "fractional": true}]}

Targets (``.csv``): ``symbol,weight`` plus, for symbols not held, ``price`` (and optionally ``lot_size``,
``fractional``, ``tick_size``)::

    symbol,weight,price
    AAPL,0.30,
    VTI,0.60,
    NEW,0.08,42.10

Targets (``.json``): ``{"targets": [{"symbol": "AAPL", "weight": "0.30"}, ...]}``, or a model portfolio whose
relative weights are scaled to sum to ``invested`` (default 1)::

    {"model": "growth", "invested": "0.98", "weights": {"AAPL": 3, "VTI": 6, "NEW": 1},
     "prices": {"NEW": "42.10"}}

Columns: ``lot_size`` defaults to 1, ``tick_size`` to 0.01, ``fractional`` to false (true/false, yes/no, 1/0).
Numbers are read as exact decimals (JSON numbers too; strings are fine). Every error names the file, the line
(for CSV; the entry for JSON) and the field.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradepulse.portfolio.rebalance_build import build_problem
from tradepulse.portfolio.rebalance_problem import (
    ModelPortfolio,
    RebalanceInputError,
    RebalanceOptions,
    RebalanceProblem,
    Security,
    security,
)

CASH_SYMBOL = "$CASH"
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}


class RebalanceFileError(ValueError):
    """A holdings or targets file is malformed; the message starts with ``file:line: field:``."""


@dataclass
class _Listing:
    """What the files say about one symbol, and where."""

    where: str
    price: str | None = None
    lot_size: str | None = None
    tick_size: str | None = None
    fractional: bool | None = None


@dataclass
class RebalanceFiles:
    """The parsed content of a holdings file and a targets file."""

    cash: Decimal = Decimal(0)
    holdings: list[tuple[str, Any]] = field(default_factory=list)
    targets: list[tuple[str, Any]] | ModelPortfolio = field(default_factory=list)
    listings: dict[str, _Listing] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    where_targets: dict[str, str] = field(default_factory=dict)
    targets_file: str = ""

    def securities(self) -> list[Security]:
        out = []
        for sym, info in self.listings.items():
            if info.price is None:
                continue  # reported as an unknown symbol by build_problem, with its location
            try:
                out.append(
                    security(
                        sym,
                        info.price,
                        info.lot_size or "1",
                        fractional=bool(info.fractional),
                        tick_size=info.tick_size or "0.01",
                    )
                )
            except RebalanceInputError as exc:
                raise RebalanceFileError(f"{info.where}: {exc.field}: {exc.message}") from None
        return out


def _cell(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def _flag(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RebalanceFileError(f"{where}: fractional: {value!r} is not true or false")


def _number(value: Any, where: str, name: str) -> str:
    """Return ``value`` as the text of a decimal number, or raise naming where."""
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise RebalanceFileError(f"{where}: {name}: missing")
    text = str(value).strip()
    try:
        d = Decimal(text)
    except ArithmeticError:
        raise RebalanceFileError(f"{where}: {name}: {text!r} is not a number") from None
    if not d.is_finite():
        raise RebalanceFileError(f"{where}: {name}: {text!r} is not a finite number")
    return text


def _read_rows(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Return (location, row) pairs of a CSV or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RebalanceFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        return [("json", {"doc": _load_json(path, text)})]
    if path.suffix.lower() != ".csv":
        raise RebalanceFileError(f"{path}: unknown file type (use .csv or .json)")
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise RebalanceFileError(f"{path}:1: header: missing column(s) {', '.join(missing)} (found {header})")
    rows = []
    for number, row in enumerate(reader, start=2):
        clean = {(k or "").strip().lower(): v for k, v in row.items()}
        if None in row:  # more cells than header columns
            raise RebalanceFileError(f"{path}:{number}: row: more values than columns")
        if not any(_cell(clean, k) for k in clean):
            continue
        rows.append((f"{path}:{number}", clean))
    return rows


def _load_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise RebalanceFileError(f"{path}:{exc.lineno}: json: {exc.msg}") from None


def _listing(files: RebalanceFiles, sym: str, row: dict[str, Any], where: str, *, need_price: bool) -> None:
    price = _cell(row, "price")
    if need_price and not price:
        raise RebalanceFileError(f"{where}: price: missing")
    info = files.listings.get(sym)
    new = _Listing(
        where=where,
        price=_number(price, where, "price") if price else None,
        lot_size=_number(_cell(row, "lot_size"), where, "lot_size") if _cell(row, "lot_size") else None,
        tick_size=_number(_cell(row, "tick_size"), where, "tick_size") if _cell(row, "tick_size") else None,
        fractional=_flag(row.get("fractional"), where) if _cell(row, "fractional") else None,
    )
    if info is None:
        files.listings[sym] = new
        return
    for name in ("price", "lot_size", "tick_size", "fractional"):
        old_value, new_value = getattr(info, name), getattr(new, name)
        if new_value is None:
            continue
        if old_value is not None and Decimal(str(old_value) if name != "fractional" else int(old_value)) != Decimal(
            str(new_value) if name != "fractional" else int(new_value)
        ):
            raise RebalanceFileError(f"{where}: {name}: {new_value} differs from {old_value} given at {info.where}")
        setattr(info, name, new_value)


def _symbol(row: dict[str, Any], where: str) -> str:
    sym = _cell(row, "symbol")
    if not sym:
        raise RebalanceFileError(f"{where}: symbol: missing")
    return sym


def read_holdings(path: Path, files: RebalanceFiles) -> None:
    """Read a holdings file into ``files``."""
    rows = _read_rows(path, ("symbol", "quantity", "price"))
    if rows and rows[0][0] == "json":
        doc = rows[0][1]["doc"]
        if not isinstance(doc, dict) or "positions" not in doc:
            raise RebalanceFileError(f"{path}: json: expected an object with 'positions' (and 'cash')")
        unknown = set(doc) - {"cash", "positions"}
        if unknown:
            raise RebalanceFileError(f"{path}: json: unknown key(s) {sorted(unknown)}")
        files.cash = Decimal(_number(doc.get("cash", "0"), f"{path}: cash", "cash"))
        if not isinstance(doc["positions"], list):
            raise RebalanceFileError(f"{path}: positions: expected a list")
        rows = [(f"{path}: positions[{i}]", r) for i, r in enumerate(doc["positions"])]
    for where, row in rows:
        if not isinstance(row, dict):
            raise RebalanceFileError(f"{where}: expected an object")
        row = {str(k).lower(): v for k, v in row.items()}
        sym = _symbol(row, where)
        if sym == CASH_SYMBOL:
            files.cash = Decimal(_number(row.get("quantity"), where, "quantity"))
            continue
        if sym in files.where:
            raise RebalanceFileError(f"{where}: symbol: duplicate {sym} (first at {files.where[sym]})")
        files.holdings.append((sym, _number(row.get("quantity"), where, "quantity")))
        files.where[sym] = where
        _listing(files, sym, row, where, need_price=True)


def read_targets(path: Path, files: RebalanceFiles) -> None:
    """Read a targets file (or a model portfolio) into ``files``."""
    files.targets_file = str(path)
    rows = _read_rows(path, ("symbol", "weight"))
    seen: dict[str, str] = {}
    if rows and rows[0][0] == "json":
        doc = rows[0][1]["doc"]
        if isinstance(doc, dict) and "model" in doc:
            _read_model(path, doc, files)
            return
        if not isinstance(doc, dict) or "targets" not in doc or not isinstance(doc["targets"], list):
            raise RebalanceFileError(f"{path}: json: expected {{'targets': [...]}} or a model portfolio")
        rows = [(f"{path}: targets[{i}]", r) for i, r in enumerate(doc["targets"])]
    targets: list[tuple[str, Any]] = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise RebalanceFileError(f"{where}: expected an object")
        row = {str(k).lower(): v for k, v in row.items()}
        sym = _symbol(row, where)
        if sym in seen:
            raise RebalanceFileError(f"{where}: symbol: duplicate {sym} (first at {seen[sym]})")
        seen[sym] = where
        targets.append((sym, _number(row.get("weight"), where, "weight")))
        _listing(files, sym, row, where, need_price=sym not in files.listings)
        files.where_targets[sym] = where
    files.targets = targets


def _read_model(path: Path, doc: dict[str, Any], files: RebalanceFiles) -> None:
    unknown = set(doc) - {"model", "weights", "invested", "prices"}
    if unknown:
        raise RebalanceFileError(f"{path}: json: unknown key(s) {sorted(unknown)}")
    weights = doc.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise RebalanceFileError(f"{path}: weights: expected an object of symbol -> relative weight")
    prices = doc.get("prices", {})
    if not isinstance(prices, dict):
        raise RebalanceFileError(f"{path}: prices: expected an object of symbol -> price")
    parsed = {}
    for sym, w in weights.items():
        where = f"{path}: weights.{sym}"
        parsed[sym] = Decimal(_number(w, where, "weight"))
        row = {"price": prices.get(sym)}
        _listing(files, sym, row, f"{path}: prices.{sym}", need_price=sym not in files.listings)
        files.where_targets[sym] = where
    invested = Decimal(_number(doc.get("invested", "1"), f"{path}: invested", "invested"))
    files.targets = ModelPortfolio(name=str(doc["model"]), weights=parsed, invested=invested)


def load_problem(holdings: Path, targets: Path, options: RebalanceOptions) -> RebalanceProblem:
    """Read both files and return the validated problem; every error names the file, line and field."""
    files = RebalanceFiles()
    read_holdings(holdings, files)
    read_targets(targets, files)
    try:
        return build_problem(
            cash=files.cash,
            holdings=files.holdings,
            securities=files.securities(),
            targets=files.targets,
            options=options,
        )
    except RebalanceInputError as exc:
        first, second = (
            (files.where_targets, files.where) if exc.field == "weight" else (files.where, files.where_targets)
        )
        where = first.get(exc.symbol or "", second.get(exc.symbol or ""))
        if where is not None:
            raise RebalanceFileError(f"{where}: {exc.field}: {exc.message}") from None
        origin = files.targets_file if exc.field == "weight" else str(holdings)
        raise RebalanceFileError(f"{origin}: {exc}") from None


__all__ = ["CASH_SYMBOL", "RebalanceFileError", "RebalanceFiles", "load_problem", "read_holdings", "read_targets"]
