"""The metadata is in setup.cfg; this file adds the one compiled part, optional: without a C compiler autoenc
installs and runs as well, with MKL's own choice of kernels (see autoenc/_mkl.py)."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("autoenc._mkl_cpu", ["autoenc/_mkl_cpu.c"], optional=True)])
