"""Data before a model sees it: built-in and user datasets, index splits, static noise, train-only scaling."""
from __future__ import annotations

import difflib
import gzip
import importlib.util
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoenc._files import _FILE_TYPES, _kind, _read_file
from autoenc._split import Split, split
from autoenc.validation import check_array, check_int, check_positive_float

__all__ = ["DATASETS", "Dataset", "load_dataset", "Split", "split", "add_noise", "Scaler", "feature_scale_ratio",
           "scale_warning"]

DATASETS = ("digits", "mnist1d", "noise", "lowrank", "swissroll", "patches")
# The optional arguments each source understands; any other one is an error rather than silently ignored.
_OPTIONS = {"digits": ("n_samples",), "mnist1d": ("n_samples", "n_features"), "noise": ("n_samples", "n_features"),
            "lowrank": ("n_samples", "n_features", "rank", "noise_std"), "swissroll": ("n_samples", "noise_std"),
            "patches": ("n_samples",), "file": ("n_samples", "label_column")}
_DEFAULT_N = {"mnist1d": 4000, "noise": 1000, "lowrank": 1000, "swissroll": 1000}


@dataclass(frozen=True)
class Dataset:
    """A data matrix with optional labels.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float32
    y : ndarray of shape (n_samples,) or None
        Class labels (int64 for digits, mnist1d and IDX), the position along the roll for swissroll (float64),
        whatever a file holds, or None.
    name : str
        The dataset's name, or the file's stem.
    image_shape : tuple of int or None
        ``(rows, cols)`` when each row of ``X`` is a flattened image: (8, 8) for digits and patches, the IDX
        file's shape.
    """

    X: np.ndarray
    y: np.ndarray | None
    name: str
    image_shape: tuple[int, int] | None = None


def load_dataset(name_or_path, *, n_samples=None, n_features=None, rank=None, noise_std=None, seed=0,
                 label_column=None):
    """Load a built-in dataset by name, or a data file by path.

    Every dataset comes back as float32 (what the models train in). Built-ins: ``digits`` (scikit-learn's 1797
    8x8 digits divided by 16, so in [0, 1]); ``mnist1d`` (generated offline by the ``mnist1d`` package, 40
    features, standardized by that package to mean 0 and std 1 over the whole set; the global ``random`` and
    ``numpy.random`` states are restored afterwards); ``noise`` (standard Gaussian); ``lowrank`` (``Z @ W`` with
    ``Z`` standard Gaussian of shape (n_samples, rank) and ``W`` with orthonormal rows, plus Gaussian noise of
    ``noise_std``); ``swissroll`` (scikit-learn's 3-D roll, unscaled, ``y`` the position along it); ``patches``
    (the 8,480 non-overlapping 8x8 grayscale tiles of the two photographs bundled with scikit-learn, in [0, 1],
    ``y`` the photograph: see :func:`_patches`). A name that
    is not built in is read as a path: ``.npy`` (a 2-D array), ``.npz`` (arrays ``X`` and optional ``y``, or a
    single array), ``.csv`` (numeric columns, an optional header row, ``label_column`` becomes ``y``) or IDX
    (uint8 scaled to [0, 1]; labels are read from the ``labels-idx1`` file beside it when there is one).

    Parameters
    ----------
    name_or_path : str or os.PathLike
        One of :data:`DATASETS`, or a path.
    n_samples : int, optional
        Samples to generate (default 4000 for mnist1d, 1000 for the others); for digits, patches and files, keep
        the first ``n_samples`` rows.
    n_features : int, optional
        Dimension for noise and lowrank (default 64) and mnist1d (default 40).
    rank : int, optional
        lowrank's rank, 1 <= rank <= n_features (default 4).
    noise_std : float, optional
        Std of the Gaussian noise added to lowrank and swissroll (default 0).
    seed : int
        Seeds the generated datasets; the data is a function of the arguments alone.
    label_column : str, optional
        CSV header name of the column that holds the labels.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = load_dataset("lowrank", n_samples=200, n_features=16, rank=3, seed=1)
    >>> data.X.shape, data.X.dtype, int(np.linalg.matrix_rank(data.X))
    ((200, 16), dtype('float32'), 3)
    """
    path = _as_path(name_or_path)
    source = "file" if path is not None else name_or_path
    given = dict(n_samples=n_samples, n_features=n_features, rank=rank, noise_std=noise_std,
                 label_column=label_column)
    extra = [k for k, v in given.items() if v is not None and k not in _OPTIONS[source]]
    if extra:
        what = f"a data file ({path})" if path is not None else f"dataset {source!r}"
        raise ValueError(f"{', '.join(extra)} does not apply to {what}, which accepts {', '.join(_OPTIONS[source])}")
    n = _DEFAULT_N.get(source) if n_samples is None else check_int(n_samples, "n_samples", minimum=1)
    d = (40 if source == "mnist1d" else 64) if n_features is None else check_int(n_features, "n_features", minimum=1)
    r = 4 if rank is None else check_int(rank, "rank", minimum=1)
    if source == "lowrank" and r > d:
        raise ValueError(f"rank must be <= n_features ({d}), got {r}")
    std = 0.0 if noise_std is None else check_positive_float(noise_std, "noise_std", allow_zero=True)
    seed = check_int(seed, "seed", minimum=0, maximum=2**32 - 1 if source == "mnist1d" else None)  # np.random.seed
    if label_column is not None and not isinstance(label_column, str):
        raise TypeError(f"label_column must be a column name (str), got {label_column!r}")

    if path is not None:
        X, y, name, image_shape = _read_file(path, label_column)
        return _dataset(X, y, name, n, image_shape, source=f"the data in {path}")
    if source == "digits":
        pixels, labels = _digits()
        return _dataset(pixels / 16.0, labels, "digits", n, image_shape=(8, 8))
    if source == "mnist1d":
        return _dataset(*_mnist1d(n, d, seed), "mnist1d", None)
    if source == "patches":
        return _dataset(*_patches(), "patches", n, image_shape=(_PATCH, _PATCH))
    rng = np.random.default_rng(seed)
    if source == "noise":
        return _dataset(rng.standard_normal((n, d)), None, "noise", None)
    if source == "lowrank":
        W = np.linalg.qr(rng.standard_normal((d, r)))[0].T  # (r, d), orthonormal rows
        X = rng.standard_normal((n, r)) @ W
        return _dataset(X + std * rng.standard_normal((n, d)) if std > 0 else X, None, "lowrank", None)
    from sklearn.datasets import make_swiss_roll

    X, t = make_swiss_roll(n, noise=std, random_state=seed)
    return _dataset(X, t, "swissroll", None)


def _as_path(name_or_path):
    """None for a built-in name, else an existing, supported file's Path; raise for anything else."""
    if isinstance(name_or_path, str) and name_or_path in DATASETS:
        return None
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a dataset name or a path, got {type(name_or_path).__name__}")
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and not path.exists() and _kind(path) is None:
        close = difflib.get_close_matches(name_or_path, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown dataset {name_or_path!r}; expected one of {', '.join(DATASETS)}, "
                         f"or a path to a {_FILE_TYPES} file{hint}")
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if not path.is_file() or _kind(path) is None:
        raise ValueError(f"cannot load {path}: expected a {_FILE_TYPES} file")
    return path


def _dataset(X, y, name, n_samples, image_shape=None, source=None):
    X = check_array(X, source or name, dtype=np.float32)
    if y is not None and np.shape(y) != (len(X),):
        raise ValueError(f"the labels of {source or name} have shape {np.shape(y)}, expected ({len(X)},)")
    if n_samples is not None and n_samples > len(X):
        raise ValueError(f"n_samples={n_samples} exceeds the {len(X)} samples in {source or name}")
    if n_samples is not None:
        X, y = X[:n_samples], None if y is None else y[:n_samples]
    return Dataset(X, None if y is None else np.asarray(y), name, image_shape)


def _digits():
    """scikit-learn's digits (pixels 0-16, labels), read as its ``load_digits`` reads them: the same file through the
    same ``np.loadtxt``, the same values. Without importing scikit-learn, which would take about 1 s of a study's
    start before its workers get their first task; where the file is not found, through ``load_digits``."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    folder = spec.submodule_search_locations if spec is not None else None
    path = Path(folder[0]) / "datasets" / "data" / "digits.csv.gz" if folder else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data, digits.target.astype(np.int64)
    with gzip.open(path, mode="rt", encoding="utf-8") as file:
        table = np.loadtxt(file, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def _mnist1d(n, d, seed):
    """(X, y) from mnist1d's generator; it seeds the global RNGs, so their states are put back."""
    states = random.getstate(), np.random.get_state()
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # lazy: it pulls in matplotlib and requests

        args = get_dataset_args()
        args.num_samples, args.final_seq_length, args.seed = -(-n // 10) * 10, d, seed  # 10 classes, equal counts
        data = make_dataset(args)  # never get_dataset: it downloads and caches a pickle in the working directory
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    X, y = np.concatenate([data["x"], data["x_test"]]), np.concatenate([data["y"], data["y_test"]])
    return X[:n], y[:n].astype(np.int64)


_PATCH = 8  # pixels per side: the digits' shape, so the default grid's bottlenecks (up to 32) stay below d = 64
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what Pillow's convert("L") uses


def _patches():
    """(X, y): the non-overlapping 8x8 tiles of scikit-learn's two sample photographs, in a fixed shuffled order.

    ``china.jpg`` and ``flower.jpg`` (427 x 640 RGB, bundled with scikit-learn, decoded by Pillow, which
    matplotlib already requires) become grayscale (BT.601 luma) divided by 255, so in [0, 1], and are cut into a
    grid of 53 x 80 tiles each (the last 3 rows of pixels are left out): 8,480 patches, ``y`` 0 for china and 1 for
    the flower. The tiles do not overlap, so an unseen patch shares no pixel with a seen one (overlapping patches
    would make the unseen error, and any membership test, look better than they are). The order is one fixed
    permutation, so that the first ``n_samples`` are a sample of both photographs, not the top of the first.
    """
    from sklearn.datasets import load_sample_images

    tiles, labels = [], []
    for label, image in enumerate(load_sample_images().images):
        gray = image.astype(np.float64) @ _LUMA / 255.0
        rows, cols = gray.shape[0] // _PATCH, gray.shape[1] // _PATCH
        grid = gray[:rows * _PATCH, :cols * _PATCH].reshape(rows, _PATCH, cols, _PATCH).swapaxes(1, 2)
        tiles.append(grid.reshape(rows * cols, _PATCH * _PATCH))
        labels.append(np.full(rows * cols, label, dtype=np.int64))
    order = np.random.default_rng(0).permutation(sum(map(len, tiles)))
    return np.concatenate(tiles)[order], np.concatenate(labels)[order]


def add_noise(X, std, seed=0):
    """Add static Gaussian noise: one draw per sample, fixed by ``seed`` (not redrawn per epoch).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    std : float
        Noise standard deviation, >= 0 (0 gives zero noise).
    seed : int

    Returns
    -------
    X_noisy : ndarray of shape (n_samples, n_features)
        ``X + noise``, in ``X``'s floating dtype (integer input becomes float64).
    noise : ndarray of shape (n_samples, n_features)
        The noise, in the same dtype; the draw does not depend on that dtype.
    """
    X = check_array(X, "X")
    std = check_positive_float(std, "std", allow_zero=True)
    seed = check_int(seed, "seed", minimum=0)
    noise = (std * np.random.default_rng(seed).standard_normal(X.shape)).astype(X.dtype)
    return X + noise, noise


class Scaler:
    """Per-feature affine scaling, fitted on the training split only and then applied to every split.

    ``method="standard"`` subtracts the mean and divides by the std, ``"minmax"`` maps the training range to
    [0, 1], ``"none"`` is the identity. Constant columns get scale 1, so they are only shifted. Output keeps the
    input's floating dtype.

    Attributes
    ----------
    offset_ : ndarray of shape (n_features,), float64
    scale_ : ndarray of shape (n_features,), float64
        ``transform(X) = (X - offset_) / scale_``.
    """

    METHODS = ("standard", "minmax", "none")

    def __init__(self, method="standard"):
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.method = method

    def fit(self, X_train):
        """Learn ``offset_`` and ``scale_`` from ``X_train`` of shape (n_samples, n_features); return self."""
        X = check_array(X_train, "X_train").astype(np.float64)
        if self.method == "standard":
            offset, scale = X.mean(axis=0), X.std(axis=0)
        elif self.method == "minmax":
            offset, scale = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
        else:
            offset, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        scale[scale <= 1e-12 * np.maximum(1.0, np.abs(offset))] = 1.0  # constant column: no division by ~0
        self.offset_, self.scale_ = offset, scale
        return self

    def transform(self, X):
        """Return ``(X - offset_) / scale_`` for ``X`` of shape (n_samples, n_features)."""
        X = self._check(X)
        return ((X - self.offset_) / self.scale_).astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Return ``X * scale_ + offset_``, undoing :meth:`transform`."""
        X = self._check(X)
        return (X * self.scale_ + self.offset_).astype(X.dtype, copy=False)

    def _check(self, X):
        if not hasattr(self, "scale_"):
            raise RuntimeError("this Scaler is not fitted yet; call fit(X_train) first")
        return check_array(X, "X", n_features=len(self.scale_))


def feature_scale_ratio(X):
    """Largest over smallest column standard deviation, leaving out columns that are (almost) constant.

    A column whose 1st and 99th percentiles coincide (constant, or almost always one value, like a border pixel)
    is left out.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    float
        1.0 with fewer than two varying columns.

    Examples
    --------
    >>> round(feature_scale_ratio(np.column_stack([np.linspace(0, 1, 50), np.linspace(0, 1000, 50)])), 6)
    1000.0
    """
    X = check_array(X, "X").astype(np.float64, copy=False)
    low, high = np.percentile(X, [1, 99], axis=0)
    sd = X.std(axis=0)[high > low]
    return float(sd.max() / sd.min()) if len(sd) >= 2 else 1.0


def scale_warning(X, *, ratio=100.0):
    """A one-line warning when the features' scales differ by orders of magnitude, else None.

    Unscaled, the largest columns dominate every squared error, so the autoencoders and PCA mostly model them.
    The scale of a column is its standard deviation; columns whose 1st and 99th percentiles coincide (constant,
    or almost always one value, like a border pixel) are left out, so image data does not trigger it.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data as the model would see it.
    ratio : float
        Warn when the largest column scale exceeds the smallest by more than this factor.

    Returns
    -------
    str or None
        The warning, naming ``--scale standard``, or None when the scales are comparable.

    Examples
    --------
    >>> X = np.column_stack([np.linspace(0, 1, 50), np.linspace(0, 1000, 50)])
    >>> scale_warning(X).split(" (")[0]
    'feature scales differ by a factor of 1,000'
    >>> scale_warning(X[:, :1]) is None
    True
    """
    X = check_array(X, "X").astype(np.float64, copy=False)
    ratio = check_positive_float(ratio, "ratio")
    low, high = np.percentile(X, [1, 99], axis=0)
    sd = X.std(axis=0)[high > low]
    if len(sd) < 2 or sd.max() <= ratio * sd.min():
        return None
    return (f"feature scales differ by a factor of {sd.max() / sd.min():,.0f} (column std {sd.min():.3g} to "
            f"{sd.max():.3g}), so the largest columns dominate every error; use --scale standard "
            "(scale='standard')")
