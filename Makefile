# The README's two commands: `make demo` and `make test`. Everything else here serves them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint install

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh build
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## make demo: install, migrate and seed var/, run the server on :8000 and a kiosk on :8100 (Ctrl-C stops both)
demo: $(STAMP)
	$(BIN)/baodao demo

## make test: install what the tests need (Debian packages too), lint, run the whole suite
test: $(STAMP)
	bash scripts/install-system-deps.sh test
	$(BIN)/ruff check .
	$(BIN)/pytest

## make test-fast: the suite without slow fault-injection and browser tests (for development)
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not browser"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
