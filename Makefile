# Two commands set everything up on a fresh machine with Python 3.11, git and make:
#   make run    virtualenv + install + database, then serve on 127.0.0.1:8000
#   make test   virtualenv + test dependencies (and Debian's chromium), then lint and the whole suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: run test lint browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The web server and, beside it, the worker that sends queued SMS. Both write
# their Prometheus counters to one directory, so /metrics shows both.
PORT ?= 8000
METRICS_DIR ?= $(CURDIR)/instance/metrics

run: $(STAMP)
	$(BIN)/gateway init-db
	rm -rf $(METRICS_DIR) && mkdir -p $(METRICS_DIR)
	export PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR); \
	$(BIN)/gateway worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/gateway serve --host 127.0.0.1 --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench examples wsgi.py

# The console's end-to-end tests drive Debian's Chromium through Playwright.
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) lint browser
	$(BIN)/python -m pytest

bench: $(STAMP)
	bench/ensure-wrk
	$(BIN)/python bench/run.py
	$(BIN)/python bench/outbound.py
	$(BIN)/python bench/export.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
