# One command to run the product, one to test it. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed

.PHONY: run test tools chromium nodejs lint typecheck jstest pytest bench bench-deps chaos chaos-short failover hostloss clean

# $(call need,COMMAND,DEBIAN PACKAGES): as root, apt-get install the packages when COMMAND
# is missing; otherwise stop with one line saying how. The tests never skip for a missing tool.
define need
	@if ! command -v $(1) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "== $(1) is missing: apt-get install -y $(2)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q && apt-get install -y -q $(2) \
	      || { echo "make: apt-get install -y $(2) failed (see above)" >&2; exit 1; }; \
	  else \
	    echo "make: the tests need $(1); install it with: sudo apt-get install -y $(2)" >&2; \
	    exit 1; \
	  fi; \
	fi
endef

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

test: $(DEV_STAMP) tools lint typecheck jstest pytest

# What the tests run besides Python: Debian's Chromium (browser tests), Node and npm (JS
# checks, Prism), and Prism itself, pinned by package-lock.json, installed before pytest.
tools: chromium nodejs node_modules/.package-lock.json

chromium:
	$(call need,/usr/bin/chromium,chromium)

nodejs:
	$(call need,node,nodejs npm)
	$(call need,npm,nodejs npm)

node_modules/.package-lock.json: package.json package-lock.json | nodejs
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(DEV_STAMP)
	$(BIN)/mypy .

# The front-end modules' DOM-free logic, with Node's built-in test runner (no npm).
jstest: nodejs
	node --test tests/js/

pytest: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Celery and py-spy, the benchmark's peers and profiler: into var/bench-deps, never the venv.
bench-deps: var/bench-deps/.installed
var/bench-deps/.installed: requirements-bench.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --target var/bench-deps -r requirements-bench.txt
	touch $@

bench: $(DEV_STAMP) bench-deps
	$(BIN)/python -m bench

chaos: $(DEV_STAMP)
	$(BIN)/python -m bench.chaos

chaos-short: $(DEV_STAMP)
	$(BIN)/python -m bench.chaos --short

# Redis Sentinel: kill -9 the master under load; two hosts, SIGKILL one (needs PostgreSQL).
failover: $(DEV_STAMP)
	$(BIN)/python -m bench.failover

hostloss: $(DEV_STAMP)
	$(BIN)/python -m bench.hostloss

clean:
	rm -rf $(VENV) node_modules var/test_db.sqlite3*
