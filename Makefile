# `make study` installs everything into .venv and runs the default study; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: study test bench clean

$(VENV)/.installed: setup.cfg setup.py pyproject.toml constraints.txt autoenc/_mkl_cpu.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,distributed]"
	touch $@

study: $(VENV)/.installed
	$(PY) scripts/study.py

# The tests that compare against numbers stored on another machine run again with other float kernels (ATen without
# AVX, OpenBLAS and MKL on older cores): rounding changes, and they must hold within their stated tolerance.
OTHER_KERNELS := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=AVX2 \
	$(if $(filter x86_64,$(shell uname -m)),OPENBLAS_CORETYPE=Sandybridge)

test: $(VENV)/.installed
	$(PY) -m pytest -q
	$(OTHER_KERNELS) $(PY) -m pytest -q -m portable

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_study.py

clean:
	rm -rf $(VENV) runs
