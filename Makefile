# jpki-mock: `make run` and `make test` are all a newcomer needs (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two stamps: `make run` installs the runtime dependencies only; `make test` adds the test and
# load-test extras (pytest, linters, Playwright, Locust, matplotlib...).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-test
JPKI_MOCK_DATA ?= ./var
export JPKI_MOCK_DATA
# No default PORT here: PORT, HOST and the JPKI_MOCK_* settings reach the server only when given
# (`PORT=18080 make run` or `make run PORT=18080`, which make exports too); a default would
# override what the data directory's config.toml recorded (docs/configuration.md, precedence).

.PHONY: run test lint venv bench-crl bench-ocsp bench-ocsp-python bench-seed bench-scale bench-propagation clean

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[test,loadtest]'
	touch $(STAMP)

venv: $(STAMP)

## Start the combined server on 127.0.0.1:8080 (or PORT, or what config.toml recorded), initialising
## the CA in $(JPKI_MOCK_DATA) on first use.  `exec`: Ctrl-C and SIGTERM go to the server itself.
run: $(RUN_STAMP)
	exec $(VENV)/bin/jpki-mock serve --init

## Every test, against SQLite and a throwaway PostgreSQL cluster, on two pytest-xdist workers (one per core).
test: $(STAMP)
	$(PY) tests/run.py -n 2

## The import contract, ruff and mypy alone (`make test` runs them too; config in pyproject.toml).
lint: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py tests/test_lint.py

bench-crl: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.crl

bench-ocsp: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.ocsp

bench-ocsp-python: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.ocsp_python

## Seeding rate, median of 3 (BENCH_SEED_ARGS: --holders N, --lazy for records only, --postgres into a throwaway cluster).
bench-seed: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.seed $(BENCH_SEED_ARGS)

## The responder over 10,000 and 10,000,000 lazily seeded certificate records (docs/loadtest.md "National scale").
bench-scale: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.scale $(BENCH_SCALE_ARGS)

## Revocation propagation to two PostgreSQL-backed responders (own cluster; docs/ocsp.md "Propagation").
bench-propagation: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.propagation

clean:
	rm -rf $(VENV) var work .pytest_cache
