# tokenshare: `make demo` runs the main job, `make test` the whole suite.
# Both install what they need (system packages if missing, then a local venv).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install system-deps tools demo test unit lint typecheck check reliability stack-up stack-down clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

system-deps:  ## Java 17 and Maven (Kafka broker), npm and Chromium (dashboard) (apt, only if missing)
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  echo "installing Java 17 and Maven for the local Kafka broker"; \
	  apt-get update -q && apt-get install -y -q openjdk-17-jre-headless maven; }
	@command -v $(PYTHON) >/dev/null || command -v python3 >/dev/null || { \
	  apt-get update -q && apt-get install -y -q python3 python3-venv; }
	@# one at a time: a machine whose Node.js ships its own npm cannot take Debian's npm package
	@command -v npm >/dev/null || { \
	  echo "installing npm (the dashboard's chart library)"; \
	  apt-get update -q && apt-get install -y -q npm; }
	@command -v chromium >/dev/null || { \
	  echo "installing Chromium (the dashboard's browser tests)"; \
	  apt-get update -q && apt-get install -y -q chromium; }

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null && PY=$(PYTHON) || PY=python3; \
	  $$PY -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

install: system-deps $(STAMP)  ## venv with tokenshare and its dev tools, the dashboard's chart library
	@$(BIN)/python -m tokenshare.dashboard.vendor

demo: install  ## the main job: Kafka + worker + embedded ClickHouse + simulated market
	$(BIN)/tokenshare demo

lint: install  ## ruff, and the import contracts of pyproject.toml ([tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install  ## mypy --strict
	$(BIN)/mypy

unit: install  ## tests that need no broker (tests/unit, under a minute on 2 cores)
	$(BIN)/pytest -n 2 tests/unit

tools: install  ## build Alertmanager, Prometheus and promtool from the Go module proxy, once (needs go)
	$(BIN)/tokenshare stack tools

test: install lint typecheck tools  ## lint, types, then every test against a real broker and ClickHouse
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest

reliability: install  ## the fault and recovery scenarios and the burst, rewriting the figures in tests/RELIABILITY.md
	TOKENSHARE_RELIABILITY_REPORT=tests/RELIABILITY.md $(BIN)/pytest -p no:cacheprovider \
	  tests/integration/end_to_end/test_reliability.py \
	  tests/integration/end_to_end/test_recovery.py \
	  tests/integration/soak/test_burst.py

stack-up: install  ## start the local Kafka broker
	$(BIN)/tokenshare stack up

stack-down: install  ## stop it
	$(BIN)/tokenshare stack down

clean:  ## remove local data (.tokenshare) and the venv
	-$(BIN)/tokenshare stack down 2>/dev/null
	rm -rf .tokenshare $(VENV)

.PHONY: fuzz soak
FUZZ_SECONDS ?= 60

fuzz: install  ## fuzz the events decoder for FUZZ_SECONDS (default 60); prints executions and crashes
	$(BIN)/python -m tokenshare.bench.fuzz_decode -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1

soak: install  ## steady load through worker and store (TOKENSHARE_SOAK_SECONDS, default 600); writes tests/integration/soak/last_run.json
	TOKENSHARE_SOAK_REPORT=1 $(BIN)/pytest tests/integration/soak -p no:cacheprovider

.PHONY: bench
bench: install  ## benchmarks (own Kafka broker, ratios against baselines, targets) -> bench/RESULTS.md
	$(BIN)/tokenshare bench
