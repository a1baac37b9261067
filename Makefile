# The two commands of the README: `make run` and `make test`. Everything a fresh
# clone needs (virtualenv, dependencies, embedded servers) is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DEPS := bench/node_modules/.package-lock.json

.PHONY: run test lint types format clean bench

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/taskhub dev

# tests/hub/test_fanout_wire.py runs the official Node socket.io-client from bench/.
test: $(STAMP) $(NODE_DEPS) lint types
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

types: $(STAMP)
	$(BIN)/mypy hub handlers storage protocol workers bots bench

# Fan-out against Node socket.io and stock python-socketio, and the real hub's
# scenarios (issue 5); rewrites docs/BENCHMARKS.md. BENCH_ARGS=--quick for a smoke
# run, BENCH_ARGS='--scenarios edit,kafka' for some. Takes both cores.
bench: $(STAMP) $(NODE_DEPS)
	$(BIN)/python -m bench.run --markdown docs/BENCHMARKS.md $(BENCH_ARGS)

# npm writes this file on every install, so a changed lockfile installs again
$(NODE_DEPS): bench/package.json bench/package-lock.json
	npm ci --prefix bench --no-audit --no-fund

clean:
	rm -rf $(VENV) *.egg-info
