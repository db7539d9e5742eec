"""Save and load models as ``config.json`` + ``weights.safetensors``: atomic writes, no pickle on load.

:func:`load` trusts nothing it reads. Before anything is allocated it checks, in this order:

- ``config.json`` is strict JSON (no ``NaN``/``Infinity``) of at most ``MAX_CONFIG_BYTES`` with a
  ``format_version`` in ``FORMAT_VERSIONS`` and a ``dtype`` in ``DTYPES`` (a hand-written config without them is
  read as format 1 in float32);
- the model the config describes has at most ``MAX_DEPTH`` hidden layers and ``MAX_PARAMETERS`` parameters
  (for an MLP counted arithmetically from the config; for every kind counted on the model built on the ``meta``
  device, which allocates no storage);
- the safetensors header (an 8-byte little-endian length, then JSON giving each tensor's ``dtype``, ``shape`` and
  ``data_offsets``) has a sane length, describes tensors that exactly tile the rest of the file (a truncated file or
  trailing bytes are refused), stores every tensor in the config's dtype, and holds exactly the tensor names and
  shapes the config implies (compared with the model built on the ``meta`` device, which allocates nothing).

Only then are the weights read, and every value must be finite. Any failure is a ``ValueError`` (a missing file a
``FileNotFoundError``) naming the file and what is wrong.

Dtypes: a model is stored in one floating dtype, ``float32`` (the default), ``float64``, ``float16`` or
``bfloat16``, recorded in ``config.json``; every tensor of the weights file must be stored in exactly that dtype.
Nothing is cast on load, so int8, bool or float16 weights under a ``float32`` config are refused.

Metadata: non-finite floats (NaN, inf) in ``metadata`` are written as ``null``, so ``config.json`` stays strict JSON
that any reader accepts.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import json
import math
import os
import platform
import struct
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import _mkl
from .config import ModelConfig
from .model import Autoencoder
from .train import torch_threads

__all__ = ["save", "load", "atomic_write", "machine", "versions", "read_config"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1
FORMAT_VERSIONS = (1,)  # the config.json layouts this code reads
DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16"}  # config name -> header name
_ITEMSIZE = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2}
MAX_PARAMETERS = 2**31  # 8 GiB in float32: far beyond any autoencoder this package trains, far below a memory bomb
MAX_DEPTH = 1024  # hidden layers; building a deeper module graph would itself be the attack
MAX_CONFIG_BYTES = 2**20
MAX_HEADER_BYTES = 2**20  # a header lists 4 tensors per layer in ~100 bytes each: 1 MiB is thousands of layers


def atomic_write(path, write):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A reader sees either the old file or the complete new one, never a partial write. The file gets the
    permissions ``open()`` would give it under the current umask, whatever ``write`` did to them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # After the write: mkstemp makes the file private, and some writers (safetensors) recreate it as 0600.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # a write's ENOSPC names no file: name the target
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return path


def versions():
    """Versions of the packages that decide the numbers, recorded next to every saved model and result."""
    import numpy

    from . import __version__

    out = {"autoenc": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "numpy": numpy.__version__, "scikit-learn": _installed_version("sklearn", "scikit-learn")}
    with contextlib.suppress(ImportError):
        out["pandas"] = _installed_version("pandas", "pandas")
    out["platform"] = platform.platform()
    out.update(machine())
    return out


def _installed_version(module, distribution):
    """``module.__version__`` without importing it where it is not yet (scikit-learn takes about 1 s to import, and
    a study records the versions before its workers get their first task): the installed distribution's version,
    which is what the package reports. ImportError where it is not installed."""
    if module not in sys.modules:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(distribution)
    return importlib.import_module(module).__version__


@functools.cache
def _cpu_model():
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def machine():
    """The CPU and the kernels that did the arithmetic: float32 results differ in their last digits across these.

    Returns ``{"cpu": model name, "torch_cpu_capability": ATen's kernel level (e.g. AVX512, AVX2, DEFAULT),
    "blas": numpy's BLAS and the core type it dispatched to (e.g. "openblas Haswell"), "mkl_intel_kernels": whether
    torch's MKL was told the CPU is Intel's (``autoenc._mkl``: its AVX-512 kernels on AMD CPUs)}``.
    """
    cpu = _cpu_model()
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "unknown")()
    blas = "unknown"
    with contextlib.suppress(Exception):  # threadpoolctl inspects loaded libraries; a failure only loses a label
        import numpy  # noqa: F401  (loads numpy's BLAS so that it can be found)
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            blas = f"{pools[0].get('internal_api')} {pools[0].get('architecture') or ''}".strip()
    return {"cpu": cpu, "torch_cpu_capability": capability, "blas": blas, "mkl_intel_kernels": _mkl.ACTIVE}


def float_kernels():
    """The CPU and the float32 kernels this process trains with, in one line, recorded with every run of a study:
    runs made with other kernels differ in their last digits (``"AMD EPYC; torch AVX512; MKL's AVX-512 kernels
    (autoenc._mkl); oneDNN off"``)."""
    from . import _kernels

    cpu = _cpu_model()
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "unknown")()
    told, cap = " (autoenc._mkl)" if _mkl.ACTIVE else "", os.environ.get("MKL_ENABLE_INSTRUCTIONS")
    mkl = ("no MKL" if not torch.backends.mkl.is_available() else f"MKL's AVX-512 kernels{told}"
           if _kernels.mkl_avx512() else f"MKL capped at {cap}{told}" if cap else "MKL's own choice of kernels")
    onednn = "on" if _kernels.use_onednn(torch.float32, "cpu") else "off"
    return f"{cpu}; torch {capability}; {mkl}; oneDNN for wide layers {onednn}"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_text(text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return write


def _finite_or_null(value):
    """``value`` with every non-finite float replaced by None (JSON ``null``), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def save(model, path, *, metadata=None):
    """Write ``model`` into the folder ``path``: ``config.json`` (shape, dtype, metadata) and the weights.

    Parameters
    ----------
    model : Autoencoder
        In one of the dtypes of ``DTYPES``.
    path : str or PathLike
        A folder, created if needed.
    metadata : dict, optional
        JSON-serializable extras stored in ``config.json`` (training config, seeds, versions); NaN and infinite
        floats are stored as ``null``.

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> save(Autoencoder(ModelConfig(64, 8)), tmp_dir)  # doctest: +SKIP
    """
    if not isinstance(model, Autoencoder):
        raise TypeError(f"model must be an autoenc.Autoencoder, got {type(model).__name__}")
    dtypes = {str(p.dtype).removeprefix("torch.") for p in model.parameters()}
    if len(dtypes) != 1 or not dtypes <= set(DTYPES):
        raise ValueError(f"model parameters must all have one dtype of {sorted(DTYPES)}, got {sorted(dtypes)}")
    if model.n_parameters > MAX_PARAMETERS:
        raise ValueError(f"model has {model.n_parameters} parameters, more than load accepts ({MAX_PARAMETERS})")
    folder = Path(path)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    doc = {"format_version": FORMAT_VERSION, "model": model.config.to_dict(), "dtype": dtypes.pop(),
           "metadata": _finite_or_null(metadata or {})}
    try:  # fails on non-JSON metadata before anything is written
        text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"metadata must be JSON-serializable: {exc}") from None
    # Weights first, config last: a folder with a config.json always has the weights that belong to it.
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(weights, tmp))
    atomic_write(folder / CONFIG_FILE, _write_text(text))
    return folder


def _refuse_constant(name):
    raise ValueError(f"{name} is not strict JSON")


def read_config(path):
    """The parsed ``config.json`` of a saved model folder (without loading the weights).

    Raises
    ------
    FileNotFoundError
        If the folder or its config is missing.
    ValueError
        If the config is not strict JSON, is too large, or has an unknown ``format_version``.
    """
    file = Path(path) / CONFIG_FILE
    if not Path(path).is_dir():
        raise FileNotFoundError(f"model folder {str(path)!r} does not exist")
    if not file.is_file():
        raise FileNotFoundError(f"model folder {str(path)!r} has no {CONFIG_FILE}")
    size = file.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"{file} is {size} bytes, more than a model config can be ({MAX_CONFIG_BYTES})")
    try:
        doc = json.loads(file.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or "model" not in doc:
        raise ValueError(f"{file} has no 'model' section; is this a folder written by autoenc.save?")
    version = doc.get("format_version", 1)  # hand-written configs may leave it out: the first layout
    if type(version) is not int or version not in FORMAT_VERSIONS:
        raise ValueError(f"{file} has format_version {version!r}; this version of autoenc reads "
                         f"{list(FORMAT_VERSIONS)} (written by a newer autoenc, or not by autoenc.save?)")
    return doc


def _n_parameters(config):
    """Parameters of an MLP ``Autoencoder(config)``, counted without building it (Python ints: no overflow)."""
    widths = [config.input_dim, *config.hidden, config.bottleneck]
    pairs = list(zip(widths[:-1], widths[1:]))
    return sum(2 * a * b + a + b for a, b in pairs)  # encoder layer a->b and its mirror b->a, with their biases


def _read_header(file):
    """``{name: (dtype, shape, (begin, end))}`` from a safetensors header, checked against the file's size."""
    bad = f"{file} is not a readable safetensors file"
    size = file.stat().st_size
    with open(file, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{bad}: it is {size} bytes long, too short to hold a header (truncated?)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise ValueError(f"{bad}: its header claims {length} bytes, more than the {MAX_HEADER_BYTES} allowed")
        if 8 + length > size:
            raise ValueError(f"{bad}: truncated, its header claims {length} bytes but the file has {size}")
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{bad}: its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{bad}: its header is not a JSON object")
    header.pop("__metadata__", None)
    tensors = {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], list(entry["shape"]), entry["data_offsets"]
            ok = (isinstance(dtype, str) and all(type(n) is int and n >= 0 for n in shape)
                  and type(begin) is int and type(end) is int and 0 <= begin <= end)
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{bad}: header entry {name!r} is malformed")
        tensors[name] = (dtype, tuple(shape), (begin, end))
    # The tensors must tile the data area exactly, as safetensors writes them: no gaps, overlaps or trailing bytes.
    data_bytes, position = size - 8 - length, 0
    for name, (_, _, (begin, end)) in sorted(tensors.items(), key=lambda item: item[1][2]):
        if begin != position:
            raise ValueError(f"{bad}: tensor {name!r} starts at byte {begin} of the data, expected {position}")
        position = end
    if position > data_bytes:
        raise ValueError(f"{bad}: truncated, its header describes {position} bytes of tensor data but the file "
                         f"holds {data_bytes}")
    if position < data_bytes:
        raise ValueError(f"{bad}: {data_bytes - position} bytes after the last tensor")
    return tensors


def _check_header(file, tensors, expected, dtype_name):
    """Refuse a header whose names, dtypes, shapes or byte counts disagree with the model the config implies."""
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{file} does not match {CONFIG_FILE}: missing tensors {missing}, unexpected {extra}")
    want = DTYPES[dtype_name]
    for name in expected:  # in forward order, so the first disagreement named is the first layer's
        dtype, shape, (begin, end) = tensors[name]
        if dtype != want:
            raise ValueError(f"{file} stores {name} as {dtype}; {CONFIG_FILE} says the model is {dtype_name} "
                             f"({want}), and weights are never cast on load")
        if shape != tuple(expected[name].shape):
            raise ValueError(f"{file} does not match {CONFIG_FILE}: {name} has shape {shape}, "
                             f"the config implies {tuple(expected[name].shape)}")
        if end - begin != math.prod(shape) * _ITEMSIZE[dtype]:
            raise ValueError(f"{file} is not a readable safetensors file: {name} of shape {shape} in {dtype} "
                             f"needs {math.prod(shape) * _ITEMSIZE[dtype]} bytes, its offsets span {end - begin}")


def _check_size(config_file, n_parameters):
    if n_parameters > MAX_PARAMETERS:
        raise ValueError(f"{config_file} describes a model with {n_parameters} parameters, more than load accepts "
                         f"({MAX_PARAMETERS}); refused before allocating anything")


def load(path):
    """Rebuild the model saved in the folder ``path``; executes no pickled code and allocates nothing unchecked.

    Parameters
    ----------
    path : str or PathLike
        A folder written by :func:`save`.

    Returns
    -------
    Autoencoder
        In eval mode, in the dtype recorded in ``config.json``.

    Raises
    ------
    FileNotFoundError
        If the folder, its config or its weights are missing.
    ValueError
        If the config is invalid, unknown or implausibly large, or the weights file is damaged, disagrees with
        the config (names, shapes, dtype) or holds NaN or infinite values; the message names the file.

    Examples
    --------
    >>> load(save(Autoencoder(ModelConfig(64, 8)), tmp_dir)).config.bottleneck  # doctest: +SKIP
    8
    """
    doc = read_config(path)
    config_file, file = Path(path) / CONFIG_FILE, Path(path) / WEIGHTS_FILE
    try:
        config = ModelConfig.from_dict(doc["model"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{config_file}: {exc}") from None
    dtype_name = doc.get("dtype", "float32")
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise ValueError(f"{config_file} names dtype {dtype_name!r}; a saved model is one of {sorted(DTYPES)}")
    if config.depth > MAX_DEPTH:
        raise ValueError(f"{config_file} describes {config.depth} hidden layers, more than load accepts ({MAX_DEPTH})")
    if config.kind == "mlp":
        _check_size(config_file, _n_parameters(config))
    with torch.device("meta"):  # names and shapes only: nothing is allocated, whatever the sizes
        model = Autoencoder(config, dtype=getattr(torch, dtype_name))
    _check_size(config_file, model.n_parameters)  # every kind, convolutional included
    if not file.is_file():
        raise FileNotFoundError(f"model folder {str(path)!r} has no {WEIGHTS_FILE}")
    tensors = _read_header(file)
    expected = model.state_dict()
    _check_header(file, tensors, expected, dtype_name)
    try:
        weights = load_file(file)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:  # changed since the header was read
        raise ValueError(f"{file} is not a readable safetensors file: {exc}") from None
    with torch_threads(1):  # measured: 3 ms instead of 100 ms for a 133k-parameter model on a busy 2-core machine
        for name in expected:  # forward order: the first damaged tensor named is the first layer's
            finite = torch.isfinite(weights[name])
            if not finite.all():
                raise ValueError(f"{file} holds {int((~finite).sum())} NaN or infinite value(s) in {name}; "
                                 "the model is damaged")
    model.load_state_dict(weights, assign=True)  # the loaded tensors become the parameters: no second copy
    return model.eval()
