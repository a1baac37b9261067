# The two commands of the README: `make run` and `make test`. Everything a fresh
# clone needs (virtualenv, dependencies, embedded servers) is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint types format clean bench

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/taskhub dev

test: $(STAMP) lint types
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

types: $(STAMP)
	$(BIN)/mypy hub handlers storage protocol workers bots bench

# Fan-out against Node socket.io and stock python-socketio (issue 5); rewrites
# docs/BENCHMARKS.md. BENCH_ARGS=--quick for a smoke run. Takes both cores.
bench: $(STAMP) | bench/node_modules
	$(BIN)/python -m bench.run --markdown docs/BENCHMARKS.md $(BENCH_ARGS)

bench/node_modules:
	npm ci --prefix bench --no-audit --no-fund

clean:
	rm -rf $(VENV) *.egg-info
