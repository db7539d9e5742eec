"""autoenc: train autoencoders of configurable capacity, fast and reproducibly, and save them safely."""
from .config import ACTIVATIONS, ModelConfig, TrainConfig
from .model import Autoencoder
from .train import DivergenceError, History, encode, fit, reconstruct
from .io import load, save

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Autoencoder", "DivergenceError", "History",
    "ModelConfig", "TrainConfig", "encode", "fit", "load", "reconstruct", "save",
]
