# Two entry points, both doing their own set-up on a fresh machine:
#   make demo   the main job on the embedded default (local FHIR server, sample LIS feed)
#   make test   lint, type-check and the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
NODE_DIR := adapter/dev_fhir

.PHONY: setup demo test lint clean chromium postgres docs promtool bench bench-quick

setup: $(VENV)/.installed $(NODE_DIR)/node_modules/.package-lock.json

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error

demo: setup
	$(BIN)/trialbridge demo

lint: setup
	$(BIN)/ruff check adapter tests
	$(BIN)/ruff format --check adapter tests
	$(BIN)/mypy

# The report's HTML is opened in a real headless browser by the tests: Debian's chromium.
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

# The tests start a throwaway PostgreSQL cluster from the installed binaries (tests/postgres.py),
# or use the server named by TRIALBRIDGE_TEST_POSTGRES_URL.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql)

# The documentation site (mkdocs.yml), built in strict mode: a broken link or reference fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict --quiet

# The alert rules (deploy/prometheus/) are checked and unit-tested by promtool (tests/test_alerts.py):
# Debian's prometheus package, installed only when missing.
promtool:
	@command -v promtool >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus)

test: lint chromium postgres docs promtool
	$(BIN)/pytest

# The project's mapping suite alone (tests/mapping-suite; docs/engineers/mappings.md): every
# message against its expected outcome. make test runs it too (tests/test_mappings_suite.py).
.PHONY: mapping-suite
mapping-suite: setup
	$(BIN)/trialbridge mappings test tests/mapping-suite

# The performance benchmark (README "Performance"): every scenario with its baseline, one
# table, the same figures in var/bench-results.json. bench-quick runs them small (about a minute).
bench: setup
	$(BIN)/python -m adapter.bench --json var/bench-results.json

bench-quick: setup
	$(BIN)/python -m adapter.bench --quick --json var/bench-results.json

# The long fuzz campaign (docs/operations/bad-input.md): 100,000 seeded mutants of the corpus
# and the simulated feed through translate and the MLLP per-message path; failing inputs in
# var/fuzz/. FUZZ_MUTANTS, FUZZ_SEED and FUZZ_JOBS change its size, seed and processes.
FUZZ_MUTANTS ?= 100000
FUZZ_SEED ?= 1
FUZZ_JOBS ?= 1
fuzz: setup
	$(BIN)/python -m adapter.fuzz --mutants $(FUZZ_MUTANTS) --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS) --out var/fuzz

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules demo-out
