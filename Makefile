# Archetype: host setup, tests, demo. Everything runs as root on the lab host.
#   make setup       install packages, create the venv, start the daemons, build images
#   make test        the WHOLE suite (unit, integration, e2e, reliability, multihost) from a fresh host
#                    state: scripts/fresh-host-state.sh, setup, the parallel group with the fleet's tests
#                    beside it, then the alone group
#   make test-parallel / test-alone   one group of `make test` (after setup)
#   make test-unit   unit tests only (needs only the venv)
#   make test-reliability  setup, then the fault tests alone (tests/reliability, ~6-10 min;
#                    `make test` runs them too)
#   make lint        ruff
#   make demo        setup, then the demo lab
#   make bench       benchmarks: deploy/destroy as users run them vs the engines alone, discovery, VM readiness, wiring
#   make bench-floor what Prefect costs before any lab work (server start, a no-op command, a served run, the heartbeat)
#   make bench-scale cost growth at N = 50, 100, 200 against an engines-only baseline with nothing of ours (saturates the host)
#   make clean-host  remove every Archetype-owned resource from this host, stop the local Prefect server
#   make sim-up HOSTS=2   a simulated fleet on this machine (hosts sim-1..sim-N, Postgres-backed
#                    Prefect server with API auth); prints the env that points the CLI at it
#   make sim-down    end every daemon of the simulated fleet and remove it

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

.PHONY: help setup daemons venv test test-parallel test-alone test-unit test-reliability lint demo bench bench-floor bench-scale clean-host sim-up sim-down

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

# The suite in two explicit groups (tests/conftest.py ALONE, marker `alone`):
# - parallel: the tests that can share the host, on TEST_WORKERS pytest-xdist workers (2: the
#   host's cores), one test file per worker at a time (--dist loadfile: a module's booted VMs
#   and servers stay one per module);
# - fleet: the simulated fleet (tests/multihost), serially, beside the parallel group;
# - alone: daemon restarts (tests/reliability), the tests that measure a time, one at a time
#   after both.
# `make test` removes what the suite rebuilds cheaply first (scripts/fresh-host-state.sh: the
# simulated fleet's state, run folders, namespaces; docker images stay), so that a run on a
# used machine is a run on a fresh one; both groups always run, and it fails if either did.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(PYTEST) tests -q -ra --durations=20 -m "not alone" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
PYTEST_ALONE = $(PYTEST) tests -q -ra --durations=20 -m alone --ignore=tests/multihost $(PYTEST_ARGS)
# The simulated fleet's tests run beside the parallel group: each simulated host has its own
# dockerd, libvirtd, OVS and the fleet its own Prefect server, so they share no daemon with it,
# and they mostly wait (load 1.7 when they ran alone). Their output follows the parallel group's.
PYTEST_FLEET = $(PYTEST) tests/multihost -q -ra --durations=10 -m alone $(PYTEST_ARGS)
FLEET_LOG = /tmp/archetype-make-test-fleet.log
# exit status 5: no test selected (PYTEST_ARGS chose none of the group): not a failure
GROUP = start=$$SECONDS; $(1) || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; echo "[make test] $(2) group: $$((SECONDS - start)) s"

test:
	bash scripts/fresh-host-state.sh
	bash scripts/setup-host.sh
	@rc=0; ( rc=0; $(call GROUP,$(PYTEST_FLEET),fleet); exit $$rc ) > $(FLEET_LOG) 2>&1 & fleet=$$!; \
	$(call GROUP,$(PYTEST_PARALLEL),parallel); \
	wait $$fleet || rc=$$?; cat $(FLEET_LOG); \
	$(call GROUP,$(PYTEST_ALONE),alone); exit $$rc

test-parallel: setup
	@rc=0; $(call GROUP,$(PYTEST_PARALLEL),parallel); exit $$rc

test-alone: setup
	@rc=0; $(call GROUP,$(PYTEST_ALONE),alone); exit $$rc

test-unit: venv
	$(PYTEST) tests/unit -q -ra $(PYTEST_ARGS)

# Fault injection on real daemons: SIGKILLed deploys, dockerd/libvirtd/OVS restarts, a
# hanging console, concurrent labs, orphan cleanup during a deploy, invalid topologies.
# They restart daemons: other labs on the host see a short outage.
test-reliability: setup
	$(PYTEST) tests/reliability -q -ra $(PYTEST_ARGS)

lint: venv
	$(RUFF) check .

# Deploys the example lab (two FRR routers in eBGP and a mini-ios VM) through the
# deploy-lab flow, on the local Prefect server (started once, left running for the UI at
# http://127.0.0.1:4200; `archetype server stop` ends it) unless PREFECT_API_URL is set.
demo: setup
	$(ARCHETYPE) validate examples/demo.yml
	$(ARCHETYPE) deploy examples/demo.yml

# `archetype deploy`/`destroy` as processes and REST runs on a worker, against the same lab
# done with the engines alone (benchmarks/results/latest.md); then discovery and VM
# readiness (internals.md), then host wiring alone (time and processes, 10 and 50 links).
bench: setup
	$(PYTHON) benchmarks/run.py
	$(PYTHON) benchmarks/internals.py
	$(PYTHON) benchmarks/network_wiring.py --links 10 50
	$(PYTHON) benchmarks/floor.py

# No lab, no daemon: Prefect alone, on a server of its own (benchmarks/results/floor.md).
bench-floor: venv
	$(PYTHON) benchmarks/floor.py

# The same lab at N = 50, 100, 200, one round each, against benchmarks/baseline_scale.py
# (Debian's FRR start, no marker, readiness = the running config holds the BGP lines):
# per-node cost and memory (benchmarks/results/scale.md). N=200 keeps 2 cores busy for minutes.
bench-scale: setup
	$(PYTHON) benchmarks/scale.py

# Removes every Archetype-owned resource whose lab is not known (deployed and not
# destroyed, from the state artifacts): by markers, never by name.
clean-host: venv
	$(ARCHETYPE) cleanup
	$(ARCHETYPE) server stop

# A simulated fleet (tests/multihost starts it too, once per session). Idempotent.
HOSTS ?= 2
sim-up: setup
	@bash scripts/sim-fleet.sh up $(HOSTS)

sim-down:
	@bash scripts/sim-fleet.sh down
