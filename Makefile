# Two commands set everything up on a fresh machine with Python 3.11 or newer, git and make:
#   make run    virtualenv + what running needs + database, then serve on 127.0.0.1:8000
#   make test   virtualenv + test dependencies (and Debian's chromium), then lint and the whole suite
# PYTHON is the newest python3.X (3.11 or newer) on the PATH; set PYTHON=/path/to/python to choose.
# A candidate counts only if it runs: a pyenv shim for a version that is not selected is on the PATH but fails.
PYTHON ?= $(shell for p in python3.15 python3.14 python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: run test lint browser bench readme mutation clean

$(BIN)/python:
	@[ -n "$(firstword $(PYTHON))" ] || { echo "make: needs Python 3.11 or newer on the PATH (or PYTHON=/path/to/python)"; exit 1; }
	@$(firstword $(PYTHON)) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "make: $(firstword $(PYTHON)) is older than Python 3.11: set PYTHON=/path/to/python3.11-or-newer"; exit 1; }
	$(firstword $(PYTHON)) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Running needs the package only; the tests add pytest, ruff, playwright and schemathesis.
$(RUN_STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP) $(RUN_STAMP)

# The web server and, beside it, the worker that sends queued SMS and delivers
# inbound messages to the agent. With no agent configured, the example echo
# agent runs too; with no TWILIO_ACCOUNT_SID, SMS are printed, not sent (the
# console backend). So `gateway simulate hello` shows a whole round trip.
# Server and worker write their Prometheus counters to one folder of this run.
PORT ?= 8000
AGENT_PORT ?= 9000
METRICS_DIR ?=

run: $(RUN_STAMP)
	@$(BIN)/python -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' $(PORT) 2>/dev/null || \
		{ echo "make run: port $(PORT) is taken (the gateway's): stop what uses it, or choose another with PORT=8001"; exit 1; }
	$(BIN)/gateway init-db
	@mkdir -p "$${GATEWAY_INSTANCE_PATH:-$(CURDIR)/instance}"
	@metrics="$(METRICS_DIR)"; [ -n "$$metrics" ] || metrics=$$(mktemp -d "$${GATEWAY_INSTANCE_PATH:-$(CURDIR)/instance}/metrics.XXXXXX"); \
	mkdir -p "$$metrics"; export PROMETHEUS_MULTIPROC_DIR="$$metrics"; \
	[ -n "$$TWILIO_ACCOUNT_SID" ] || export GATEWAY_SMS_BACKEND=$${GATEWAY_SMS_BACKEND:-console}; \
	if [ -z "$$GATEWAY_AGENT_URL$$GATEWAY_AGENT_HANDLER" ]; then \
		export GATEWAY_AGENT_SECRET=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
		export GATEWAY_AGENT_URL=http://127.0.0.1:$(AGENT_PORT)/agent; \
		$(BIN)/python examples/echo_agent.py --port $(AGENT_PORT) --ready-file "$$metrics/agent.ready" & agent=$$!; \
		while [ ! -e "$$metrics/agent.ready" ]; do \
			kill -0 $$agent 2>/dev/null || { [ -n "$(METRICS_DIR)" ] || rm -rf "$$metrics"; \
				echo "make run: the echo agent did not start (AGENT_PORT=$(AGENT_PORT)): nothing else was started"; exit 1; }; \
			sleep 0.1; \
		done; \
	fi; \
	$(BIN)/gateway worker & worker=$$!; \
	trap 'kill $$worker $$agent 2>/dev/null; wait; [ -n "$(METRICS_DIR)" ] || rm -rf "$$metrics"' EXIT INT TERM; \
	$(BIN)/gateway serve --host 127.0.0.1 --port $(PORT)

# ruff, then import-linter's contracts (setup.cfg): the layers import only downwards, the core imports neither
# Flask nor a database, and no package's modules import each other in a cycle.
lint: $(TEST_STAMP)
	$(BIN)/ruff check gateway tests bench examples wsgi.py
	$(BIN)/lint-imports --no-cache

# The console's end-to-end tests drive Debian's Chromium through Playwright. apt-get waits for another
# apt at work (unattended upgrades on a new machine) instead of failing.
APT_GET = $(SUDO) apt-get -o DPkg::Lock::Timeout=600
browser:
	@command -v chromium >/dev/null 2>&1 || { $(APT_GET) update -qq && \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium >/dev/null; }

test: $(TEST_STAMP) lint browser
	$(BIN)/python -m pytest

bench: $(TEST_STAMP)
	bench/ensure-tools
	$(BIN)/python bench/run.py
	$(BIN)/python bench/outbound.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/forward.py
	$(BIN)/python bench/lookup.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/instructions.py

# Mutation testing of the pure modules and the signature check, each against its own tests.
mutation: $(TEST_STAMP)
	$(BIN)/python -m tests.mutation

# Runs every README sample marked <!-- sample: NAME --> and writes its real output.
readme: $(TEST_STAMP)
	$(BIN)/python -m tests.readme_samples

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
