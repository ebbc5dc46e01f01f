# tradepulse: `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit test-slow bench bench-bus bench-execution bench-rebalance bench-ml bench-marketdata bench-api lock clean help tools

help:
	@echo "make run        set up and run the platform embedded (in-process bus, SQLite, simulated market)"
	@echo "make test       set up, lint, type-check and run the whole test suite (needs Redis and PostgreSQL)"
	@echo "make test-slow  long load and chaos tests"
	@echo "make bench      every benchmark; bench-bus, ... one each"
	@echo "make lock       re-resolve requirements.lock from pyproject.toml"

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tradepulse run

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration and not slow"

tools:
	@scripts/ensure-tools.sh

test: lint typecheck tools
	$(BIN)/pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

bench: bench-bus bench-execution bench-rebalance bench-ml bench-marketdata bench-api

bench-bus: $(STAMP)
	$(BIN)/python -m benchmarks.bus_bench

# client -> Redis -> engine process (simulated exchange, PostgreSQL ledger) -> report; BENCH_ARGS=--seconds 5 ...
bench-execution: $(STAMP)
	$(BIN)/python -m benchmarks.execution_bench $(BENCH_ARGS)

bench-rebalance: $(STAMP)
	$(BIN)/python tests/performance/rebalance_benchmark.py --size 1000 --runs 10 --scaling

bench-ml: $(STAMP)
	$(BIN)/python -m benchmarks.ml_bench

bench-marketdata: $(STAMP)
	$(BIN)/python -m benchmarks.marketdata_bench $(ARGS)

# open-loop load (own process) -> tradepulse api (uvicorn and granian) -> Redis / PostgreSQL / engine; BENCH_ARGS=--seconds 3 ...
bench-api: $(STAMP)
	$(BIN)/python -m benchmarks.api_bench $(BENCH_ARGS)

lock:
	@test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"; }
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
