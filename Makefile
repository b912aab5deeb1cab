# Two commands matter: `make run` and `make test`. Both bootstrap .venv from python3 and are
# idempotent: a second run installs nothing unless pyproject.toml or the npm fixture changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_FIXTURE := tests/e2e/node
NODE_STAMP   := $(NODE_FIXTURE)/node_modules/.installed
AJS_DIR      := assets/analytics-js
AJS_STAMP    := $(AJS_DIR)/node_modules/.installed
ANALYTICS_JS := $(AJS_DIR)/node_modules/@segment/analytics-next/dist/umd

.PHONY: run test lint bench clean system-deps dist image docs vendor

# pytest-xdist workers: most end-to-end tests wait on HubSpot's pace (300 ms a call), so four keep
# two cores busy.
TEST_WORKERS ?= 4

# `make run` installs only what running needs (pip shows what it fetches); `make test` adds the
# test tools (Playwright, pytest, ruff, the Segment and HubSpot clients).
RUN_STAMP := $(VENV)/.installed-run

$(RUN_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing hubspot-relay and what it needs to run into $(VENV)/ (once) ..."
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -e .
	@touch $@

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,release,docs]'
	@touch $@ $(RUN_STAMP)

$(NODE_STAMP): $(NODE_FIXTURE)/package.json $(NODE_FIXTURE)/package-lock.json
	cd $(NODE_FIXTURE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(AJS_STAMP): $(AJS_DIR)/package.json $(AJS_DIR)/package-lock.json
	cd $(AJS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Segment's analytics.js, copied into the package so that a wheel serves device mode alone (never
# committed: it comes from the pinned npm package).
VENDORED := src/hubspot_relay/web/analytics-js
VENDORED_STAMP := $(VENDORED)/standalone.js
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

$(VENDORED_STAMP): $(AJS_STAMP)
	rm -rf $(VENDORED) && mkdir -p $(VENDORED)
	cp $(ANALYTICS_JS)/*.js $(AJS_DIR)/node_modules/@segment/analytics-next/LICENSE.MD $(VENDORED)/

vendor: $(VENDORED_STAMP)

# The release: wheel and sdist in dist/, checked.
dist: $(STAMP) $(VENDORED_STAMP)
	rm -rf dist build
	$(BIN)/python -m build --quiet --outdir dist .
	$(BIN)/twine check --strict dist/*
	@ls -l dist

# The OCI image hubspot-relay:$(VERSION) and :latest (docker, else podman; see scripts/image.sh).
image: dist
	scripts/image.sh $(VERSION)

# The documentation site, built strict (a broken link or a page left out of the nav fails it).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# Chromium for the browser tests, redis-server for the Redis queue, nginx, podman (with runc and
# podman-compose) and mmdebstrap for the deployment tests: installed through apt when missing and running as root (elsewhere those tests skip, and in CI a skip of them is a failure).
SYSTEM_TOOLS := chromium:chromium redis-server:redis-server nginx:nginx podman:podman \
	podman-compose:podman-compose mmdebstrap:mmdebstrap runc:runc
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi; true

run: $(RUN_STAMP) $(VENDORED_STAMP)
	$(BIN)/hubspot-relay serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

test: $(STAMP) $(NODE_STAMP) $(VENDORED_STAMP) system-deps
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(MAKE) --no-print-directory dist docs
	$(BIN)/python -m pytest -m alone
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not alone"

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/soak.py --seconds 180 --plot docs/img/soak.png

clean:
	rm -rf $(VENV) $(NODE_FIXTURE)/node_modules $(AJS_DIR)/node_modules $(VENDORED) .pytest_cache .ruff_cache \
		dist build
