# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
# Some machines set PYTHONDONTWRITEBYTECODE; then every run recompiles Django, hypothesis and the
# rewritten test modules from source (about half of `make check`'s time). Let Python cache them.
unexport PYTHONDONTWRITEBYTECODE
PY := .venv/bin/python
# uv is bootstrapped with pip when the machine does not have it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: run test check lint typecheck pytest bench clean

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

bench: .venv/.synced
	$(PY) bench/redaction_bench.py
	$(PY) bench/ingest_bench.py
	$(PY) bench/sweep_bench.py

clean:
	@if [ -f var/redis.pid ]; then kill "$$(cat var/redis.pid)" 2>/dev/null || true; fi
	rm -rf var .venv
