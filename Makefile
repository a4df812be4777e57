# Two entry points for a fresh machine (see README.md):
#   make demo   -- create/update .venv, install dazzle, run the main job on built-in demo data
#   make test   -- create/update .venv, install dazzle with its test extra (and the oracles), run pytest
#                  (one worker per core, pytest-xdist)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test venv install install-test bench bench-scale bench-cr slurm-start slurm-stop test-slurm clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

venv: $(VENV)/bin/python

# An editable install leaves dazzle's modules uncompiled (a wheel's install compiles them), and
# with PYTHONDONTWRITEBYTECODE set Python would compile them again in every process: 0.14 s of
# each `dazzle run`.  compileall writes their bytecode once; an edited module is recompiled.
install: venv
	$(PIP) install -e ".[plot]"
	$(PY) -m compileall -q dazzle

install-test: venv
	$(PIP) install -e ".[test]"
	$(PY) -m compileall -q dazzle

demo: install
	$(PY) -m dazzle demo

# one pytest worker per core; a test file's tests stay in one worker (its module fixtures run once)
test: install-test
	$(PY) -m pytest -q -n auto --dist loadfile

bench: install-test
	$(PY) benchmarks/bench_kernels.py

bench-scale: install-test
	$(PY) benchmarks/bench_scale.py

bench-cr: install-test
	$(PY) benchmarks/crreject_seeds.py --seeds 100-129

# a one-node SLURM cluster on this machine (root, Debian; see deploy/README.md)
slurm-start:
	bash deploy/local-slurm.sh start

slurm-stop:
	bash deploy/local-slurm.sh stop

test-slurm: install-test
	bash deploy/local-slurm.sh start; \
	DAZZLE_SLURM=1 $(PY) -m pytest -q tests/test_cluster.py; rc=$$?; \
	bash deploy/local-slurm.sh stop; exit $$rc

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
