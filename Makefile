# Trainyard: `make up` starts the whole stack on embedded defaults; `make test` installs and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_APP := $(VENV)/.installed-app
STAMP_DEV := $(VENV)/.installed-dev
STAMP_NPM := frontend/node_modules/.installed
STAMP_CHROMIUM := $(VENV)/.installed-chromium
# Tests: PostgreSQL and Redis on 127.0.0.1 (running on CI), FalkorDB started by the test session.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/9
PYTEST_ARGS ?=

.PHONY: up install test test-fast test-sqlite benchmarks clean help

help:
	@echo "make up        install, migrate, seed and start the whole stack (Ctrl-C stops it)"
	@echo "make test      install the test tools and run the whole suite (PostgreSQL; beside it the browser tests, the slowest training tests, then the SQLite subset)"
	@echo "make test-fast unit tests only, no services"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools

$(STAMP_APP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e .
	touch $@

$(STAMP_DEV): $(STAMP_APP) pyproject.toml
	$(PIP) install --quiet -e '.[dev]'
	touch $@

$(STAMP_NPM): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser tests (Playwright's own browser download does not work offline),
# and docker-compose to check the production compose file where the `docker compose` plugin is absent.
$(STAMP_CHROMIUM): | $(VENV)/bin/python
	@if ! command -v chromium >/dev/null || ! (docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null); then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-compose >/dev/null; \
	fi
	touch $@

install: $(STAMP_APP) $(STAMP_NPM)

up: install
	$(PY) manage.py up

# Two pytest sessions side by side: the browser tests (each drives its own `manage.py up` stack, with its
# own Redis), then the slowest training-heavy integration files (on a test database of their own), then the
# SQLite subset, beside the rest on PostgreSQL. On 2 cores one mostly waits (a browser, a torch import) while
# the other works. Each has its own Redis db: the reconciler's tests flush theirs. Their trainings run side by
# side, so each engine process gets one torch thread (docs/operations.md).
TEST_SIDE_REDIS_URL ?= redis://127.0.0.1:6379/8
TEST_SQLITE_URL := sqlite:///$(CURDIR)/var/test-sqlite/trainyard.sqlite3
SIDE_INTEGRATION := tests/integration/test_sweeps.py tests/integration/test_lr_finder.py \
	tests/integration/test_multinode.py tests/integration/test_fleet_faults.py

test: export TRAINYARD_ENGINE_CPU_THREADS ?= 1
test: $(STAMP_DEV) $(STAMP_NPM) $(STAMP_CHROMIUM)
	@mkdir -p test-output
	@echo "browser tests, then the SQLite subset, run beside the PostgreSQL suite; their log: test-output/side.log"
	@( DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_SIDE_REDIS_URL) $(PY) -m pytest tests/e2e $(PYTEST_ARGS); \
	   browser=$$?; DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_SIDE_REDIS_URL) \
	   TRAINYARD_TEST_DB_NAME=test_trainyard_side $(PY) -m pytest $(SIDE_INTEGRATION) $(PYTEST_ARGS); \
	   integration=$$?; DATABASE_URL=$(TEST_SQLITE_URL) REDIS_URL=$(TEST_SIDE_REDIS_URL) \
	   $(PY) -m pytest -m sqlite_ok -q $(PYTEST_ARGS); sqlite=$$?; \
	   for code in $$browser $$integration $$sqlite; do test $$code -eq 0 -o $$code -eq 5 || exit 1; done ) \
	  > test-output/side.log 2>&1 & side=$$!; \
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest --ignore=tests/e2e \
	  $(addprefix --ignore=,$(SIDE_INTEGRATION)) $(PYTEST_ARGS); \
	main=$$?; wait $$side; side_status=$$?; \
	echo; echo "=== browser tests and the SQLite subset (test-output/side.log) ==="; cat test-output/side.log; \
	test $$main -eq 0 -a $$side_status -eq 0

# The fast subset on SQLite, the embedded default's database.
test-sqlite: $(STAMP_DEV)
	DATABASE_URL=$(TEST_SQLITE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(PY) -m pytest -m sqlite_ok -q $(PYTEST_ARGS)

test-fast: $(STAMP_DEV)
	$(PY) -m pytest tests/unit -q

benchmarks: $(STAMP_DEV)
	@echo "see benchmarks/README.md"

clean:
	rm -rf $(VENV) frontend/node_modules var/static
