/* MKL's answer to "is this an Intel CPU?", made yes: loaded into the process's global symbol scope before torch
 * (see autoenc/_mkl.py), this definition takes the place of the one inside torch's statically linked MKL. MKL runs
 * its AVX-512 kernels only where that answer is yes, whatever the CPU supports; on AMD CPUs with AVX-512 it otherwise
 * takes its AVX2 ones, at half the speed. MKL still checks each instruction set itself (AVX-512, AMX, ...) before
 * using it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

int mkl_serv_intel_cpu_true(void) { return 1; }

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mkl_cpu",
    "MKL's Intel-CPU check answered yes, for autoenc._mkl to load before torch (importing it does nothing).", -1,
    NULL,
};

PyMODINIT_FUNC PyInit__mkl_cpu(void) { return PyModule_Create(&module); }
