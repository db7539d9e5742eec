"""Which machine a benchmark's figures come from, and how far its repeats spread.

Every benchmark prints :func:`machine_line` beside its figures: the CPU model, the kernel level torch dispatches to
(``torch.backends.cpu.get_cpu_capability()``, which ``ATEN_CPU_CAPABILITY`` can lower) and numpy's BLAS as
threadpoolctl finds it, since the same code runs at very different speeds (and ratios) on other kernels.
"""
from __future__ import annotations

import os
import platform
import subprocess
import time


def cpu_model():
    """The CPU's model name, with family/model numbers where the name is generic (as under a hypervisor)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor describes them all
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or _lscpu("Model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{name}, {os.cpu_count()} logical CPUs"


def _lscpu(field):
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return next((line.partition(":")[2].strip() for line in out.splitlines() if line.startswith(field + ":")), "")


def torch_kernels():
    """torch's CPU capability (``AVX512``, ``AVX2``, ``DEFAULT``, ...), or what stands in for it."""
    import torch

    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return get() if get else "unknown (torch too old to say)"


def numpy_blas():
    """numpy's BLAS library and the core type its kernels were chosen for, as threadpoolctl reports them."""
    import numpy  # noqa: F401  (loads its BLAS, so that threadpoolctl sees it)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    mine = [lib for lib in blas if "numpy" in lib.get("filepath", "")] or blas
    return ", ".join(f"{lib.get('internal_api')} {lib.get('version') or ''} ({lib.get('architecture') or '?'})"
                     .replace("  ", " ") for lib in mine) or "none found"


def mkl_kernels():
    """Which of MKL's kernels torch's products run: ``autoenc._mkl`` tells MKL the CPU is Intel's on AMD CPUs, so
    that it takes its AVX-512 kernels (where the benchmark imported autoenc before torch)."""
    import torch

    if not torch.backends.mkl.is_available():
        return "no MKL"
    from autoenc import _mkl

    return "MKL told the CPU is Intel's (autoenc._mkl)" if _mkl.ACTIVE else "MKL's own choice of kernels"


def machine_line():
    """One line naming the machine: CPU, torch's kernel level and MKL's, numpy's BLAS."""
    import torch

    return (f"machine: {cpu_model()}; torch {torch.__version__} CPU capability {torch_kernels()}, "
            f"{mkl_kernels()}; numpy BLAS {numpy_blas()}")


def span(values, fmt="{:.2f}", unit=""):
    """``min-max`` of repeated measurements (one value when there was one repeat), e.g. ``0.90-1.07x``."""
    values = list(values)
    low, high = min(values), max(values)
    if len(values) == 1 or fmt.format(low) == fmt.format(high):
        return fmt.format(low) + unit
    return f"{fmt.format(low)}-{fmt.format(high)}{unit}"


def matmul_peak(size=2048, repeats=3, kernel="mm"):
    """Best float32 FLOP per CPU-second of one (size, size) product on one thread: the peak that training rates are
    held against.

    ``kernel="mm"``: ``torch.mm`` (torch's BLAS: MKL on x86, which runs its AVX2 kernels on non-Intel CPUs even
    where they have AVX-512, unless ``autoenc._mkl`` told it the CPU is Intel's: import autoenc before torch);
    ``"onednn"``: oneDNN's dense linear (``torch.ops.mkldnn._linear_pointwise``, which the
    stacked trainer uses for wide layers where the rule in ``autoenc._kernels`` says so), None where torch has none.
    The faster of the two is the machine's float32 peak as far as torch can reach it.
    """
    import torch

    if kernel == "onednn":
        linear = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
        if linear is None or not torch.backends.mkldnn.is_available():
            return None
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        out = torch.empty(size, size)
        product = ((lambda: torch.mm(a, b, out=out)) if kernel == "mm"
                   else (lambda: linear(a, b, None, "none", [], "")))
        product()
        best = 0.0
        for _ in range(repeats):
            start = time.process_time()
            product()
            best = max(best, 2 * size**3 / (time.process_time() - start))
        return best
    finally:
        torch.set_num_threads(previous)
