# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install clean migrate bench

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

migrate: $(STAMP)
	$(PY) -m flask --app wsgi db upgrade

clean:
	rm -rf $(VENV) instance/*.db instance/redis
