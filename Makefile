# The two commands: `make run` (serve locally) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint venv lock migrate clean browser-assets soak bench bench-quick

$(VENV)/.installed: pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed

migrate: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py sync_roles
	$(PY) manage.py sync_schedules
	$(PY) manage.py check --database default

run: migrate
	$(PY) manage.py bootstrap
	PORT=$(PORT) $(PY) manage.py runlocal

# Uses DATABASE_URL / REDIS_URL when set; otherwise throwaway PostgreSQL and Redis from local
# binaries when present; otherwise SQLite (PostgreSQL-only tests are then skipped).
test: venv browser-assets
	$(PY) -m tests.launcher -- $(PY) -m pytest $(PYTEST_ARGS)

# axe-core for the browser tests' accessibility check, from the npm registry (pinned in
# tests/browser_assets/package-lock.json). Without npm the browser tests say what is missing.
AXE := tests/browser_assets/node_modules/axe-core/axe.min.js
browser-assets: $(AXE)
$(AXE): tests/browser_assets/package.json tests/browser_assets/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/browser_assets --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the browser tests' accessibility check will fail (install Node.js)"; fi

# The long reliability runs (issue 11; not in CI): the abuse tests at 10,000 attempts of each
# kind and the Discord outage with the stand-in down for 5 minutes, then SOAK_MINUTES (30) of
# mixed traffic against the production stack on loopback (bench/soak.py: nginx, two web
# instances, two workers), reported in test-artifacts/soak.md: requests, errors, latency
# percentiles and each process's memory at the start and the end. Needs nginx, PostgreSQL and
# Redis on 127.0.0.1 (SOAK_POSTGRES, SOAK_REDIS_URL to change them).
SOAK_MINUTES ?= 30
soak: venv
	ZSPB_SOAK=1 ZSPB_ABUSE_ATTEMPTS=10000 $(PY) -m tests.launcher -- $(PY) -m pytest \
		tests/reliability/test_abuse.py tests/reliability/test_discord_outage.py
	SOAK_MINUTES=$(SOAK_MINUTES) $(PY) -m bench.soak

# Performance (issue 12): bench/run.py brings up the production stack on loopback (as `make soak`
# does), drives each hot path with wrk (32 connections) beside a bare one-query Ninja endpoint
# measured in the same run, then the rows of bench/measure.py (key generation, expiry, admin at
# scale, role-sync drain, WebSocket fan-out), and writes BENCHMARKS.md. Needs wrk and nginx (Debian/Ubuntu:
# apt-get install wrk nginx), PostgreSQL and Redis on 127.0.0.1 (BENCH_POSTGRES, BENCH_REDIS_URL
# to change them; Redis db 4 by default, which the run empties). py-spy, for the profile of a
# missed goal, goes into its own venv: it only reads the web worker's memory from outside.
BENCH_VENV := .venv-bench
PY_SPY_VERSION := 0.4.3
$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet "py-spy==$(PY_SPY_VERSION)"
	@touch $@

bench: venv $(BENCH_VENV)/.installed
	$(PY) -m bench.run

bench-quick: venv $(BENCH_VENV)/.installed
	$(PY) -m bench.run --quick

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy .
	$(PY) manage.py makemigrations --check --dry-run

# Re-pin after changing pyproject.toml: one lock for every Python the project supports (3.10, the
# production interpreter, and up), resolved by uv for all of them at once. `--fork-strategy fewest`
# keeps one version of each package for every Python (the newest that still supports 3.10), so
# the suite CI runs on 3.10 tests what runs everywhere; markers appear only where a package is
# needed on some Pythons or platforms (tomli, exceptiongroup, async-timeout...). Every run
# resolves afresh (--upgrade): uv would otherwise keep old pins for the Pythons they still fit.
# uv uses the index pip is told to use through PIP_INDEX_URL / PIP_CERT, if set.
UV_VERSION := 0.13.9
LOCK_PYTHON_MIN := 3.10
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet "uv==$(UV_VERSION)"
	if [ -n "$${PIP_INDEX_URL:-}" ] && [ -z "$${UV_INDEX_URL:-}" ]; then export UV_INDEX_URL="$$PIP_INDEX_URL"; fi; \
	if [ -n "$${PIP_CERT:-}" ] && [ -z "$${SSL_CERT_FILE:-}" ]; then export SSL_CERT_FILE="$$PIP_CERT"; fi; \
	.lockvenv/bin/uv pip compile --quiet --universal --python-version $(LOCK_PYTHON_MIN) \
		--fork-strategy fewest --python .lockvenv/bin/python --custom-compile-command "make lock" \
		--upgrade pyproject.toml --extra dev -o $(LOCK)
	rm -rf .lockvenv

clean:
	rm -rf $(VENV)

# The Discord bot: a separate process that talks to the site only through its API (see the
# README's "Discord bot"); reads .env like the site, so run `make run` (or the real site) first.
.PHONY: bot
bot: venv
	$(PY) -m botapp
