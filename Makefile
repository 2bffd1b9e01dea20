# The two commands a newcomer needs:
#   make run    install into .venv and start the whole stack locally (embedded defaults)
#   make test   install into .venv and run every check and test
# Everything else is a step of those two, or a tool for maintainers.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser tests (tests/browser) drive Debian's Chromium: Playwright cannot download its own here.
CHROMIUM := /usr/bin/chromium

.PHONY: run test install lint typecheck protos protos-check docs docs-check migrate bench bench-dashboard bench-webhooks bench-stack breaking clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(CHROMIUM):
	apt-get install -y chromium || (apt-get update && apt-get install -y chromium)

run: $(STAMP)
	$(PY) scripts/run_local.py

test: lint typecheck $(CHROMIUM)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

protos: $(STAMP)
	$(BIN)/buf format -w
	$(PY) scripts/gen_protos.py

protos-check: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code
	$(PY) scripts/gen_protos.py --check

# The generated sections of docs/api.md (REST from the OpenAPI document, gRPC from the protos).
docs: $(STAMP)
	$(PY) scripts/gen_api_docs.py

docs-check: $(STAMP)
	$(PY) scripts/gen_api_docs.py --check

migrate: $(STAMP)
	$(PY) -m credits_svc migrate
	$(PY) -m payments_svc migrate
	$(PY) -m subscriptions_svc migrate

bench: $(STAMP)
	$(PY) bench/credits_bench.py $(BENCH_ARGS)

bench-dashboard: $(STAMP)
	$(PY) bench/dashboard_bench.py $(BENCH_ARGS)

bench-webhooks: $(STAMP)
	$(PY) bench/webhook_bench.py $(BENCH_ARGS)

# The whole stack on PostgreSQL, every figure next to its baseline (docs/performance.md); BENCH_ARGS="--quick": ~1 min.
bench-stack: $(STAMP)
	$(PY) bench/stack_bench.py $(BENCH_ARGS)

# Compares the protos with those of the previous commit on main (skipped when there is none).
breaking: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" scripts/buf_breaking.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
