"""``RunSpec``: one run of a study, the one owner of its run id, its hidden-width text and its configs."""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

from autoenc import KINDS, ModelConfig, TrainConfig

from .remedies import TAG_PATTERN, Remedy

__all__ = ["Run", "RunSpec", "format_hidden", "hidden_words", "parse_hidden"]


def format_hidden(hidden):
    """Hidden widths in the one text form of run ids and tables: ``(64, 32) -> "64-32"``, ``() -> ""``.

    Anything :func:`parse_hidden` reads is accepted, so a value read back from a CSV (``64.0``, NaN) comes out the
    same as the tuple it was written from.

    Examples
    --------
    >>> format_hidden((64, 32)), format_hidden(64.0), format_hidden(float("nan"))
    ('64-32', '64', '')
    """
    return "-".join(str(w) for w in parse_hidden(hidden))


def parse_hidden(text):
    """Inverse of :func:`format_hidden`: ``"64-32" -> (64, 32)``; ``""``, None or NaN -> ``()``; a number (as a CSV
    reads ``"64"`` back) is one width.

    Examples
    --------
    >>> parse_hidden("64-32"), parse_hidden("(256, 128)"), parse_hidden(""), parse_hidden(64.0)
    ((64, 32), (256, 128), (), (64,))
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ()
    if isinstance(text, (tuple, list)):
        return tuple(int(w) for w in text)
    if isinstance(text, numbers.Real) and not isinstance(text, bool):
        return (int(text),)
    text = str(text).strip().strip("()[]")  # "(256, 128)", as a tuple prints, reads like "256-128"
    if text.strip() in ("", "none"):
        return ()
    try:
        return tuple(int(w) for w in re.split(r"\s*[-,]\s*", text.strip().rstrip(",")))
    except ValueError:
        raise ValueError(f"hidden widths must look like '64' or '64-32', got {text!r}") from None


def hidden_words(hidden, *, prefix="hidden "):
    """Hidden widths in prose: ``"hidden width 64"``, ``"hidden widths (64, 32)"``; ``prefix=""`` drops the word
    "hidden" of a single layer (``"width 64"``), as a name for a family of runs.

    Examples
    --------
    >>> hidden_words((64,)), hidden_words("64-32"), hidden_words(64, prefix="")
    ('hidden width 64', 'hidden widths (64, 32)', 'width 64')
    """
    widths = parse_hidden(hidden)
    if len(widths) > 1:
        return f"hidden widths ({', '.join(map(str, widths))})"
    return f"{prefix}width {widths[0]}" if widths else "no hidden layer"


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
    kind : {"mlp", "conv"}
    remedy : str
        The tag of the remedy it is trained with (:class:`~.remedies.Remedy`), "" for none.

    Examples
    --------
    >>> RunSpec(32, (1024,), 0).run, RunSpec.pca(32).run, RunSpec(32, (1024,), 0, remedy="wd0.0001").run
    ('ae-k32-h1024-s0', 'pca-k32', 'ae-k32-h1024-wd0.0001-s0')
    >>> RunSpec.from_run("ae-k8-h64-64-s2") == RunSpec(8, (64, 64), 2)
    True
    >>> RunSpec.from_run("ae-k8-h64-dp1e-05-s2").remedy, RunSpec.from_run("ae-k8-h64-es-s0").architecture
    ('dp1e-05', 'ae-k8-h64-es')
    """

    bottleneck: int
    hidden: tuple = ()
    seed: int | None = None
    model: str = "autoencoder"
    kind: str = "mlp"  # "conv": ``hidden`` are channel counts of strided convolution stages
    remedy: str = ""  # a :class:`~.remedies.Remedy`'s tag (``"wd0.0001"``), or "" for the architecture as it is

    def __post_init__(self):
        object.__setattr__(self, "hidden", parse_hidden(self.hidden))
        if self.model not in ("autoencoder", "pca"):
            raise ValueError(f"unknown model {self.model!r}; valid values are ['autoencoder', 'pca']")
        if self.model == "pca" and self.hidden:
            raise ValueError("a PCA run has no hidden widths")
        if self.model == "autoencoder" and self.seed is None:
            raise ValueError("an autoencoder run needs a seed")
        if self.kind not in KINDS or (self.kind == "conv" and self.model == "pca"):
            raise ValueError(f"unknown kind {self.kind!r} for a {self.model} run; valid values are {list(KINDS)}")
        if isinstance(self.remedy, Remedy):
            object.__setattr__(self, "remedy", self.remedy.tag)
        if self.remedy:
            if self.model == "pca":
                raise ValueError("a PCA run takes no remedy")
            object.__setattr__(self, "remedy", Remedy.from_tag(self.remedy).tag)  # checks it, one spelling

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
        remedy = f"-{self.remedy}" if self.remedy else ""
        return f"ae-k{self.bottleneck}-{letter}{format_hidden(self.hidden) or 'none'}{remedy}-s{self.seed}"

    @classmethod
    def from_run(cls, run):
        """Parse a run id written by :attr:`run`."""
        match = _RUN_ID.fullmatch(str(run))
        if match is None:
            raise ValueError(f"{run!r} is not a run id (expected like 'ae-k8-h64-s0' or 'pca-k8')")
        if match["pca"]:
            return cls.pca(int(match["pca"]), None if match["pseed"] is None else int(match["pseed"]))
        hidden = "" if match["hidden"] == "none" else match["hidden"]
        return cls(int(match["k"]), hidden, int(match["seed"]), kind="conv" if match["letter"] == "c" else "mlp",
                   remedy=match["remedy"] or "")

    @property
    def base(self):
        """The same run without its remedy."""
        return RunSpec(self.bottleneck, self.hidden, self.seed, self.model, self.kind)

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
                "hidden": format_hidden(self.hidden), "width": self.width, "depth": self.depth, "seed": self.seed,
                "remedy": self.remedy}

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

    def train_config(self, train, dp_clip=1.0):
        """The study's ``TrainConfig`` with this run's seed (every other field, patience and threads included) and
        its remedy (DP-SGD clips per-sample gradients at ``dp_clip``)."""
        if self.model == "pca":
            return None
        train = train.replace(seed=self.seed)
        return Remedy.from_tag(self.remedy).train_config(train, dp_clip) if self.remedy else train

    def n_params(self, n_features, activation="relu", **shape):
        if self.model == "pca":
            return self.bottleneck * n_features + n_features  # components and mean
        from autoenc import Autoencoder

        return Autoencoder(self.model_config(n_features, activation, **shape)).n_parameters


_RUN_ID = re.compile(r"pca-k(?P<pca>\d+)(?:-s(?P<pseed>\d+))?|ae-k(?P<k>\d+)-(?P<letter>[hc])(?P<hidden>none|\d+(?:-\d+)*)"
                     rf"(?:-(?P<remedy>{TAG_PATTERN}))?-s(?P<seed>\d+)")


@dataclass(frozen=True)
class Run:
    """A run with its configs, built once (:meth:`of`) and handed to every task and record of the run.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from analysis import StudyConfig
    >>> run = Run.of(RunSpec(4, (16,), 1), StudyConfig(), SimpleNamespace(n_features=64, image_shape=None))
    >>> run.run, run.model.hidden, run.train.seed
    ('ae-k4-h16-s1', (16,), 1)
    """

    spec: RunSpec
    model: ModelConfig
    train: TrainConfig | None  # None for PCA, which is not trained by gradient steps

    @classmethod
    def of(cls, spec, config, data):
        """``spec``'s configs in the study ``config`` on ``data`` (its ``n_features``; a convolutional run sees
        ``data.image_shape``)."""
        model = spec.model_config(data.n_features, config.activation, image_shape=data.image_shape,
                                  kernel_size=config.kernel_size)
        return cls(spec, model, spec.train_config(config.train, getattr(config, "dp_clip", 1.0)))

    @property
    def run(self):
        return self.spec.run
