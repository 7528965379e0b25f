# Archetype: host setup, tests, demo. Everything runs as root on the lab host.
#   make setup       install packages, create the venv, start the daemons, build images
#   make test        setup, then the WHOLE suite (unit, integration, e2e)
#   make test-unit   unit tests only (needs only the venv)
#   make lint        ruff
#   make demo        setup, then the demo lab
#   make bench       benchmarks/run.py, if present
#   make clean-host  remove every Archetype-owned resource from this host

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PYTHON := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
RUFF   := $(VENV)/bin/ruff
ARCHETYPE := $(VENV)/bin/archetype
# Extra pytest flags, e.g. `make test PYTEST_ARGS="-x -k frr"`.
PYTEST_ARGS ?=

# For every target: no telemetry (this host has no internet, and Prefect would log errors
# trying), and Prefect's local state in the workspace rather than ~/.prefect.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_HOME := /var/lib/archetype/prefect

.PHONY: help setup daemons venv test test-unit lint demo bench clean-host

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

setup:
	bash scripts/setup-host.sh

# Only the daemons (e.g. after a reboot or a killed daemon).
daemons:
	bash scripts/start-daemons.sh

# The venv alone (what test-unit and lint need): created when missing, reinstalled when
# pyproject.toml changed.
venv:
	@bash scripts/setup-host.sh --venv-only

test: setup
	$(PYTEST) tests -q -ra --durations=20 $(PYTEST_ARGS)

test-unit: venv
	$(PYTEST) tests/unit -q -ra $(PYTEST_ARGS)

lint: venv
	$(RUFF) check .

# TODO(flows issue): once `archetype deploy` is wired end to end, this recipe becomes
# `$(ARCHETYPE) deploy examples/demo.yml` (validate + vendors until then).
demo: setup
	$(ARCHETYPE) validate examples/demo.yml
	$(ARCHETYPE) vendors

bench: setup
	@if [ -f benchmarks/run.py ]; then \
		$(PYTHON) benchmarks/run.py; \
	else \
		echo "benchmarks/run.py not present: nothing to run"; \
	fi

# TODO: `archetype cleanup` with no known labs removes every Archetype-owned container,
# domain, OVS port and disk (by their markers, never by name); check it does all of that.
clean-host: venv
	$(ARCHETYPE) cleanup
