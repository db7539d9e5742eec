"""The autoencoder: a plain MLP encoder and its mirrored decoder, nothing that hides memorization."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig

__all__ = ["Autoencoder"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def _mlp(widths, activation, linear):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if not linear and i < len(widths) - 2:  # no nonlinearity on the code or on the output
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """MLP autoencoder built from a :class:`ModelConfig`.

    No dropout or normalization layers: they would hide exactly the memorization this package measures.
    The code (bottleneck) and the output are linear; ``config.linear=True`` removes every nonlinearity.

    Parameters
    ----------
    config : ModelConfig
    dtype : torch.dtype, default torch.float32

    Examples
    --------
    >>> model = Autoencoder(ModelConfig(input_dim=64, bottleneck=8, hidden=(128,)))
    >>> model(torch.zeros(5, 64)).shape
    torch.Size([5, 64])
    """

    def __init__(self, config: ModelConfig, *, dtype=torch.float32):
        super().__init__()
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        widths = [config.input_dim, *config.hidden, config.bottleneck]
        self.encoder = _mlp(widths, config.activation, config.linear)
        self.decoder = _mlp(widths[::-1], config.activation, config.linear)
        self.to(dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes of shape (n_samples, bottleneck) for ``x`` of shape (n_samples, input_dim)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions of shape (n_samples, input_dim) for codes ``z`` of shape (n_samples, bottleneck)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def linear_layers(self):
        """The ``nn.Linear`` layers in forward order (encoder, then decoder)."""
        return [m for m in (*self.encoder, *self.decoder) if isinstance(m, nn.Linear)]

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None):
        """PyTorch's default ``nn.Linear`` initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from ``generator``.

        Drawn layer by layer in forward order, weight then bias, so a seed fixes the model whatever built it.
        """
        for layer in self.linear_layers():
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
        return self

    def extra_repr(self):
        return f"n_parameters={self.n_parameters}"
