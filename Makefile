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

# The web server and, beside it, the worker that sends queued SMS and delivers
# inbound messages to the agent. With no agent configured, the example echo
# agent runs too; with no TWILIO_ACCOUNT_SID, SMS are printed, not sent (the
# console backend). So `gateway simulate hello` shows a whole round trip.
# Server and worker write their Prometheus counters to one directory.
PORT ?= 8000
AGENT_PORT ?= 9000
METRICS_DIR ?= $(CURDIR)/instance/metrics

run: $(STAMP)
	$(BIN)/gateway init-db
	rm -rf $(METRICS_DIR) && mkdir -p $(METRICS_DIR)
	export PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR); \
	[ -n "$$TWILIO_ACCOUNT_SID" ] || export GATEWAY_SMS_BACKEND=$${GATEWAY_SMS_BACKEND:-console}; \
	if [ -z "$$GATEWAY_AGENT_URL$$GATEWAY_AGENT_HANDLER" ]; then \
		export GATEWAY_AGENT_SECRET=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
		export GATEWAY_AGENT_URL=http://127.0.0.1:$(AGENT_PORT)/agent; \
		$(BIN)/python examples/echo_agent.py --port $(AGENT_PORT) & agent=$$!; \
	fi; \
	$(BIN)/gateway worker & worker=$$!; \
	trap 'kill $$worker $$agent 2>/dev/null; wait' EXIT INT TERM; \
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
	$(BIN)/python bench/forward.py
	$(BIN)/python bench/lookup.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
