"""MKL's Intel kernels on AMD CPUs (``autoenc._mkl``): on where it applies and only there, before torch only, and
what it computes is the product to float32 rounding, by other kernels than MKL's own choice."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from autoenc import _mkl

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
if sys.argv[1] == "torch-first":
    import torch
import autoenc
import torch
from autoenc import _mkl, _kernels
torch.manual_seed(0)
a, b = torch.randn(3, 64, 1024), torch.randn(3, 1024, 96)
print(json.dumps({"active": _mkl.ACTIVE, "product": torch.bmm(a, b).flatten().tolist(),
                  "a": a.tolist(), "b": b.tolist(), "onednn": _kernels.use_onednn(torch.float32, "cpu")}))
"""


def _probe(order="autoenc-first", **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("AUTOENC_MKL_AVX512", "AUTOENC_ONEDNN")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", PROBE, order], capture_output=True, text=True, check=True,
                          env={**environ, **env})
    return {**json.loads(done.stdout), "stderr": done.stderr}


def _in_this_process():
    """What :data:`PROBE` prints, computed here (same seed, same products)."""
    import torch

    from autoenc import _kernels

    with torch.random.fork_rng():
        torch.manual_seed(0)
        a, b = torch.randn(3, 64, 1024), torch.randn(3, 1024, 96)
    return {"active": _mkl.ACTIVE, "product": torch.bmm(a, b).flatten().tolist(), "a": a.tolist(), "b": b.tolist(),
            "onednn": _kernels.use_onednn(torch.float32, "cpu")}


def test_intel_kernels_where_the_cpu_is_amd_and_torch_comes_after_autoenc(monkeypatch):
    monkeypatch.delenv("AUTOENC_ONEDNN", raising=False)  # the rule, as in the probes
    built = importlib.util.find_spec("autoenc._mkl_cpu") is not None
    off, late = _probe(AUTOENC_MKL_AVX512="0"), _probe("torch-first")
    default = _in_this_process()  # conftest imported autoenc first, as a study's processes do
    applies = built and _mkl._amd_avx512() and sys.platform == "linux"
    assert default["active"] is (applies and os.environ.get("AUTOENC_MKL_AVX512") != "0")  # as this suite runs
    assert off["active"] is False and late["active"] is False  # turned off; too late once torch has loaded
    # torch first where the extension would apply: said once, with the way out; never otherwise
    assert ("torch was imported before autoenc" in late["stderr"]) is applies
    assert "AUTOENC_MKL_AVX512=0" in late["stderr"] or "torch was imported" not in late["stderr"]
    assert "torch was imported" not in off["stderr"]
    # MKL's own choice leaves wide products to oneDNN on AMD CPUs with AVX-512; its Intel kernels need no oneDNN
    assert late["onednn"] == off["onednn"] and (not default["onednn"] or not default["active"])
    exact = np.einsum("mij,mjk->mik", np.array(default["a"], dtype=np.float64), np.array(default["b"]))
    scale = np.sqrt(np.einsum("mij,mjk->mik", np.square(default["a"]), np.square(default["b"])))  # sum |ab|^2
    for run in (default, off, late):  # the product to float32 rounding: 1024 terms of ~2^-24 relative error each
        error = np.abs(np.array(run["product"]).reshape(exact.shape) - exact) / scale
        assert error.max() < 1e-5
    assert (default["product"] != off["product"]) is default["active"]  # other kernels, other last digits
    assert off["product"] == late["product"]


def test_a_bad_setting_is_refused_on_import():
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "AUTOENC_MKL_AVX512": "off"}
    done = subprocess.run([sys.executable, "-c", "import autoenc"], capture_output=True, text=True, env=environ)
    assert done.returncode != 0
    assert "ValueError: AUTOENC_MKL_AVX512 must be 0 (off), 1 or unset (on where it applies), got 'off'" in done.stderr
