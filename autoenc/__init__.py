"""autoenc: train autoencoders of configurable capacity, fast and reproducibly, and save them safely.

The names below load on first use: ``import autoenc`` alone imports none of torch, scikit-learn or scipy, and
``from autoenc import fit`` only what training needs (``AutoencoderTransformer`` brings scikit-learn).
"""
from . import _mkl
from ._lazy import lazy_exports as _lazy_exports

_mkl.load()  # before anything imports torch: MKL's AVX-512 kernels on AMD CPUs (see autoenc/_mkl.py)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "DATASETS", "DEVICES", "KINDS", "Autoencoder", "AutoencoderTransformer", "Dataset",
    "DivergenceError", "History", "ModelConfig", "Split", "TrainConfig", "add_noise", "config_epsilon", "dp_epsilon",
    "encode", "fit", "load",
    "load_dataset", "reconstruct", "resolve_device", "save", "split", "training_flops",
]

__getattr__, __dir__ = _lazy_exports(__name__, {
    ".config": ("ACTIVATIONS", "DEVICES", "KINDS", "ModelConfig", "TrainConfig"),
    ".model": ("Autoencoder",),
    ".train": ("DivergenceError", "History", "encode", "fit", "reconstruct", "resolve_device"),
    ".io": ("load", "save"),
    ".data": ("DATASETS", "Dataset", "Split", "add_noise", "load_dataset", "split"),
    ".estimator": ("AutoencoderTransformer",),
    ".planning": ("training_flops",),
    ".privacy": ("config_epsilon", "dp_epsilon"),
})
