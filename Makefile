# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK_OPTIONS := --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host

.PHONY: run test test-fast lint format bench install lock clean migrate

# requirements*.txt are compiled from requirements*.in by `make lock`: every transitive package pinned
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## make run: the whole desk on embedded defaults (SQLite, embedded Redis, paper broker, demo data)
run: $(STAMP)
	$(PY) -m webapp.launcher

## make test: the whole suite (embedded defaults, or DATABASE_URL / REDIS_URL when set)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## make test-fast: the suite without the tests that start real processes (chaos, launcher, browser)
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## make lint: ruff's checks and formatting check, as CI runs them (settings in pyproject.toml)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## make format: sort the imports and format the code with ruff
format: $(STAMP)
	$(VENV)/bin/ruff check --select I --fix .
	$(VENV)/bin/ruff format .

## make bench: every benchmark at a small size, each printing its one JSON line (sizes: docs/BENCHMARKS.md)
bench: $(STAMP)
	$(PY) bench/fanout.py --clients 5 --rtt-ms 20 --rounds 3
	$(PY) bench/reprice.py --clients 20 --positions 5 --instruments 50 --rounds 3 --quiet-rounds 2 --job-rounds 1
	$(PY) bench/pages.py --clients 20 --positions 5 --instruments 50 --requests 5 --warmup 1 --in-process 1
	$(PY) bench/feed.py --sockets 5 --instruments 20 --seconds 3 --warmup 1 --users 2 --tokens-per-socket 5
	$(PY) bench/orphans.py --clients 10 --rtt-ms 500 --kill-after 0.05 --runs 1 --limit 90
	$(PY) -m bench.redis_outage --samples 1
	$(PY) bench/api.py --clients 5 --rtt-ms 20 --rounds 3 --hook-rounds 3

## make lock: after editing requirements.in or requirements-dev.in, pin every transitive package again
lock: $(STAMP)
	$(VENV)/bin/pip-compile --quiet $(LOCK_OPTIONS) --output-file requirements.txt requirements.in
	$(VENV)/bin/pip-compile --quiet $(LOCK_OPTIONS) --output-file requirements-dev.txt requirements-dev.in

migrate: $(STAMP)
	$(PY) -m flask --app wsgi db upgrade

clean:
	rm -rf $(VENV) instance/*.db instance/redis
