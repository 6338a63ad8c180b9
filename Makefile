# The two commands: `make run` (serve locally) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint venv lock migrate clean browser-assets

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

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy .
	$(PY) manage.py makemigrations --check --dry-run

# Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e ".[dev]"
	.lockvenv/bin/pip freeze --exclude-editable | grep -v '^-e' > $(LOCK)
	rm -rf .lockvenv

clean:
	rm -rf $(VENV)

# The Discord bot: a separate process that talks to the site only through its API (see the
# README's "Discord bot"); reads .env like the site, so run `make run` (or the real site) first.
.PHONY: bot
bot: venv
	$(PY) -m botapp
