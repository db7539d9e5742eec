"""autoenc: train autoencoders of configurable capacity, fast and reproducibly, and save them safely."""
from .config import ACTIVATIONS, DEVICES, KINDS, ModelConfig, TrainConfig
from .model import Autoencoder
from .train import DivergenceError, History, encode, fit, reconstruct, resolve_device
from .io import load, save
from .data import DATASETS, Dataset, Split, add_noise, load_dataset, split
from .estimator import AutoencoderTransformer
from .planning import training_flops
from .privacy import config_epsilon, dp_epsilon

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "DATASETS", "DEVICES", "KINDS", "Autoencoder", "AutoencoderTransformer", "Dataset",
    "DivergenceError", "History", "ModelConfig", "Split", "TrainConfig", "add_noise", "config_epsilon", "dp_epsilon",
    "encode", "fit", "load",
    "load_dataset", "reconstruct", "resolve_device", "save", "split", "training_flops",
]
