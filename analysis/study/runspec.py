"""``RunSpec``: one run of a study, the one owner of its run id, its hidden-width text and its configs."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from autoenc import ModelConfig

__all__ = ["RunSpec", "format_hidden", "parse_hidden"]


def format_hidden(hidden):
    """Hidden widths as the one text form used in run ids and tables: ``(64, 32) -> "64-32"``, ``() -> ""``."""
    return "-".join(str(int(w)) for w in hidden)


def parse_hidden(text):
    """Inverse of :func:`format_hidden`: ``"64-32" -> (64, 32)``; ``""``, None or NaN -> ``()``."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ()
    if isinstance(text, (tuple, list)):
        return tuple(int(w) for w in text)
    text = str(text).strip()
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(w) for w in text.split("-"))
    except ValueError:
        raise ValueError(f"hidden widths must look like '64' or '64-32', got {text!r}") from None


@dataclass(frozen=True)
class RunSpec:
    """One run of a study, autoencoder or PCA: the one owner of its run id and of its model and training configs.

    Parameters
    ----------
    bottleneck : int
    hidden : tuple of int
        Encoder widths (the decoder mirrors them); ``()`` for PCA.
    seed : int or None
        Training seed; None for PCA, which is deterministic.
    model : {"autoencoder", "pca"}

    Examples
    --------
    >>> RunSpec(32, (1024,), 0).run, RunSpec.pca(32).run
    ('ae-k32-h1024-s0', 'pca-k32')
    >>> RunSpec.from_run("ae-k8-h64-64-s2") == RunSpec(8, (64, 64), 2)
    True
    """

    bottleneck: int
    hidden: tuple = ()
    seed: int | None = None
    model: str = "autoencoder"
    kind: str = "mlp"  # "conv": ``hidden`` are channel counts of strided convolution stages

    def __post_init__(self):
        object.__setattr__(self, "hidden", parse_hidden(self.hidden))
        if self.model not in ("autoencoder", "pca"):
            raise ValueError(f"unknown model {self.model!r}; valid values are ['autoencoder', 'pca']")
        if self.model == "pca" and self.hidden:
            raise ValueError("a PCA run has no hidden widths")
        if self.model == "autoencoder" and self.seed is None:
            raise ValueError("an autoencoder run needs a seed")
        if self.kind not in ("mlp", "conv") or (self.kind == "conv" and self.model == "pca"):
            raise ValueError(f"unknown kind {self.kind!r} for a {self.model} run; valid values are ['mlp', 'conv']")

    @classmethod
    def pca(cls, bottleneck, seed=None):
        """PCA at ``bottleneck``; a seed only where it names the data draw (``StudyConfig.data_seeds``)."""
        return cls(int(bottleneck), (), seed, "pca")

    @property
    def run(self):
        """The run id: the folder name under ``models/`` and the ``run`` column of every file of the study."""
        if self.model == "pca":
            return f"pca-k{self.bottleneck}" + ("" if self.seed is None else f"-s{self.seed}")
        letter = "c" if self.kind == "conv" else "h"
        return f"ae-k{self.bottleneck}-{letter}{format_hidden(self.hidden) or 'none'}-s{self.seed}"

    @classmethod
    def from_run(cls, run):
        """Parse a run id written by :attr:`run`."""
        match = _RUN_ID.fullmatch(str(run))
        if match is None:
            raise ValueError(f"{run!r} is not a run id (expected like 'ae-k8-h64-s0' or 'pca-k8')")
        if match["pca"]:
            return cls.pca(int(match["pca"]), None if match["pseed"] is None else int(match["pseed"]))
        hidden = "" if match["hidden"] == "none" else match["hidden"]
        return cls(int(match["k"]), hidden, int(match["seed"]), kind="conv" if match["letter"] == "c" else "mlp")

    @property
    def width(self):
        return self.hidden[0] if self.hidden else None

    @property
    def depth(self):
        return len(self.hidden)

    @property
    def architecture(self):
        """The run id without its seed: runs that differ only by seed share it."""
        return self.run.rsplit("-s", 1)[0] if self.seed is not None else self.run

    def fields(self):
        """The identifying columns every table of the study carries."""
        return {"run": self.run, "model": self.model, "bottleneck": self.bottleneck,
                "hidden": format_hidden(self.hidden), "width": self.width, "depth": self.depth, "seed": self.seed}

    def model_config(self, n_features, activation="relu", *, image_shape=None, kernel_size=3):
        """The ``ModelConfig`` of this run (PCA: the linear network it is).

        A convolutional run sees its inputs as ``image_shape`` ((H, W) gets one channel; None: a 1-D signal).
        """
        if self.model == "pca":
            return ModelConfig(n_features, self.bottleneck, hidden=(), linear=True)
        if self.kind == "conv":
            shape = (1, n_features) if image_shape is None else tuple(int(v) for v in image_shape)
            shape = (1, *shape) if len(shape) == 2 and image_shape is not None else shape
            return ModelConfig(n_features, self.bottleneck, hidden=self.hidden, activation=activation, kind="conv",
                               input_shape=shape, kernel_size=kernel_size)
        return ModelConfig(n_features, self.bottleneck, hidden=self.hidden, activation=activation)

    def train_config(self, train):
        """The study's ``TrainConfig`` with this run's seed (every other field, patience and threads included)."""
        if self.model == "pca":
            return None
        return train.replace(seed=self.seed)

    def n_params(self, n_features, activation="relu", **shape):
        if self.model == "pca":
            return self.bottleneck * n_features + n_features  # components and mean
        from autoenc import Autoencoder

        return Autoencoder(self.model_config(n_features, activation, **shape)).n_parameters


_RUN_ID = re.compile(r"pca-k(?P<pca>\d+)(?:-s(?P<pseed>\d+))?|ae-k(?P<k>\d+)-(?P<letter>[hc])(?P<hidden>none|\d+(?:-\d+)*)"
                     r"-s(?P<seed>\d+)")
