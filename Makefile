# The two commands of the README: `make run` and `make test`. Everything a fresh
# clone needs (virtualenv, dependencies, embedded servers) is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DEPS := bench/node_modules/.package-lock.json
WEB_DEPS := web/node_modules/.package-lock.json
# Debian's chromium and firefox-esr for the browser tests (tests/web); Playwright
# never downloads a browser
CHROMIUM := /usr/bin/chromium
FIREFOX := /usr/bin/firefox-esr
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test chaos lint types format clean bench screenshot audit

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) $(WEB_DEPS)
	$(BIN)/taskhub dev

# tests/hub/test_fanout_wire.py runs the official Node socket.io-client from bench/;
# tests/web drives the board page in chromium and firefox. Two xdist workers, each
# with its own embedded servers: most tests wait on Kafka, timers or a browser, so
# the two overlap; every browser test runs on one of them ("browsers" group).
test: $(STAMP) $(NODE_DEPS) $(WEB_DEPS) $(CHROMIUM) $(FIREFOX) lint types
	$(BIN)/pytest -n 2 --dist loadgroup

# Faults against deployments of their own (tests/chaos, issue 7 point 7): nodes
# killed -9 and restarted, Redis, PostgreSQL and Kafka stopped, workers killed
# between sending and committing, 500 clients reconnecting. Each test prints its
# figures; about 6 minutes. CI runs it after `make test`.
chaos: $(STAMP)
	$(BIN)/pytest tests/chaos -m chaos -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

types: $(STAMP)
	$(BIN)/mypy hub handlers storage protocol workers bots bench

# Published advisories against what the venv and the page's npm packages hold.
# --strict: a package that could not be checked fails the audit rather than
# passing unchecked (pip-audit otherwise reports "no known vulnerabilities" when
# it reached no advisory service at all). Needs PyPI's JSON API and the npm
# registry's audit endpoint; see "Dependency audit" in SECURITY.md.
audit: $(STAMP) $(WEB_DEPS)
	$(BIN)/pip install --quiet 'pip-audit>=2.9,<3'
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off
	npm audit --prefix web --omit=dev

# Fan-out against Node socket.io and stock python-socketio, and the real hub's
# scenarios (issue 5); rewrites docs/BENCHMARKS.md. BENCH_ARGS=--quick for a smoke
# run, BENCH_ARGS='--scenarios edit,kafka' for some. Takes both cores.
bench: $(STAMP) $(NODE_DEPS)
	$(BIN)/python -m bench.run --markdown docs/BENCHMARKS.md $(BENCH_ARGS)

# npm writes this file on every install, so a changed lockfile installs again
$(NODE_DEPS): bench/package.json bench/package-lock.json
	npm ci --prefix bench --no-audit --no-fund

$(WEB_DEPS): web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund

$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) apt-get install -y -q --no-install-recommends chromium

$(FIREFOX):
	$(SUDO) apt-get update -q
	$(SUDO) apt-get install -y -q --no-install-recommends firefox-esr

# The README's docs/board.png, taken from the demo while `make run` serves it
screenshot: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m tests.web.readme_screenshot

clean:
	rm -rf $(VENV) *.egg-info
