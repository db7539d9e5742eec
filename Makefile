# `make study` installs everything into .venv and runs the default study; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: study test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,distributed]"
	touch $@

study: $(VENV)/.installed
	$(PY) scripts/study.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_study.py

clean:
	rm -rf $(VENV) runs
