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

.PHONY: run test check lint typecheck bench clean wheelhouse wheelhouse-index release soak

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

# Two workers (pytest-xdist): the suite spends about half its time waiting on real
# processes, sockets and timers. `make test PYTEST_ARGS=-n0` runs it in one process.
PYTEST_ARGS ?= -n 2
test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check keys

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

check: lint typecheck test

# The long versions of the attack and accident tests (docs/threat-model.md), for an
# operator to run before an upgrade: 100 rounds of SIGKILL under load instead of 20;
# 1,000 reports at once beside 500 logins instead of 6 and 40; 25 kills instead of 3 of
# each kind on the staff side (export, ack, outbox) and in the client (import, saves,
# outbox bundle, the UI); 100,000 generated hostile requests instead of 10,000, 5,000
# examples per parser instead of 100, and a minute of atheris per parser
# (docs/testing.md). A failing crash run prints its AMANA_CRASH_SEED=N, a failing fuzz
# run its AMANA_FUZZ_SEED=N; setting it replays the same run.
soak: $(TEST_STAMP)
	AMANA_SOAK_ROUNDS=100 $(BIN)/python -m pytest tests/integration/test_crash_under_load.py
	AMANA_SOAK_FLOOD_SUBMISSIONS=1000 AMANA_SOAK_FLOOD_LOGINS=500 \
	    $(BIN)/python -m pytest tests/integration/test_floods.py
	AMANA_SOAK_KILLS=25 $(BIN)/python -m pytest tests/integration/test_crash_staff.py \
	    tests/journalist_client/test_crash_client.py
	AMANA_FUZZ_REQUESTS=100000 AMANA_FUZZ_EXAMPLES=5000 AMANA_ATHERIS_RUNS=200000 \
	    AMANA_ATHERIS_SECONDS=60 $(BIN)/python -m pytest \
	    tests/integration/test_generated_requests.py tests/test_parser_fuzz.py \
	    tests/test_atheris.py tests/journalist_client/test_transfer_responses_fuzz.py \
	    tests/intake_server/staff/test_bundle_fuzz.py

# Every benchmark at full size (bench/run_all.py, about 5 minutes): rewrites each one's
# table in docs/benchmarks.md with the date and the machine. Run it on a quiet machine.
# Options through BENCH: `make bench BENCH="--only upload vault"`, `BENCH=--dry-run`
# (show the diff, write nothing), `BENCH=--quick` (small sizes, prints only).
BENCH ?=

bench: $(TEST_STAMP)
	$(BIN)/python bench/run_all.py $(BENCH)

# An offline install kit for the server, the transfer machine and the air-gapped client
# (deploy/README.md): the wheel of this project and of every runtime dependency, without
# the test extras, plus SHA256SUMS and requirements.txt. requirements.txt pins every
# wheel by name, version and sha256 hash, so that `pip install --require-hashes -r`
# installs exactly these files into a new venv, also a rebuilt wheel of an unchanged
# version, and nothing else. Built in a throwaway venv so nothing from the dev .venv
# leaks in. The wheels fit this machine's platform and Python: build on Debian 12 amd64
# (Python 3.11) for Debian 12 amd64. build/ goes first: setuptools reuses build/lib, so
# a module deleted from the source would otherwise still ship in the wheel.
WHEELHOUSE := wheelhouse
BUILD_VENV := build/wheel-venv

wheelhouse:
	rm -rf $(WHEELHOUSE) build
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip wheel --quiet --wheel-dir $(WHEELHOUSE) .
	rm -rf build
	$(MAKE) --no-print-directory wheelhouse-index WHEELHOUSE=$(WHEELHOUSE)

# SHA256SUMS and requirements.txt for the wheels in $(WHEELHOUSE) (also used by
# tests/deploy on a copy with one rebuilt wheel). A wheel's file name is
# NAME-VERSION-...whl, and neither part holds a "-" (PEP 427).
wheelhouse-index:
	cd $(WHEELHOUSE) && sha256sum *.whl > SHA256SUMS
	cd $(WHEELHOUSE) && awk '{ split($$2, p, "-"); \
	    printf "%s==%s --hash=sha256:%s\n", p[1], p[2], $$1 }' SHA256SUMS > requirements.txt

# Tag the version in pyproject.toml as vVERSION, once CHANGELOG.md has its section and
# the tree is committed (docs/operations.md, "Releases"). Signed with your git key;
# `make release TAG_SIGN=-a` makes an unsigned annotated tag.
VERSION  := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
TAG_SIGN ?= -s

release:
	@test -n "$(VERSION)" || { echo "release: no version in pyproject.toml" >&2; exit 1; }
	@git diff --quiet HEAD -- || { echo "release: commit your changes first" >&2; exit 1; }
	@grep -q '^## \[$(VERSION)\]' CHANGELOG.md || \
	    { echo "release: CHANGELOG.md has no '## [$(VERSION)]' section" >&2; exit 1; }
	@! git rev-parse -q --verify refs/tags/v$(VERSION) >/dev/null || \
	    { echo "release: v$(VERSION) is already tagged" >&2; exit 1; }
	git tag $(TAG_SIGN) -m "Amana $(VERSION)" v$(VERSION)
	@echo "Tagged v$(VERSION). Push the tag, then build the wheelhouse from it: make wheelhouse"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
