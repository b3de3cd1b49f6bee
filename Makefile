# Mahiru: the two commands of README.md are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,server]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: venv
	$(BIN)/mypy --strict src

unit: venv
	$(BIN)/pytest -q tests/unit

test: lint typecheck
	$(BIN)/pytest -q

demo: venv
	$(BIN)/mahiru plan --rules examples/compute_to_data/rules.yaml \
		--sites examples/compute_to_data/sites.yaml --job examples/compute_to_data/job.yaml

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache .hypothesis
