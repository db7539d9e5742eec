"""``StudyConfig``: what a study trains and measures; frozen, validated, round-trips through JSON and TOML."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from autoenc import ACTIVATIONS, KINDS, TrainConfig
from autoenc.config import JSONConfig
from autoenc.validation import check_int, check_positive_float

from .remedies import parse_remedies
from .runspec import RunSpec

__all__ = ["StudyConfig"]

SEARCHES = ("grid", "grow")
LATENT_METHODS = ("umap", "pca", "none")
SCALINGS = ("none", "standard", "minmax")
SELECTION_METRICS = ("auto", "mse_clean", "sure", "mse_denoise", "mse")
SELECTION_RULES = ("one_se", "tolerance")
MEMORIZATION_METHODS = ("references", "kfold")
AUDIT_TARGETS = ("widest", "selected")
REMEDY_FIELDS = ("remedies", "remedy_targets", "dp_clip", "remedy_audit")  # may change on a finished study


def _int_tuple(value, name, minimum):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        values = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of integers, got {value!r}") from None
    if not values:
        raise ValueError(f"{name} must not be empty")
    out = tuple(check_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(values))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicates: {list(out)}")
    return out


MAX_NOISE_STD = 1e12  # in the units the model sees; its squares summed over features and samples stay finite
MLP_WIDTHS = (16, 64, 256, 1024)  # hidden units
CONV_WIDTHS = (4, 16, 64, 256)  # channels per stage


@dataclass(frozen=True)
class StudyConfig(JSONConfig):
    """A capacity study: data, noise, split, the grid (or the grow search), training and analysis options.

    Parameters
    ----------
    dataset : str
        A built-in name (``digits``, ``mnist1d``, ``noise``, ``lowrank``, ``swissroll``, ``patches``) or a data file
        path.
    label_column : str or None
        For CSV files: the column holding the labels (kept out of the features; used for stratification, colours
        and probes).
    noise_std : float
        Std of the static Gaussian noise added once to every sample (0 for none).
    seed : int
        Seeds the split and the noise draw.
    data_seeds : bool
        Each training seed ``s`` also draws its own split and noise (seed ``seed + s``), and PCA is fitted on every
        draw, so that the spread over seeds includes the sampling of the data, not only initialization and order.
    fractions : (float, float, float)
        Train, validation and test fractions.
    scale : str
        ``none``, ``standard`` or ``minmax`` scaling, fitted on the training inputs only.
    bottlenecks, widths, depths, seeds : tuple of int
        The grid: every autoencoder has hidden widths ``(width,) * depth``.
    activation : str
        Nonlinearity of every autoencoder.
    architecture : str
        ``mlp`` (fully connected) or ``conv``: strided convolutions down to a linear code of ``k`` and transposed
        convolutions back, on the data's image shape (a 1-D signal for tabular data); ``widths`` are then channel
        counts and ``depths`` numbers of stages. Default widths: ``MLP_WIDTHS`` (16, 64, 256, 1024) units, or
        ``CONV_WIDTHS`` (4, 16, 64, 256) channels: a channel costs work at every position, and 256 channels already
        give about the parameter counts of the MLP sweep's widest member.
    kernel_size : int
        Convolution kernel size (``conv`` only).
    search : str
        ``grid`` trains every combination; ``grow`` starts small and widens, then deepens, per bottleneck.
    tolerance : float
        Relative slack for "adequate" in the grow search, and in model selection under ``selection_rule="tolerance"``
        (or when there is a single seed, so no spread to judge by).
    selection_metric : str
        What the simplest adequate model is chosen on, on the validation split: ``auto`` (the error against the
        clean signal when the study injected the noise, else SURE when ``data_noise_std`` is known, else the
        denoising error), ``mse_clean``, ``sure``, ``mse_denoise`` or ``mse`` (the error against the noisy input,
        which copying the noise wins: only for comparison).
    selection_rule : str
        ``one_se``: the fewest parameters whose mean error over seeds is within one standard error of the best;
        ``tolerance``: within ``tolerance`` (relative) of the best.
    data_noise_std : float or None
        Std of the noise already in the data, in the units the model sees, when known (sensor noise, say): makes
        SURE available without a clean signal.
    memorization : bool
        Compute per-sample memorization scores of the widest autoencoder and of PCA at its bottleneck.
    memorization_method : str
        ``references`` (error when out minus error when in over ``n_references`` models trained on random halves;
        its split-half agreement is reported) or ``kfold`` (K-fold cross-fitting with ``n_folds``).
    n_folds : int
        Folds for ``memorization_method="kfold"``.
    n_references : int
        Reference models per audited architecture (even): 24 give two independent sets of per-sample scores of
        the memorizing autoencoder on digits a Spearman agreement above 0.9.
    audit : tuple of str
        Which autoencoders get a membership audit (LiRA, RMIA, loss threshold) against their reference models:
        ``widest`` and/or ``selected``; empty for none.
    landscape : bool
        Loss along a filter-normalized random direction (seen and unseen) and the attractors among 50 seen and
        50 unseen samples, for the selected and the widest autoencoder (``landscape.csv``, ``attractors.csv``).
    double_descent : bool
        A width sweep past the interpolation threshold (parameters about n x d) on 100 training samples trained to
        near zero error, with the epoch-wise view (``double_descent.csv``): about a minute more.
    latent : str
        ``pca``, ``umap`` or ``none``: 2-D map of the selected autoencoder's codes and PCA's scores. UMAP shows
        more structure but compiles its numba code on first use in a process (10 s of CPU with numba's cache
        warm, 25 s cold, here: far over the latent measures' 1.5 s, so PCA stays the default). Unless ``none``,
        also ``latent.csv`` (every run's codes against PCA and across seeds, latent membership, intrinsic
        dimension) and ``paths.npz`` (decoded straight lines in the code).
    remedies : tuple of str
        Remedies to train the memorizing architectures with (:mod:`~.remedies`), as texts such as
        ``"weight-decay=0.0001"``, ``"dropout=0.1"``, ``"denoise=0.1"``, ``"early-stop"``, ``"dp=1"``; each is a
        run per seed of each target, measured like every other run (``remedies.csv``). A TOML ``[remedies]`` table
        gives them as ``weight-decay = [1e-4, 1e-3]``, ``early-stop = true``, with ``targets``, ``dp-clip`` and
        ``audit`` for the three fields below. Adding remedies to a finished study trains only them.
    remedy_targets : tuple of str
        Which architectures get the remedies: ``widest`` and/or ``selected`` (as for ``audit``).
    dp_clip : float
        DP-SGD's bound on each sample's gradient norm (the ``dp`` remedy's noise is its value times this).
    remedy_audit : bool
        Audit every remedied target against reference models trained with the same remedy (the membership audit
        and the empirical lower bound on epsilon); reference models cost ``n_references`` runs per remedy.
    train : TrainConfig
        Training settings shared by every autoencoder (its ``seed`` is replaced by each run's seed).
    """

    dataset: str = "digits"
    label_column: str | None = None
    noise_std: float = 0.2
    seed: int = 0
    data_seeds: bool = False
    fractions: tuple = (0.6, 0.2, 0.2)
    scale: str = "none"
    bottlenecks: tuple = (2, 4, 8, 16, 32)
    widths: tuple | None = None  # None: MLP_WIDTHS, or CONV_WIDTHS for architecture="conv"
    depths: tuple = (1,)
    seeds: tuple = (0, 1, 2)
    activation: str = "relu"
    architecture: str = "mlp"
    kernel_size: int = 3
    search: str = "grid"
    tolerance: float = 0.05
    selection_metric: str = "auto"
    selection_rule: str = "one_se"
    data_noise_std: float | None = None
    memorization: bool = True
    memorization_method: str = "references"
    n_folds: int = 5
    n_references: int = 24
    audit: tuple = ("widest", "selected")
    landscape: bool = True
    double_descent: bool = False
    latent: str = "pca"
    remedies: tuple = ()
    remedy_targets: tuple = ("widest", "selected")
    dp_clip: float = 1.0
    remedy_audit: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, batch_size=64, lr=2e-3))

    def __post_init__(self):
        if not isinstance(self.dataset, (str, Path)) or not str(self.dataset):
            raise TypeError(f"dataset must be a dataset name or a file path, got {self.dataset!r}")
        object.__setattr__(self, "dataset", str(self.dataset))
        if self.label_column is not None and (not isinstance(self.label_column, str) or not self.label_column):
            raise TypeError(f"label_column must be a column name or None, got {self.label_column!r}")
        check_positive_float(self.noise_std, "noise_std", allow_zero=True)
        check_int(self.seed, "seed", minimum=0)
        fractions = tuple(float(f) for f in self.fractions) if not isinstance(self.fractions, str) else ()
        if len(fractions) != 3 or min(fractions, default=-1) < 0 or not math.isclose(sum(fractions), 1, abs_tol=1e-6):
            raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {self.fractions!r}")
        if fractions[0] == 0 or fractions[2] == 0:
            raise ValueError(f"fractions must give train and test a share > 0, got {self.fractions!r}")
        object.__setattr__(self, "fractions", fractions)
        check_int(self.kernel_size, "kernel_size", minimum=1)
        for name, choices in (("scale", SCALINGS), ("search", SEARCHES), ("latent", LATENT_METHODS),
                              ("architecture", KINDS),
                              ("activation", ACTIVATIONS), ("selection_metric", SELECTION_METRICS),
                              ("selection_rule", SELECTION_RULES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid values are {list(choices)}")
        if self.widths is None:
            object.__setattr__(self, "widths", CONV_WIDTHS if self.architecture == "conv" else MLP_WIDTHS)
        for name, minimum in (("bottlenecks", 1), ("widths", 1), ("depths", 0), ("seeds", 0)):
            object.__setattr__(self, name, _int_tuple(getattr(self, name), name, minimum))
        check_positive_float(self.tolerance, "tolerance", allow_zero=True)
        if self.data_noise_std is not None:
            check_positive_float(self.data_noise_std, "data_noise_std")
        if (std := max(self.noise_std, self.data_noise_std or 0)) > MAX_NOISE_STD:  # float32 squares: inf
            raise ValueError(f"noise_std and data_noise_std must be at most {MAX_NOISE_STD:g}, got {std:g}")
        for name in ("memorization", "landscape", "data_seeds", "double_descent"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_int(self.n_folds, "n_folds", minimum=2)
        if self.memorization_method not in MEMORIZATION_METHODS:
            raise ValueError(f"unknown memorization_method {self.memorization_method!r}; valid values are "
                             f"{list(MEMORIZATION_METHODS)}")
        check_int(self.n_references, "n_references", minimum=2)
        if self.n_references % 2:
            raise ValueError(f"n_references must be even (every sample in exactly half), got {self.n_references}")
        audit = (self.audit,) if isinstance(self.audit, str) else tuple(self.audit)
        unknown = [a for a in audit if a not in AUDIT_TARGETS]
        if unknown:
            raise ValueError(f"unknown audit target(s) {unknown}; valid values are {list(AUDIT_TARGETS)}")
        object.__setattr__(self, "audit", audit)
        table = self.remedies if isinstance(self.remedies, dict) else None
        if table is not None:  # a TOML [remedies] table: the remedies, and optionally the three fields beside them
            table = dict(table)
            for key, name in (("targets", "remedy_targets"), ("dp-clip", "dp_clip"), ("audit", "remedy_audit")):
                if key in table:
                    object.__setattr__(self, name, table.pop(key))
        object.__setattr__(self, "remedies", tuple(r.text for r in parse_remedies(table if table is not None
                                                                                   else self.remedies)))
        targets = (self.remedy_targets,) if isinstance(self.remedy_targets, str) else tuple(self.remedy_targets)
        unknown = [a for a in targets if a not in AUDIT_TARGETS]
        if unknown or (self.remedies and not targets):
            raise ValueError(f"remedy_targets must name one or both of {list(AUDIT_TARGETS)}, got {list(targets)}")
        object.__setattr__(self, "remedy_targets", targets)
        object.__setattr__(self, "dp_clip", check_positive_float(self.dp_clip, "dp_clip"))
        if not isinstance(self.remedy_audit, bool):
            raise TypeError(f"remedy_audit must be True or False, got {self.remedy_audit!r}")
        if "early-stop" in self.remedies and fractions[1] == 0:
            raise ValueError("the early-stop remedy needs a validation split: fractions gives it none")
        if self.remedies and self.search != "grid":
            raise ValueError("remedies need search='grid' (the grow search has no fixed widest architecture)")
        train = TrainConfig.from_dict(self.train) if isinstance(self.train, dict) else self.train
        if not isinstance(train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig or a dict, got {type(train).__name__}")
        object.__setattr__(self, "train", train)

    # -- the grid ---------------------------------------------------------------------------------------------
    def runs(self):
        """Every autoencoder of the grid, in a fixed order (PCA runs: :meth:`pca_runs`)."""
        return [RunSpec(k, (w,) * d, s, kind=self.architecture) for d in self.depths for w in self.widths
                for k in self.bottlenecks for s in self.seeds]

    def widest_run(self):
        """The largest autoencoder of the grid (its first seed): the widest width at the deepest depth and the
        largest bottleneck. The one the audit and the memorization scores describe, known before anything trains.

        Examples
        --------
        >>> StudyConfig(bottlenecks=(2, 8), widths=(16, 64), depths=(1, 2), seeds=(3, 4)).widest_run().run
        'ae-k8-h64-64-s3'
        """
        return RunSpec(max(self.bottlenecks), (max(self.widths),) * max(self.depths), self.seeds[0],
                       kind=self.architecture)

    def pca_runs(self):
        """PCA at every bottleneck of the grid (and, with ``data_seeds``, on every seed's data draw)."""
        if self.data_seeds:
            return [RunSpec.pca(k, s) for k in self.bottlenecks for s in self.seeds]
        return [RunSpec.pca(k) for k in self.bottlenecks]

    def data_seed(self, seed):
        """The seed of the split and noise draw a run of training seed ``seed`` works on."""
        return self.seed if not self.data_seeds or seed is None else self.seed + seed

    # -- serialization ----------------------------------------------------------------------------------------
    def to_dict(self):
        """The fields as JSON-ready values; the remedy fields only in a study that has remedies (a folder made
        before they existed reads as the same config)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in REMEDY_FIELDS and not self.remedies:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if f.name == "train" else list(value) if isinstance(value, tuple) else value
        return out

    def to_toml(self):
        """TOML text with the top-level fields first and the training settings in a ``[train]`` table."""
        data = self.to_dict()
        train = data.pop("train")
        remedies = {k: data.pop(k) for k in REMEDY_FIELDS if k in data}
        lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if v is not None]  # TOML has no null
        lines += ["", "[train]"] + [f"{k} = {_toml_value(v)}" for k, v in train.items() if v is not None]
        if remedies:
            table = {}
            for text in remedies.pop("remedies"):
                name, _, value = text.partition("=")
                if value:
                    table.setdefault(name, []).append(float(value))
                else:
                    table[name] = True
            table.update({"targets": remedies["remedy_targets"], "dp-clip": remedies["dp_clip"],
                          "audit": remedies["remedy_audit"]})
            lines += ["", "[remedies]"] + [f"{json.dumps(k) if '-' in k else k} = {_toml_value(v)}"
                                           for k, v in table.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text):
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"invalid TOML: {exc}") from None

    @classmethod
    def from_file(cls, path):
        """Read a ``.toml`` or ``.json`` study config."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"study config {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".toml":
            return cls.from_toml(text)
        if path.suffix.lower() == ".json":
            try:
                return cls.from_json(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not valid JSON: {exc}") from None
        raise ValueError(f"study config {str(path)!r} must end in .toml or .json")


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
