# Two commands set everything up on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make run    create .venv, install, run the demo on embedded defaults
#   make test   create .venv, install the test extras, run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two installs: `make run` needs only the runtime dependencies; the test extras
# (Playwright, mypy, ruff, Hypothesis...) come with the first `make test` or `make check`.
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# `make run PORT=8090 DIR=/tmp/demo` when 8080 is taken or a second demo is wanted.
PORT ?= 8080
DIR  ?= ./demo

.PHONY: run test check lint typecheck bench clean wheelhouse soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The intake server on embedded defaults: a demo install in $(DIR) (two demo desks whose
# identities are unprotected, for `age -d -i`), served on http://127.0.0.1:$(PORT)/.
run: $(RUN_STAMP)
	$(BIN)/intake-server demo --dir $(DIR) --port $(PORT)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check keys

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

check: lint typecheck test

# The long versions of the attack and accident tests (docs/threat-model.md), for an
# operator to run before an upgrade: 100 rounds of SIGKILL under load instead of 20.
soak: $(TEST_STAMP)
	AMANA_SOAK_ROUNDS=100 $(BIN)/python -m pytest tests/integration/test_crash_under_load.py

bench: $(TEST_STAMP)
	$(BIN)/python bench/age_throughput.py

# An offline install kit for the air-gapped client (deploy/README.md, section 5): the
# wheel of this project and of every runtime dependency, without the test extras, plus
# SHA256SUMS. Built in a throwaway venv so nothing from the dev .venv leaks in. The
# wheels fit this machine's platform and Python: build on Debian 12 amd64 (Python 3.11)
# for Debian 12 amd64. build/ goes first: setuptools reuses build/lib, so a module
# deleted from the source would otherwise still ship in the wheel.
WHEELHOUSE := wheelhouse
BUILD_VENV := build/wheel-venv

wheelhouse:
	rm -rf $(WHEELHOUSE) build
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip wheel --quiet --wheel-dir $(WHEELHOUSE) .
	cd $(WHEELHOUSE) && sha256sum *.whl > SHA256SUMS
	rm -rf build

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
