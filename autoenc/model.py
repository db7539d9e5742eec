"""The autoencoder: an MLP or convolutional encoder and its mirrored decoder, nothing that hides memorization."""
from __future__ import annotations

import math

import torch
from torch import nn

from ._conv import conv_stacks, fan_in
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


_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)


class Autoencoder(nn.Module):
    """MLP or convolutional autoencoder built from a :class:`ModelConfig`.

    No dropout or normalization layers: they would hide exactly the memorization this package measures.
    The code (bottleneck) and the output are linear; ``config.linear=True`` removes every nonlinearity.
    Either kind takes and returns 2-D tensors (n_samples, input_dim): a convolutional model reshapes each row to
    ``config.input_shape`` inside ``encode`` and flattens its output back.

    Parameters
    ----------
    config : ModelConfig
    dtype : torch.dtype, default torch.float32

    Examples
    --------
    >>> model = Autoencoder(ModelConfig(input_dim=64, bottleneck=8, hidden=(128,)))
    >>> model(torch.zeros(5, 64)).shape
    torch.Size([5, 64])
    >>> conv = Autoencoder(ModelConfig(784, 16, (8, 16), kind="conv", input_shape=(1, 28, 28)))
    >>> conv.encode(torch.zeros(5, 784)).shape
    torch.Size([5, 16])
    """

    def __init__(self, config: ModelConfig, *, dtype=torch.float32):
        super().__init__()
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        if config.kind == "conv":
            self.encoder, self.decoder = conv_stacks(config, None if config.linear else _ACTIVATIONS[config.activation])
        else:
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
        """The ``nn.Linear`` layers in forward order (encoder, then decoder); for ``conv``, the two around the code."""
        return [m for m in (*self.encoder, *self.decoder) if isinstance(m, nn.Linear)]

    def weighted_layers(self):
        """Every layer with a weight and a bias (linear, convolution, transposed convolution), in forward order."""
        return [m for m in (*self.encoder, *self.decoder) if isinstance(m, _WEIGHTED)]

    @property
    def widest(self) -> int:
        """The most values one sample occupies in any layer (input, hidden, code): sizes evaluation chunks."""
        c = self.config
        if c.kind == "conv":
            return max(w * math.prod(s) for w, s in zip((c.input_shape[0], *c.hidden), c.spatial_shapes))
        return max(c.input_dim, c.bottleneck, *c.hidden)

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None):
        """PyTorch's default initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from ``generator``.

        Drawn layer by layer in forward order, weight then bias, so a seed fixes the model whatever built it.
        ``fan_in`` is PyTorch's (for a transposed convolution, output channels times kernel size). The draws are
        made on the CPU (``generator`` is a CPU generator) and copied to the model's device, so a seed gives the
        same weights on every device.
        """
        for layer in self.weighted_layers():
            bound = 1.0 / math.sqrt(fan_in(layer.weight))
            for p in (layer.weight, layer.bias):
                if p.device.type == "cpu":
                    p.uniform_(-bound, bound, generator=generator)
                else:
                    p.copy_(torch.empty(p.shape, dtype=p.dtype).uniform_(-bound, bound, generator=generator))
        return self

    def extra_repr(self):
        return f"n_parameters={self.n_parameters}"
