# Two commands matter: `make run` and `make test`. Both bootstrap .venv from python3 and are
# idempotent: a second run installs nothing unless pyproject.toml or the npm fixture changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_FIXTURE := tests/e2e/node
NODE_STAMP   := $(NODE_FIXTURE)/node_modules/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(NODE_STAMP): $(NODE_FIXTURE)/package.json $(NODE_FIXTURE)/package-lock.json
	cd $(NODE_FIXTURE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: $(STAMP)
	$(BIN)/hubspot-relay serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/delivery.py

clean:
	rm -rf $(VENV) $(NODE_FIXTURE)/node_modules .pytest_cache .ruff_cache
