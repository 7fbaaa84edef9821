# One entry point for contributors and CI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8080

.PHONY: install run test test-sqlite test-fast bench bench-million bench-shards soak chaos lint format clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Start the embedded default: web + API + scheduler + agent in one process, on SQLite.
run: $(STAMP)
	$(BIN)/python manage.py serve --port $(PORT)

## The whole test suite (real PostgreSQL, Redis, Celery workers), then the API, services,
## firing, runs, UI and admin tests again on SQLite (the embedded default). CI runs exactly this.
SQLITE_TESTS := tests/web/test_filters.py tests/web/api tests/web/ui tests/web/admin tests/jobs tests/agent tests/scheduler \
	tests/operations tests/processors tests/notifications
test: $(STAMP)
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-sqlite

## The SQLite pass of `make test` alone.
test-sqlite: $(STAMP)
	DKRON_TEST_DATABASE=sqlite $(BIN)/pytest -m "not e2e and not browser and not postgresql" $(SQLITE_TESTS)

## The quick subset (no agent/scheduler processes, PostgreSQL only), about four minutes.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not e2e"

## The scheduler benchmark beside its baselines (stock django-celery-beat, raw Celery), and
## beside the last accepted full-mode figures (ACCEPTED) as ratios of ratios (bench/README.md).
## MODE=micro (~20 s), quick (< 2 min, default) or full (the issue's sizes, ~15 min);
## GUARD=1 exits 3 on a large loss against the accepted figures (what CI's smoke test checks).
MODE ?= quick
ACCEPTED ?= bench/results/accepted-full.json
GUARD ?=
bench: $(STAMP)
	$(BIN)/python -m bench.run --mode $(MODE) --accepted $(ACCEPTED) $(if $(GUARD),--guard)

## A million jobs on one PostgreSQL (COPY seeding, scheduler memory, change and API latency, a
## top-of-the-hour burst of 100,000): about 5 minutes. JOBS= and BURST= change the sizes.
JOBS ?= 1000000
BURST ?= 100000
bench-million: $(STAMP)
	$(BIN)/python -m bench.million --jobs $(JOBS) --burst $(BURST)

## Firing with 1, 2 and 4 active schedulers over shards (bench/shards.py, docs/benchmarks.md).
bench-shards: $(STAMP)
	$(BIN)/python -m bench.shards

## The soak: a real cluster under API load, one agent killed midway; fails on any lost,
## duplicated or stuck execution or API 5xx. MODE=micro (~20 s), short (~2 min, the default
## here: MODE's `quick` above is the benchmark's) or full (~5 min).
soak: $(STAMP)
	$(BIN)/python -m bench.soak --mode $(if $(filter file,$(origin MODE)),short,$(MODE))

## The fault checker (docs/reliability.md): a cluster on private PostgreSQL and Redis, random
## faults on a seeded schedule, every fire matched by exactly one run within its bound.
## DURATION=20m (faults for that long; empty: the CI's short mode, each fault once, ~2.5 min),
## SEED=N to replay a run (the checker prints the seed first; random when empty).
DURATION ?=
SEED ?=
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(if $(DURATION),--duration $(DURATION),--short) \
		$(if $(SEED),--seed $(SEED))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports  # the layering contracts in pyproject.toml (docs/layout.md)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
.PHONY: docs
docs: $(STAMP) ; $(BIN)/python -m tools.executor_docs
