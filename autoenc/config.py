"""Model and training settings: frozen dataclasses, validated on construction, round-tripping through JSON."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .validation import check_int, check_positive_float

__all__ = ["ACTIVATIONS", "JSONConfig", "ModelConfig", "TrainConfig"]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu")


class JSONConfig:
    """``to_dict``/``from_dict``/``to_json``/``from_json``/``replace`` for a frozen settings dataclass."""

    def to_dict(self):
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; valid keys are {sorted(known)}")
        return cls(**data)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig(JSONConfig):
    """Shape of an MLP autoencoder ``input_dim -> hidden... -> bottleneck -> reversed(hidden)... -> input_dim``.

    Parameters
    ----------
    input_dim : int
        Number of features.
    bottleneck : int
        Size of the code, ``1 <= bottleneck <= input_dim``.
    hidden : tuple of int
        Encoder widths; the decoder mirrors them. ``()`` gives a single-layer (shallow) autoencoder.
    activation : str
        One of ``ACTIVATIONS``; applied after every hidden layer (never on the code or the output).
    linear : bool
        Drop every nonlinearity: the network then spans at most PCA's subspace (the optimal linear autoencoder).

    Examples
    --------
    >>> ModelConfig(64, 8, hidden=(128,)).depth
    1
    """

    input_dim: int
    bottleneck: int
    hidden: tuple = (64,)
    activation: str = "relu"
    linear: bool = False

    def __post_init__(self):
        check_int(self.input_dim, "input_dim", minimum=1)
        check_int(self.bottleneck, "bottleneck", minimum=1)
        if self.bottleneck > self.input_dim:
            raise ValueError(
                f"bottleneck={self.bottleneck} is larger than the number of features input_dim={self.input_dim}"
            )
        hidden = self.hidden
        if isinstance(hidden, (int,)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise TypeError(f"hidden must be a sequence of positive ints, got {self.hidden!r}") from None
        for i, width in enumerate(hidden):
            check_int(width, f"hidden[{i}]", minimum=1)
        object.__setattr__(self, "hidden", tuple(int(w) for w in hidden))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid names are {list(ACTIVATIONS)}")
        if not isinstance(self.linear, bool):
            raise TypeError(f"linear must be True or False, got {self.linear!r}")

    @property
    def depth(self):
        """Number of hidden layers in the encoder."""
        return len(self.hidden)


@dataclass(frozen=True)
class TrainConfig(JSONConfig):
    """How to train: minibatch Adam on in-memory data.

    Parameters
    ----------
    epochs : int
        Passes over the training data (the budget; all of it is used when ``patience`` is None).
    batch_size : int
        Samples per step; the last step of an epoch takes the remainder.
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam's L2 penalty (``torch.optim.Adam(weight_decay=...)``).
    patience : int or None
        None trains the full budget (what a memorization study needs); an int stops when the validation loss has
        not improved for that many epochs and restores the best weights.
    seed : int
        Seeds the weight initialization and the data order (two independent local generators).
    threads : int
        torch threads during the call (restored afterwards). One is fastest for small models.
    """

    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = None
    seed: int = 0
    threads: int = 1

    def __post_init__(self):
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_positive_float(self.lr, "lr")
        check_positive_float(self.weight_decay, "weight_decay", allow_zero=True)
        if self.patience is not None:
            check_int(self.patience, "patience", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.threads, "threads", minimum=1)
