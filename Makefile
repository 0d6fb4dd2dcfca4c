# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
# Some machines set PYTHONDONTWRITEBYTECODE; then every run recompiles Django, hypothesis and the
# rewritten test modules from source (about half of `make check`'s time). Let Python cache them.
unexport PYTHONDONTWRITEBYTECODE
PY := .venv/bin/python
# uv is bootstrapped with pip when the machine does not have it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: run test check lint typecheck pytest bench bench-offline clean

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

run: .venv/.synced
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) -m config.embedded run

lint: .venv/.synced
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: .venv/.synced
	$(PY) -m mypy .

# Tests get their own Redis (or database number), channel prefix, queue and files, so they never
# meet a running `make run` or another test run (config/embedded.py, run_tests).
pytest: .venv/.synced
	$(PY) -m config.embedded test $(PYTEST_ARGS)

test: lint typecheck pytest

# The fast inner loop: lint, types and the tests that need no real processes or browser.
check: lint typecheck
	$(PY) -m config.embedded test -q -n 2 -m "not integration and not browser and not slow" $(PYTEST_ARGS)

# Every server bench against a real daphne on PostgreSQL + Redis, each with its raw floor in the
# same run (bench/harness.py: BENCH_PG_URL, BENCH_REDIS_URL, BENCH_PREFIX), then the plot and the
# tables in docs/benchmarks.md. 10-20 minutes; the 1M-session database is kept and reused
# (BENCH_LIST_ARGS= to reload it). BENCH_QUICK=1 runs small sizes in a few minutes.
BENCH_QUICK ?=
BENCH_LIST_ARGS ?= --reuse
QUICK := $(if $(BENCH_QUICK),--quick)
bench: .venv/.synced
	$(PY) bench/ingest_bench.py $(QUICK)
	$(PY) bench/live_latency_bench.py $(QUICK)
	$(PY) bench/list_bench.py $(BENCH_LIST_ARGS) $(QUICK)
	$(PY) bench/sockets_bench.py $(QUICK)
	$(PY) bench/push_poll_bench.py $(QUICK)
	$(PY) bench/plot.py
	$(PY) bench/report.py

# The benches that need no server: redaction throughput and the policy sweeps (own database).
bench-offline: .venv/.synced
	$(PY) bench/redaction_bench.py
	DATABASE_URL=$${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}/postgres \
		$(PY) bench/sweep_bench.py

clean:
	@if [ -f var/redis.pid ]; then kill "$$(cat var/redis.pid)" 2>/dev/null || true; fi
	rm -rf var .venv
