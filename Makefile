# jpki-mock: `make run` and `make test` are all a newcomer needs (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8080
JPKI_MOCK_DATA ?= ./var
export PORT JPKI_MOCK_DATA

.PHONY: run test lint venv bench-crl bench-ocsp bench-ocsp-python bench-seed bench-propagation clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,loadtest]'
	touch $(STAMP)

venv: $(STAMP)

## Start the combined server on 127.0.0.1:$(PORT), initialising the CA in $(JPKI_MOCK_DATA) on first use.
run: $(STAMP)
	$(VENV)/bin/jpki-mock serve --init

## Every test, against SQLite and a throwaway PostgreSQL cluster.
test: $(STAMP)
	$(PY) tests/run.py

## The import contract, ruff and mypy alone (`make test` runs them too; config in pyproject.toml).
lint: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py tests/test_lint.py

bench-crl: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.crl

bench-ocsp: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.ocsp

bench-ocsp-python: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.ocsp_python

bench-seed: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.seed

## Revocation propagation to two PostgreSQL-backed responders (own cluster; docs/ocsp.md "Propagation").
bench-propagation: $(STAMP)
	$(PY) -m jpki_mock.loadtest.bench.propagation

clean:
	rm -rf $(VENV) var work .pytest_cache
