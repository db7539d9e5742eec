"""The data a study works on: loaded, split, scaled on the training split, noise injected in the model's units.

Everything a worker needs travels in one :class:`StudyData`: the inputs as the models see them, the clean signal,
the injected noise, the split, and what selection needs to know (the noise level, fresh validation noise).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from autoenc import add_noise, load_dataset, split
from autoenc.data import Scaler, scale_warning
from autoenc.validation import check_array, check_int

from .config import StudyConfig
from .integrity import array_fingerprint
from ..measures.risk import nm_reference

__all__ = ["StudyData", "prepare_data", "principal_axes"]

MIN_SAMPLES = 10  # below this no split leaves two samples a side to compare
DENOISE_LEVEL = 0.2  # fresh validation noise, relative to the inputs' RMS feature std, when no noise is known


@dataclass
class StudyData:
    """Everything a worker needs: inputs as the models see them, the clean signal, the injected noise, the split."""

    X: np.ndarray          # (n_samples, n_features) float32, noisy and scaled
    clean: np.ndarray      # the same samples without noise (scaled the same way)
    noisy: bool            # noise was injected: X - clean (derived on demand, not stored: data can be large)
    y: np.ndarray | None
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str
    image_shape: tuple | None
    sigma: float | None = None  # std of the (isotropic) noise in X when known: for SURE
    denoise_noise: np.ndarray | None = None  # fresh noise for the validation inputs when nothing else is known
    fingerprint: str | None = None  # content hash of the data as loaded (features and labels)
    _nm_references: dict = field(default_factory=dict, repr=False, compare=False)  # k -> nm_reference(k), "axes"

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def noise(self):
        """The injected noise ``X - clean`` of every sample, or None when no noise was injected."""
        return self.X - self.clean if self.noisy else None

    @property
    def pool(self):
        """Dataset rows whose membership in the study's runs is known (training and test samples), sorted: what
        reference models train on halves of."""
        return np.sort(np.concatenate([self.train, self.test]))

    def inputs(self, rows):
        """``X[rows]``: the inputs of those dataset rows (a view rather than a copy where the data is shared)."""
        return self.X[rows]

    def noise_of(self, idx):
        """The injected noise of the rows ``idx`` (None when no noise was injected)."""
        return self.X[idx] - self.clean[idx] if self.noisy else None

    @property
    def labels(self):
        """Integer class labels, or None (continuous targets are not classes)."""
        y = self.y
        return y if y is not None and np.issubdtype(np.asarray(y).dtype, np.integer) else None

    def nm_reference(self, k):
        """What the rank-k PCA projection of the training inputs keeps of the noise (NaN without noise).

        The noise covariance is estimated from the held-out samples' noise, which the projection never saw: the
        training noise would be biased toward the directions PCA fitted (its share comes out above k/d)."""
        if not self.noisy:
            return np.nan
        if k not in self._nm_references:  # a PCA fit per bottleneck, not per run (seconds at 60,000 x 784)
            self._nm_references[k] = self._nm_reference(k)
        return self._nm_references[k]

    def _nm_reference(self, k):
        if "axes" not in self._nm_references:  # one decomposition for every bottleneck
            self._nm_references["axes"] = principal_axes(self.inputs(self.train))
        components = self._nm_references["axes"][:k]
        held_out = [rows for rows in (self.val, self.test) if len(rows)] or [self.train]  # split by split: views
        return nm_reference(components, np.concatenate([self.noise_of(rows) for rows in held_out]))  # where shared

    def split_arrays(self, split_name):
        """``(X, clean, noise)`` of one split."""
        idx = getattr(self, split_name)
        return self.X[idx], self.clean[idx], self.noise_of(idx)


def principal_axes(X, chunk=8192):
    """The principal axes of ``X`` as rows, largest variance first: the rank-k PCA projection is onto the first k.

    From the eigendecomposition of the centred covariance, summed in float64 over blocks of ``chunk`` rows (no
    float64 copy of ``X``: 60,000 x 784 inputs add 25 MB at a time). The span of the first k rows is scikit-learn's
    ``PCA(k).components_``'s (within float rounding, where the k-th and next variances differ); this is numpy only,
    so that a study needs no scikit-learn before its workers start.
    """
    X = check_array(X, "X")
    chunk = check_int(chunk, "chunk", minimum=1)
    mean = X.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((X.shape[1], X.shape[1]))
    for start in range(0, len(X), chunk):
        block = X[start:start + chunk].astype(np.float64) - mean
        covariance += block.T @ block
    return np.linalg.eigh(covariance)[1][:, ::-1].T


def _check_sizes(config, parts, name):
    """Refuse, before any work, splits too small for what the study computes on them."""
    need = {"training": (len(parts.train), 2), "test": (len(parts.test), 2)}
    if config.latent != "none":
        need["training"] = (len(parts.train), max(need["training"][1], 6))  # the kNN probe's 5 neighbours
    if config.memorization and config.memorization_method == "kfold":
        need["training"] = (len(parts.train), max(need["training"][1], config.n_folds))
    short = [f"{have} {split_name} samples (at least {want} needed)" for split_name, (have, want) in need.items()
             if have < want]
    if short:
        raise ValueError(f"{name} is too small for this study: {', '.join(short)}; use more data, other "
                         "split fractions, or fewer folds")


def prepare_data(config: StudyConfig, data_seed=None) -> StudyData:
    """Load ``config.dataset``, split it, scale on the training inputs, inject static noise; check the grid fits.

    ``data_seed`` (default ``config.seed``) seeds the split and the noise draw. The noise references of the
    config's bottlenecks (:meth:`StudyData.nm_reference`) are fitted here, once: they travel with the data, so a
    worker that trains and measures autoencoders fits no PCA (and imports no scikit-learn).
    """
    seed = config.seed if data_seed is None else data_seed
    data = load_dataset(config.dataset, seed=config.seed, **({"label_column": config.label_column}
                                                              if config.label_column else {}))
    n, d = data.X.shape
    if n < MIN_SAMPLES:
        raise ValueError(f"{data.name} has {n} samples; a study needs at least {MIN_SAMPLES} (train, validation and "
                         "test splits of a few samples each, two per side for the membership measures)")
    labels = data.y if data.y is not None and np.issubdtype(np.asarray(data.y).dtype, np.integer) else None
    parts = split(n, config.fractions, seed=seed, stratify=labels)
    _check_sizes(config, parts, data.name)
    if config.scale == "none" and data_seed is None and (message := scale_warning(data.X)):
        warnings.warn(message, UserWarning, stacklevel=3)
    too_big = [k for k in config.bottlenecks if k > d]
    if too_big:
        raise ValueError(f"bottlenecks {too_big} are larger than the number of features ({d}) of {data.name}")
    if max(config.bottlenecks) > len(parts.train):
        raise ValueError(f"bottlenecks go up to {max(config.bottlenecks)} but there are only {len(parts.train)} "
                         "training samples")
    # Noise is injected in the units the model sees (after scaling), so noise_std means the same on every dataset
    # and the noise is isotropic where the model works.
    raw = data.X.astype(np.float32)
    clean = Scaler(config.scale).fit(raw[parts.train]).transform(raw)
    X = add_noise(clean, config.noise_std, seed=seed)[0] if config.noise_std > 0 else clean
    variances = [v ** 2 for v in (config.noise_std, config.data_noise_std) if v]
    sigma = float(np.sqrt(sum(variances))) if variances else None
    denoise = None
    if sigma is None and len(parts.val):  # nothing known: validate by denoising fresh noise of a known level
        level = DENOISE_LEVEL * float(np.sqrt(np.mean(np.var(X[parts.train], axis=0, dtype=np.float64))))
        denoise = add_noise(X[parts.val], level, seed=seed + 1)[1]
    fingerprint = array_fingerprint(data.X, *([] if data.y is None else [np.asarray(data.y)]))
    # The noise is X - clean, exactly what the model's input carries beyond the clean signal.
    prepared = StudyData(X, clean, config.noise_std > 0, data.y, parts.train, parts.val, parts.test, data.name,
                         data.image_shape, sigma, denoise, fingerprint)
    for k in config.bottlenecks:
        prepared.nm_reference(k)
    prepared._nm_references.pop("axes", None)  # (d, d) floats that every task's pickle would carry
    return prepared
