# Two commands set everything up on a fresh machine with Python 3.11, git and make:
#   make run    virtualenv + install + database, then serve on 127.0.0.1:8000
#   make test   virtualenv + test dependencies, then lint and the whole suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gateway init-db
	$(BIN)/gateway serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench wsgi.py

test: $(STAMP) lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	bench/ensure-wrk
	$(BIN)/python bench/run.py
	$(BIN)/python bench/export.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
