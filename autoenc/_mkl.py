"""MKL's AVX-512 kernels on AMD CPUs: loaded before torch, a one-line library answers MKL's "Intel CPU?" with yes.

torch's float32 ``mm``/``bmm``/``linear`` on the CPU run MKL, which takes its AVX-512 kernels on Intel CPUs only: on
AMD CPUs with AVX-512 (Zen 4 and 5) it runs its AVX2 ones, about 100 GFLOP/s on one Zen 5 core where its AVX-512
ones reach 180-250 (measured: ``torch.bmm`` of 2 x 64 x 64 @ 2 x 64 x 1024 in 80 us against 178; 2048^3 at 247
GFLOP/s against 107). MKL asks ``mkl_serv_intel_cpu_true()``; the extension ``autoenc._mkl_cpu`` defines it to
return 1, and loaded into the global symbol scope before torch's own library, it is the definition torch's MKL
calls. MKL still checks for AVX-512 itself before using it; the results are MKL's Intel ones, which round
differently from its AVX2 kernels (the last float32 digits of a product).

This must happen before ``import torch`` in the process, so it is done on import, the one global setting autoenc
makes there: asked for by a function instead, a Python session that did not ask would train other numbers than the
command lines and the study's workers on the same machine. ``import autoenc`` does it, and ``analysis``, the command
lines, the study's workers, the tests and the benchmarks import autoenc before torch. Where torch came first, MKL
keeps its own choice and ``ACTIVE`` stays False; the batched trainer then takes oneDNN for wide products instead
(``autoenc._kernels``). ``AUTOENC_MKL_AVX512=0`` turns it off. Only on AMD CPUs with AVX-512 (elsewhere the answer
is already right, or its effect unmeasured), and only where the extension was built (a C compiler at install: it is optional).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import sys

ACTIVE = False  # whether this process runs MKL's Intel kernels through the extension


@functools.cache
def _cpuinfo():
    """The first processor's fields in /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_vendor():
    """The CPU's vendor_id in /proc/cpuinfo (``GenuineIntel``, ``AuthenticAMD``, ...); '' where there is none."""
    return _cpuinfo().get("vendor_id", "")


def _amd_avx512():
    """An AMD CPU with AVX-512 (Zen 4 and 5): where the answer was measured to matter."""
    return cpu_vendor() == "AuthenticAMD" and "avx512f" in _cpuinfo().get("flags", "").split()


def load():
    """Load the extension where it applies (see the module's text); returns ``ACTIVE``. Idempotent.

    Where it would apply but torch is already loaded, warns once: MKL keeps its AVX2 kernels in this process, so
    its products run at half the speed and its numbers differ in their last digits from a study's.
    """
    global ACTIVE
    setting = os.environ.get("AUTOENC_MKL_AVX512", "")
    if setting not in ("", "0", "1"):
        raise ValueError(f"AUTOENC_MKL_AVX512 must be 0 (off), 1 or unset (on where it applies), got {setting!r}")
    if ACTIVE or setting == "0":
        return ACTIVE
    if not sys.platform.startswith("linux") or not _amd_avx512():
        return ACTIVE
    spec = importlib.util.find_spec("autoenc._mkl_cpu")
    if spec is None or not spec.origin or not spec.origin.endswith(".so"):
        return ACTIVE
    if "torch" in sys.modules:
        import warnings

        warnings.warn("torch was imported before autoenc: MKL keeps its AVX2 kernels on this AMD CPU, so torch's "
                      "float32 products run at about half the speed and round differently from a study's (its "
                      "processes import autoenc first). Import autoenc before torch, or set AUTOENC_MKL_AVX512=0 to "
                      "keep MKL's own choice without this warning.", RuntimeWarning, stacklevel=3)
        return ACTIVE
    import ctypes

    try:
        ctypes.CDLL(spec.origin, mode=os.RTLD_GLOBAL)
    except OSError:
        return ACTIVE
    ACTIVE = True
    return ACTIVE
