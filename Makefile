# broker_jobs: set-up, tests and local run.
#
#   make run     virtualenv + install + services, then worker, scheduler and web (honcho)
#   make test    virtualenv + install + services, then the whole default test suite
#   make bench   the benchmarks (benchmarks/run.py)
#   make lint    ruff and mypy
#   make clean   caches and build output (make distclean also removes .venv)
#
# PYTHON picks the interpreter for the virtualenv (3.11 or newer).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Rebuilt when pyproject.toml changes, so `make test` does not reinstall every run.
STAMP  := $(VENV)/.installed
# The console scripts (dramatiq, broker-jobs, honcho) must win over any system copy.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help venv services test run bench lint clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: broker_jobs needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)." >&2; \
	  echo "      Install python3.11 (apt-get install -y python3.11 python3.11-venv) and run: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; \
	  exit 1; }
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  echo "make: $(VENV) has an older Python; recreating it"; rm -rf $(VENV); fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
	  echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install -y python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	@touch $@

services:
	@bash deploy/ensure-services.sh

# Benchmarks live outside tests/ and soak tests are marked `soak`: neither runs here.
# pytest's own exit code passes through: 5 (no test collected) fails the target too.
test: venv services
	$(BIN)/python -m pytest -q -m "not soak" -n 2 --dist loadfile --durations=15 tests

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

clean:
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

distclean: clean
	rm -rf $(VENV)
