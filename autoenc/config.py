"""Model and training settings: frozen dataclasses, validated on construction, round-tripping through JSON."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass

from .validation import check_int, check_positive_float

__all__ = ["ACTIVATIONS", "DEVICES", "KINDS", "JSONConfig", "ModelConfig", "TrainConfig", "conv_geometry"]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu")
KINDS = ("mlp", "conv")
DEVICES = ("auto", "cpu", "cuda", "mps")
_CONV_KEYS = ("kind", "input_shape", "kernel_size", "stride")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


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


def conv_geometry(input_shape, n_stages, kernel_size, stride):
    """Spatial sizes of a convolutional encoder, stage by stage.

    Every stage is a convolution with ``kernel_size``, ``stride`` and zero padding ``(kernel_size - 1) // 2`` on
    each spatial axis; the decoder's transposed convolutions take each size back exactly (with the output padding
    ``size - ((out - 1) * stride - 2 * padding + kernel_size)``, always in ``[0, stride)``).

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` or ``(channels, length)``.
    n_stages : int
    kernel_size, stride : int

    Returns
    -------
    list of tuple of int
        ``n_stages + 1`` spatial shapes, the input's first; raises ValueError when a stage would be empty.

    Examples
    --------
    >>> conv_geometry((1, 28, 28), 2, 3, 2)
    [(28, 28), (14, 14), (7, 7)]
    """
    padding = (kernel_size - 1) // 2
    sizes = [tuple(input_shape[1:])]
    for stage in range(n_stages):
        out = tuple((n + 2 * padding - kernel_size) // stride + 1 for n in sizes[-1])
        if min(out) < 1:
            raise ValueError(
                f"input_shape={tuple(input_shape)} is too small for {n_stages} convolution stage(s) with "
                f"kernel_size={kernel_size} and stride={stride}: stage {stage + 1} would map {sizes[-1]} to {out}"
            )
        sizes.append(out)
    return sizes


@dataclass(frozen=True)
class ModelConfig(JSONConfig):
    """Shape of an autoencoder: an MLP, or a convolutional encoder and decoder around a linear code.

    ``kind="mlp"``: ``input_dim -> hidden... -> bottleneck -> reversed(hidden)... -> input_dim``, fully connected.
    ``kind="conv"``: each row of the data is an ``input_shape`` image (or 1-D signal) flattened channel-major, as
    ``x.reshape(n, -1)`` gives; the encoder is one strided convolution per entry of ``hidden`` (its channel count),
    then a linear map to the code; the decoder mirrors it with a linear map and transposed convolutions back to
    ``input_shape``. Models take and return 2-D arrays (n_samples, input_dim) either way.

    Parameters
    ----------
    input_dim : int
        Number of features (for ``conv``, the product of ``input_shape``).
    bottleneck : int
        Size of the code, ``1 <= bottleneck <= input_dim``.
    hidden : tuple of int
        Encoder widths (``conv``: channels per stage); the decoder mirrors them. ``()`` gives a single-layer
        (shallow) autoencoder.
    activation : str
        One of ``ACTIVATIONS``; applied after every hidden layer (never on the code or the output).
    linear : bool
        Drop every nonlinearity: the network then spans at most PCA's subspace (the optimal linear autoencoder).
    kind : {"mlp", "conv"}
    input_shape : tuple of int or None
        ``conv`` only (required there): ``(channels, height, width)`` or ``(channels, length)``.
    kernel_size, stride : int
        ``conv`` only: every convolution's kernel and stride (zero padding ``(kernel_size - 1) // 2``);
        ``kernel_size=1, stride=1`` mixes channels pixel by pixel.

    Notes
    -----
    ``to_dict`` writes ``kind``, ``input_shape``, ``kernel_size`` and ``stride`` only for ``conv`` models, so an
    MLP's JSON is what it was before these settings existed (and older files load unchanged).

    Examples
    --------
    >>> ModelConfig(64, 8, hidden=(128,)).depth
    1
    >>> ModelConfig(784, 16, hidden=(16, 32), kind="conv", input_shape=(1, 28, 28)).spatial_shapes
    [(28, 28), (14, 14), (7, 7)]
    """

    input_dim: int
    bottleneck: int
    hidden: tuple = (64,)
    activation: str = "relu"
    linear: bool = False
    kind: str = "mlp"
    input_shape: tuple | None = None
    kernel_size: int = 3
    stride: int = 2

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
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; valid kinds are {list(KINDS)}")
        if self.kind == "mlp":
            for key in _CONV_KEYS[1:]:
                if getattr(self, key) != _DEFAULTS[key]:
                    raise ValueError(f"{key}={getattr(self, key)!r} applies to kind='conv' only")
            return
        check_int(self.kernel_size, "kernel_size", minimum=1)
        check_int(self.stride, "stride", minimum=1)
        shape = self.input_shape
        if shape is None:
            raise ValueError("kind='conv' needs input_shape: (channels, height, width) or (channels, length)")
        try:
            shape = tuple(shape)
        except TypeError:
            raise TypeError(f"input_shape must be a tuple of positive ints, got {self.input_shape!r}") from None
        if len(shape) not in (2, 3):
            raise ValueError(f"input_shape must be (channels, height, width) or (channels, length), got {shape}")
        for i, size in enumerate(shape):
            check_int(size, f"input_shape[{i}]", minimum=1)
        shape = tuple(int(s) for s in shape)
        if math.prod(shape) != self.input_dim:
            raise ValueError(f"input_shape={shape} holds {math.prod(shape)} values but input_dim={self.input_dim}")
        object.__setattr__(self, "input_shape", shape)
        conv_geometry(shape, len(self.hidden), self.kernel_size, self.stride)  # raises if a stage would be empty

    @property
    def depth(self):
        """Number of hidden layers (``conv``: convolution stages) in the encoder."""
        return len(self.hidden)

    @property
    def spatial_shapes(self):
        """``conv``: the spatial shape after each encoder stage, the input's first (see :func:`conv_geometry`)."""
        if self.kind != "conv":
            raise AttributeError("spatial_shapes exists for kind='conv' only")
        return conv_geometry(self.input_shape, len(self.hidden), self.kernel_size, self.stride)

    def to_dict(self):
        out = super().to_dict()
        if self.kind == "mlp":  # an MLP's JSON stays what it was before convolutional models existed
            for key in _CONV_KEYS:
                del out[key]
        return out


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
    device : str
        Where training runs: ``"cpu"`` (the default), ``"cuda"``, ``"cuda:N"``, ``"mps"``, or ``"auto"`` (CUDA,
        else MPS, else the CPU; see :func:`autoenc.train.resolve_device`). Checked for availability when training
        starts, so a config written on one machine loads on any other. ``to_dict`` leaves it out when it is
        ``"cpu"``, so JSON written before this setting existed compares equal.
    dropout : float
        Remedy: inverted dropout with this rate on every hidden activation (never on the code, the output or at
        evaluation), during training only; ``0 <= dropout < 1``. MLP models only.
    input_noise : float
        Remedy (denoising training): every epoch each training input gets fresh Gaussian noise of this std; the
        target stays the input as given.
    dp_clip : float or None
        Remedy (DP-SGD): clip each sample's gradient (all parameters together) to this L2 norm, and draw batches by
        Poisson sampling (each sample in each step with rate ``batch_size / n``, ``round(n / batch_size)`` steps
        per epoch; see :func:`autoenc.train.dp_schedule`). The summed clipped gradients (plus noise) are divided by
        the expected batch size and handed to Adam. MLP models only; not with ``dropout``.
    dp_noise : float
        DP-SGD noise multiplier: Gaussian noise of std ``dp_noise * dp_clip`` on the summed clipped gradients.
        Needs ``dp_clip``; :func:`autoenc.privacy.config_epsilon` gives the resulting epsilon.
    restore_best : bool
        Remedy (early stopping at a criterion's minimum): return the weights of the evaluated epoch with the lowest
        criterion (the validation loss, or in ``fit_group`` what ``on_eval`` returns), recorded in
        ``History.best_epoch``. With ``patience`` too, training stops once the criterion has not improved for that
        many epochs.

    Notes
    -----
    ``to_dict`` leaves out every remedy at its default (off), so the JSON of a config without remedies is what it
    was before they existed, and older files load unchanged.
    """

    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = None
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    dropout: float = 0.0
    input_noise: float = 0.0
    dp_clip: float | None = None
    dp_noise: float = 0.0
    restore_best: bool = False

    def __post_init__(self):
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_positive_float(self.lr, "lr")
        check_positive_float(self.weight_decay, "weight_decay", allow_zero=True)
        if self.patience is not None:
            check_int(self.patience, "patience", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.threads, "threads", minimum=1)
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise ValueError(f"device must be one of {list(DEVICES)} (or 'cuda:N'), got {self.device!r}")
        dropout = check_positive_float(self.dropout, "dropout", allow_zero=True)
        if dropout >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_positive_float(self.input_noise, "input_noise", allow_zero=True)
        if self.dp_clip is not None:
            check_positive_float(self.dp_clip, "dp_clip")
        check_positive_float(self.dp_noise, "dp_noise", allow_zero=True)
        if self.dp_noise > 0 and self.dp_clip is None:
            raise ValueError(f"dp_noise={self.dp_noise} needs dp_clip: DP-SGD's noise is scaled by the clipping norm")
        if self.dp_clip is not None and self.dropout > 0:
            raise ValueError(f"dropout={self.dropout} with dp_clip={self.dp_clip}: dropout and DP-SGD together are "
                             "not supported")
        if not isinstance(self.restore_best, bool):
            raise TypeError(f"restore_best must be True or False, got {self.restore_best!r}")

    @property
    def dp(self):
        """Whether training is DP-SGD (``dp_clip`` set): Poisson batches and clipped per-sample gradients."""
        return self.dp_clip is not None

    def to_dict(self):
        out = super().to_dict()
        if out["device"] == "cpu":
            del out["device"]
        for key, default in _REMEDY_DEFAULTS.items():  # the JSON of a config without remedies is unchanged
            if out[key] == default:
                del out[key]
        return out


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
_REMEDY_DEFAULTS = {"dropout": 0.0, "input_noise": 0.0, "dp_clip": None, "dp_noise": 0.0, "restore_best": False}
