# The two commands a newcomer needs (see README): `make run` and `make test`.
# Everything is installed into .venv by the project's own files; nothing by hand.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml package.json package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: install run test lint clean bench browser

$(STAMP): pyproject.toml package.json package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python -m web.assets
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## Install, migrate, load the demo data and start the web app with the worker on SQLite.
run: install
	$(BIN)/agglo db upgrade
	$(BIN)/agglo demo
	$(BIN)/agglo serve --with-worker

## Debian's Chromium for the browser tests (installed when missing and we may use apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "chromium is not installed: the browser tests will be skipped"; fi; }

## Install and run the whole test suite (plus lint, types and import contracts).
test: install browser
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/web_bench.py --backend sqlite

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache test-artifacts
