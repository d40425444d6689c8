# broker_jobs: set-up, tests and local run.
#
#   make run     virtualenv + install + services, then worker, scheduler and web (honcho)
#   make test    virtualenv + install + services, then the whole default test suite
#   make test-cluster  the three-node RabbitMQ cluster suite (about 4 min; CI runs it after make test)
#   make bench   the benchmarks (benchmarks/run.py)
#   make lint    ruff and mypy
#   make audit   pip-audit of the locked runtime dependencies (requirements.lock)
#   make lock    re-resolve requirements.lock (hashes) after a change to pyproject.toml
#   make clean   caches and build output (make distclean also removes .venv)
#
# PYTHON picks the interpreter for the virtualenv (3.11 or newer).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Rebuilt when pyproject.toml or the lock changes, so `make test` does not reinstall every run.
STAMP  := $(VENV)/.installed
# The runtime dependencies, pinned with hashes (pip-compile); the dev and bench extras are not locked.
LOCK   := requirements.lock
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# The console scripts (dramatiq, broker-jobs, honcho) must win over any system copy.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help venv services test test-cluster run bench lint audit lock clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: broker_jobs needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)." >&2; \
	  echo "      Install python3.11 (apt-get install -y python3.11 python3.11-venv) and run: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; \
	  exit 1; }
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  echo "make: $(VENV) has an older Python; recreating it"; rm -rf $(VENV); fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
	  echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install -y python3-venv" >&2; exit 1; }
	$(PIP) install --quiet --require-hashes -r $(LOCK)
	$(PIP) install --quiet -e ".[dev,bench]"
	@$(PIP) check >/dev/null || { $(PIP) check >&2; echo "make: the dev extras conflict with $(LOCK); run make lock" >&2; exit 1; }
	@touch $@

services:
	@bash deploy/ensure-services.sh

# axe-core (npm), injected into the console page by the browser tests' accessibility check.
# As root a missing npm is installed from Debian; without npm the check skips locally and fails in CI.
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	@command -v npm >/dev/null || [ "$$(id -u)" != 0 ] || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null || true
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent && touch $@; \
	else echo "make: npm is missing: the console's accessibility check will skip (CI fails it)" >&2; fi

# Benchmarks live outside tests/ and soak tests are marked `soak`: neither runs here.
# pytest's own exit code passes through: 5 (no test collected) fails the target too.
test: venv services $(AXE)
	$(BIN)/python -m pytest -q -m "not soak" -n 2 --dist loadfile --durations=15 tests

# Three private RabbitMQ nodes under the test's temporary directory: SIGKILLed and cut (tests/framework/cluster),
# then the tests marked also_on_cluster (priorities, retries, dead letters, replay, worker kill, consumer
# timeout, scheduler, wire fuzz) on them with QUEUE_TYPE=quorum (--rabbitmq-cluster: tests/conftest.py).
# The cut is made with iptables: as root a missing iptables is installed from Debian; without it
# (or without root) the network-cut test skips, saying why.
IPTABLES_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables >/dev/null
test-cluster: venv services
	@PATH="$$PATH:/usr/sbin:/sbin" command -v iptables >/dev/null || [ "$$(id -u)" != 0 ] || \
	  $(IPTABLES_INSTALL) 2>/dev/null || { apt-get update -qq && $(IPTABLES_INSTALL); } || \
	  echo "make: iptables could not be installed: the network-cut test will skip" >&2
	$(BIN)/python -m pytest -q --rabbitmq-cluster --durations=10 tests

# The release step runs once here, not under honcho (honcho stops everything when one
# process ends). web comes first so that honcho gives it PORT=API_PORT. honcho sends
# SIGKILL 5 s after the first process exits: running jobs get 3 s after Ctrl-C.
run: venv services
	$(BIN)/broker-jobs setup
	WORKER_SHUTDOWN_TIMEOUT=$${WORKER_SHUTDOWN_TIMEOUT:-3000} \
	  $(BIN)/honcho start -f Procfile -p $${API_PORT:-8000} web worker scheduler

bench: venv services
	@if [ -f benchmarks/run.py ]; then $(BIN)/python benchmarks/run.py; \
	else echo "make: no benchmarks/run.py yet"; fi

lint: venv
	$(BIN)/ruff check broker_jobs tests $(wildcard benchmarks)
	$(BIN)/mypy broker_jobs

# pip-audit checks the exact pinned versions (no resolution, no install), --strict: a
# dependency it cannot look up fails the audit instead of passing as "no known
# vulnerabilities". Exit 1: vulnerabilities found; exit 2: the service could not answer.
AUDIT_UNREACHABLE := could not be audited|Connection|resolve|timed out|Network|unreachable|SSL
audit: venv
	@$(BIN)/pip-audit --version >/dev/null 2>&1 || $(PIP) install --quiet "pip-audit>=2.7,<3"
	@status=0; $(BIN)/pip-audit --requirement $(LOCK) --require-hashes --disable-pip --strict \
	  --progress-spinner off >$(VENV)/audit.out 2>$(VENV)/audit.err || status=$$?; \
	  cat $(VENV)/audit.out; \
	  if [ $$status -ne 0 ] && grep -qE "$(AUDIT_UNREACHABLE)" $(VENV)/audit.err; then \
	    echo "make audit: the vulnerability service cannot be reached or does not know these packages; $(LOCK) was NOT audited" >&2; \
	    grep -E "$(AUDIT_UNREACHABLE)" $(VENV)/audit.err | tail -n 1 | cut -c1-300 >&2; exit 2; fi; \
	  if [ $$status -ne 0 ]; then cat $(VENV)/audit.err >&2; exit $$status; fi; \
	  echo "make audit: $(LOCK): no known vulnerabilities"

# Two passes: every extra resolved together, then the runtime dependencies alone, with
# hashes, constrained by that resolution (so the dev extras install beside the lock).
lock: venv
	@$(BIN)/pip-compile --version >/dev/null 2>&1 || $(PIP) install --quiet "pip-tools>=7.4,<8"
	$(BIN)/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --extra dev --extra bench --output-file $(VENV)/all-extras.txt pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-find-links --constraint $(VENV)/all-extras.txt --output-file $(LOCK) pyproject.toml

clean:
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

distclean: clean
	rm -rf $(VENV)
