"""Save and load models as ``config.json`` + ``weights.safetensors``: atomic writes, no pickle on load."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .model import Autoencoder

__all__ = ["save", "load", "atomic_write", "versions"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1


def atomic_write(path, write):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A reader sees either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the permissions open() would
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def versions():
    """Versions of the packages that decide the numbers, recorded next to every saved model and result."""
    import numpy
    import sklearn

    from . import __version__

    out = {"autoenc": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "numpy": numpy.__version__, "scikit-learn": sklearn.__version__}
    with contextlib.suppress(ImportError):
        import pandas

        out["pandas"] = pandas.__version__
    out["platform"] = platform.platform()
    return out


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_text(text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return write


def save(model, path, *, metadata=None):
    """Write ``model`` into the folder ``path``: ``config.json`` (shape, dtype, metadata) and the weights.

    Parameters
    ----------
    model : Autoencoder
    path : str or PathLike
        A folder, created if needed.
    metadata : dict, optional
        JSON-serializable extras stored in ``config.json`` (training config, seeds, versions).

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
    folder = Path(path)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    doc = {"format_version": FORMAT_VERSION, "model": model.config.to_dict(), "dtype": dtype,
           "metadata": metadata or {}}
    text = json.dumps(doc, indent=2, sort_keys=True)  # fails on non-JSON metadata before anything is written
    # Weights first, config last: a folder with a config.json always has the weights that belong to it.
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(weights, tmp))
    atomic_write(folder / CONFIG_FILE, _write_text(text))
    return folder


def read_config(path):
    """The parsed ``config.json`` of a saved model folder (without loading the weights)."""
    file = Path(path) / CONFIG_FILE
    if not Path(path).is_dir():
        raise FileNotFoundError(f"model folder {str(path)!r} does not exist")
    if not file.is_file():
        raise FileNotFoundError(f"model folder {str(path)!r} has no {CONFIG_FILE}")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or "model" not in doc:
        raise ValueError(f"{file} has no 'model' section; is this a folder written by autoenc.save?")
    return doc


def load(path):
    """Rebuild the model saved in the folder ``path``; executes no pickled code.

    Raises
    ------
    FileNotFoundError
        If the folder, its config or its weights are missing.
    ValueError
        If the config is invalid or the weights do not match the shapes it describes.
    """
    doc = read_config(path)
    config = ModelConfig.from_dict(doc["model"])
    file = Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"model folder {str(path)!r} has no {WEIGHTS_FILE}")
    try:
        weights = load_file(file)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{file} is not a readable safetensors file: {exc}") from None
    dtype = getattr(torch, doc.get("dtype", "float32"), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{Path(path) / CONFIG_FILE} names an unknown dtype {doc.get('dtype')!r}")
    model = Autoencoder(config, dtype=dtype)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"{file} does not match {CONFIG_FILE}: missing tensors {missing}, unexpected {extra}")
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            raise ValueError(
                f"{file} does not match {CONFIG_FILE}: {name} has shape {tuple(weights[name].shape)}, "
                f"the config implies {tuple(tensor.shape)}"
            )
    model.load_state_dict(weights)
    return model.eval()
