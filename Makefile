# Two entry points for a fresh machine (see README.md):
#   make demo   -- create/update .venv, install dazzle, run the main job on built-in demo data
#   make test   -- create/update .venv, install dazzle with its test extra (and the oracles), run pytest
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test venv install install-test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

venv: $(VENV)/bin/python

install: venv
	$(PIP) install -e .

install-test: venv
	$(PIP) install -e ".[test]"

demo: install
	$(PY) -m dazzle demo

test: install-test
	$(PY) -m pytest -q

bench: install-test
	$(PY) benchmarks/bench_kernels.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
