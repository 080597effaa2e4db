# One command to run the product, one to test it. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed

.PHONY: run test lint typecheck jstest pytest bench chaos chaos-short clean

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

test: $(DEV_STAMP) lint typecheck jstest pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy .

# The front-end modules' DOM-free logic, with Node's built-in test runner (no npm).
jstest:
	@command -v node >/dev/null 2>&1 || { echo "jstest: node is not installed; install it with: apt-get install -y nodejs" >&2; exit 1; }
	node --test tests/js/

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
