# Mahiru: the two commands of README.md are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv crate-validator demo test lint typecheck unit engine base-images assets postgres slurm browser docker_tars deploy-test clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "Installing Mahiru and its Python packages (pyproject.toml: test and server extras) into $(VENV); the first time takes about a minute."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,server]'
	touch $(STAMP)

# roc-validator, for the tests that validate job crates (tests/support/crates.py), in
# an environment of its own: it pins an older `rich` than the project's tools need.
ROC_VALIDATOR := roc-validator>=0.13,<0.14
CRATE_VALIDATOR := .venv-rocrate

crate-validator: $(CRATE_VALIDATOR)/.installed

$(CRATE_VALIDATOR)/.installed:
	test -x $(CRATE_VALIDATOR)/bin/python || $(PYTHON) -m venv $(CRATE_VALIDATOR)
	$(CRATE_VALIDATOR)/bin/pip install -q '$(ROC_VALIDATOR)'
	touch $@

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: venv
	$(BIN)/mypy --strict src

unit: venv
	$(BIN)/pytest -q tests/unit

# A Docker-API container engine (Debian's dockerd, started if none answers)
# and the locally built base images; nothing is pulled from a registry.
engine:
	bash scripts/ensure-engine.sh

base-images: engine
	bash scripts/build-base-image.sh

assets: base-images venv
	bash scripts/build-assets.sh

# The service images (registry, site, nginx proxy, data base) as tarballs in
# build/, built offline from Debian packages and host-built wheels.
docker_tars: base-images venv
	bash scripts/build-docker-tars.sh

# The distributed deployment, for real: Vagrant's docker provider, Ansible,
# nginx proxies, both scenarios (see docs/running-distributed-scenarios.md).
deploy-test: venv
	bash scripts/deploy-test.sh

# A local PostgreSQL for the storage and service tests on both backends.
postgres:
	@bash scripts/ensure-postgres.sh >/dev/null

# A one-node Slurm cluster (Debian's slurm-wlm and munge) for the tests marked
# `slurm`; scripts/stop-slurm.sh stops it (see docs/slurm.md).
slurm:
	@bash scripts/ensure-slurm.sh >/dev/null

# Headless Chromium for the dashboard's browser tests (Debian's package).
browser:
	bash scripts/ensure-chromium.sh

# All tests: lint, types, then unit, integration (SQLite and PostgreSQL) and
# end-to-end tests with real containers. Set MAHIRU_TEST_POSTGRES_URL to use
# your own PostgreSQL instead of the one scripts/ensure-postgres.sh starts.
# pytest runs twice: first everything but the `serial` tests, spread over
# TEST_WORKERS processes (pytest-xdist; most tests wait on servers, TLS and
# containers, so more workers than cores pay; each file's tests go to one
# worker, so a module's network is set up once), then the `serial` tests one at
# a time with the machine to themselves (they fill a disk, retag shared images or
# time deadlines); the serial pass collects only the files that mark any (a test
# module imported and a hypothesis strategy built for nothing costs CPU, and every
# file's tests are still collected by the first pass). Both passes run even if the first
# fails, and share one folder (MAHIRU_TEST_RUN_DIR) for what is built once per
# run, so the serial pass does not build the scenario's asset archives again.
# A plain `pytest` runs everything in one process, as before.
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: the suite starts
# Python hundreds of times (workers, `mahiru serve`, `mahiru` commands), and without
# the cache each compiles the package again and pytest rewrites every test module
# in every worker (about 7 s of CPU per worker's collection, 0.4 s per service start).
TEST_WORKERS ?= 4
SERIAL_TEST_FILES = $(shell grep -rlE --include='test_*.py' 'mark\.serial' tests | sort)

test: lint typecheck base-images browser slurm crate-validator
	unset PYTHONDONTWRITEBYTECODE; \
	export MAHIRU_TEST_POSTGRES_URL="$${MAHIRU_TEST_POSTGRES_URL:-$$(bash scripts/ensure-postgres.sh)}"; \
	export MAHIRU_TEST_RUN_DIR="$$(mktemp -d -t mahiru-test-run-XXXXXX)"; \
	status=0; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not serial" --durations=25 || status=$$?; \
	$(BIN)/pytest -q -m serial --durations=10 $(SERIAL_TEST_FILES) || status=$$?; \
	rm -rf "$$MAHIRU_TEST_RUN_DIR"; \
	exit $$status

# The main job: a registry and two sites on loopback with TLS, running the
# compute-to-data scenario in real containers (see README.md).
demo: venv base-images
	$(BIN)/mahiru demo --assets build/assets

clean:
	rm -rf $(VENV) $(CRATE_VALIDATOR) build .mypy_cache .ruff_cache .pytest_cache .hypothesis
