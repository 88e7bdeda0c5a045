# PFI on Airflow — one command per action. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help install run stop test test-unit lint bench e2e chaos fuzz pin clean

help: ## List the commands
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt scripts/install.sh
	@scripts/install.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

install: $(STAMP) ## Install what is missing: Debian packages, venv, pinned Python packages

run: install ## Start PostgreSQL, the local partner servers and Airflow; print the UI address
	@scripts/run.sh

stop: ## Stop everything `make run` started
	@scripts/stop.sh

test: install ## Run the whole test suite (unit, DAG, integration)
	@$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install ## Run the unit tier only (no server, no Airflow)
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## Lint (ruff, including the no-Airflow-in-include/pfi rule)
	@$(VENV)/bin/ruff check .

bench: install ## Run the benchmarks (speed and memory; never in the test suite)
	@$(PY) -m bench

e2e: install ## End to end through Airflow on make run's stack (started if needed): documents/s, latency, memory, beside the partners alone (`make bench e2e` runs both)
	@$(PY) -m bench.e2e

chaos: install ## The fault campaign on make run's stack: kills and partner outages, lost/twice counted at the partners, recovery times (CHAOS_ARGS="--trials 20 --documents 1000"; PFI_EXECUTOR=celery)
	@$(PY) scripts/chaos.py $(CHAOS_ARGS)

fuzz: install ## Hostile inputs at volume: the property-based tests, 10,000 cases each (FUZZ_EXAMPLES=N)
	@PFI_FUZZ=1 PFI_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),10000) $(PY) -m pytest \
	  tests/unit/test_hostile_inputs.py tests/integration/test_hostile_flows.py \
	  --timeout=0 -W ignore::UserWarning --hypothesis-show-statistics $(PYTEST_ARGS)

pin: ## Re-resolve requirements*.in in a scratch venv and freeze requirements*.txt
	@scripts/pin.sh "$(PYTHON)"

clean: stop ## Remove the venv and the local state (var/)
	rm -rf $(VENV) var
