# One command to run the product, one to test it. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed

.PHONY: run test lint typecheck pytest bench chaos chaos-short clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(RUNTIME_STAMP) $@

run: $(RUNTIME_STAMP)
	$(BIN)/python manage.py serve

test: $(DEV_STAMP) lint typecheck pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(DEV_STAMP)
	$(BIN)/mypy .

pytest: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

chaos: $(DEV_STAMP)
	$(BIN)/python -m bench.chaos

chaos-short: $(DEV_STAMP)
	$(BIN)/python -m bench.chaos --short

clean:
	rm -rf $(VENV) var/test_db.sqlite3*
