"""Seen-vs-unseen tables: one measurement per split, the pair's leakage, and the comparison with PCA."""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from autoenc.validation import check_array, check_same_shape

from .memorization import _noise_fraction, membership_auc, tpr_at_fpr
from .reconstruction import pca_baseline, reconstruct_with, row_errors

__all__ = ["compare_to_pca", "sample_errors", "seen_unseen"]

SPLITS = ("train", "test")


def sample_errors(model, X, *, clean=None):
    """Per-sample errors as a tidy frame, against the input and, when given, against the clean signal.

    Parameters
    ----------
    model : Autoencoder or fitted transformer
    X : array-like of shape (n_samples, n_features)
    clean : array-like of shape (n_samples, n_features), optional

    Returns
    -------
    DataFrame
        One row per sample: ``sample`` (row of ``X``), ``error``, ``error_clean`` (NaN without ``clean``).

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((20, 3))
    >>> list(sample_errors(PCA(1).fit(X), X).columns)
    ['sample', 'error', 'error_clean']
    """
    X = check_array(X, "X")
    clean = None if clean is None else check_same_shape(clean, "clean", X, "X")
    X_hat = reconstruct_with(model, X)
    return _samples_frame(X_hat, X, clean)


def _samples_frame(X_hat, X, clean):
    error_clean = np.full(len(X), math.nan) if clean is None else row_errors(X_hat, clean)
    return pd.DataFrame({"sample": np.arange(len(X)), "error": row_errors(X_hat, X), "error_clean": error_clean})


def _clean_and_noise(X, clean, noise, split):
    """Both of (clean, noise) from whichever was given (``X = clean + noise``), or (None, None)."""
    x_name = f"X_{split}"
    clean = None if clean is None else check_same_shape(clean, f"clean_{split}", X, x_name)
    noise = None if noise is None else check_same_shape(noise, f"noise_{split}", X, x_name)
    if clean is None and noise is not None:
        clean = X - noise
    elif noise is None and clean is not None:
        noise = X - clean
    return clean, noise


def seen_unseen(model, X_train, X_test, *, clean_train=None, noise_train=None, clean_test=None, noise_test=None,
                return_samples=False):
    """Seen (train) versus unseen (test) reconstruction error, noise memorization and membership leakage.

    Parameters
    ----------
    model : Autoencoder or fitted transformer
        Trained on ``X_train``. See :func:`reconstruct_with`.
    X_train : array-like of shape (n_train, n_features)
        The inputs the model was trained on (noisy where noise was injected).
    X_test : array-like of shape (n_test, n_features)
        Held-out inputs (carrying their own noise of the same law).
    clean_train, noise_train : array-like of shape (n_train, n_features), optional
        Clean signal and injected noise of ``X_train``; given one, the other is ``X_train`` minus it.
    clean_test, noise_test : array-like of shape (n_test, n_features), optional
        The same for ``X_test``.
    return_samples : bool, default False
        Also return the per-sample errors.

    Returns
    -------
    summary : DataFrame
        Two rows (``split`` in train, test) with ``n_samples``, ``mse`` (against the input), ``mse_clean``
        (against the clean signal; NaN when neither clean nor noise is known) and ``noise_memorization`` (NaN
        without clean/noise or when the noise is all zero); then the pair's columns, the same on both rows:
        ``gap`` (test mse minus train mse), ``ratio`` (test mse over train mse), ``memorization`` (train minus
        test noise memorization), ``membership_auc``, ``tpr_at_1pct_fpr`` (see :func:`tpr_at_fpr`) and
        ``ks_statistic``, ``ks_pvalue`` (two-sample Kolmogorov-Smirnov test of the two error distributions).
    samples : DataFrame
        Only with ``return_samples``: columns ``split``, ``sample`` (row of that split's array), ``error``,
        ``error_clean``.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> rng = np.random.default_rng(0)
    >>> X_train, X_test = rng.random((50, 6)), rng.random((30, 6))
    >>> table = seen_unseen(PCA(3).fit(X_train), X_train, X_test)
    >>> table["split"].tolist(), bool((table["gap"] > 0).all())
    (['train', 'test'], True)
    """
    X_train = check_array(X_train, "X_train")
    X_test = check_array(X_test, "X_test")
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(
            f"X_train and X_test must have the same number of features, got shapes {X_train.shape} and "
            f"{X_test.shape}"
        )
    given = {"train": (X_train, clean_train, noise_train), "test": (X_test, clean_test, noise_test)}
    rows, frames, errors = [], [], {}
    for split in SPLITS:
        X, clean, noise = given[split]
        clean, noise = _clean_and_noise(X, clean, noise, split)
        X_hat = reconstruct_with(model, X)
        samples = _samples_frame(X_hat, X, clean)
        errors[split] = samples["error"].to_numpy()
        frames.append(samples.assign(split=split))
        rows.append({
            "split": split,
            "n_samples": len(X),
            "mse": float(samples["error"].mean()),
            "mse_clean": float(samples["error_clean"].mean()),
            "noise_memorization": math.nan if noise is None else _noise_fraction(X_hat, clean, noise),
        })
    summary = pd.DataFrame(rows)
    train, test = summary.iloc[0], summary.iloc[1]
    ks = ks_2samp(errors["train"], errors["test"])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(test["mse"]) / np.float64(train["mse"]))
    pair = {
        "gap": test["mse"] - train["mse"],
        "ratio": ratio,
        "memorization": train["noise_memorization"] - test["noise_memorization"],
        "membership_auc": membership_auc(errors["train"], errors["test"]),
        "tpr_at_1pct_fpr": tpr_at_fpr(errors["train"], errors["test"], 0.01),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
    }
    summary = summary.assign(**pair)
    if not return_samples:
        return summary
    samples = pd.concat(frames, ignore_index=True)[["split", "sample", "error", "error_clean"]]
    return summary, samples


def _bottleneck_of(model):
    config = getattr(model, "config", None)
    if isinstance(getattr(config, "bottleneck", None), numbers.Integral):
        return int(config.bottleneck)
    for attribute in ("n_components_", "n_components"):
        value = getattr(model, attribute, None)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    raise ValueError(
        f"cannot tell the bottleneck of model ({type(model).__name__}): it has no config.bottleneck, "
        "n_components_ or integer n_components; pass bottleneck= explicitly"
    )


def compare_to_pca(model, X_train, X_test, bottleneck=None, *, clean_train=None, noise_train=None,
                   clean_test=None, noise_test=None, return_samples=False, random_state=0):
    """:func:`seen_unseen` for a model and for its PCA baseline with as many components, stacked.

    Parameters
    ----------
    model : Autoencoder or fitted transformer
        Trained on ``X_train``.
    X_train, X_test : array-like of shape (n_train, n_features), (n_test, n_features)
    bottleneck : int, optional
        PCA's number of components; by default ``model.config.bottleneck`` (Autoencoder) or
        ``model.n_components_`` / ``model.n_components`` (transformers).
    clean_train, noise_train, clean_test, noise_test : array-like, optional
        As in :func:`seen_unseen`.
    return_samples : bool, default False
        Also return the per-sample errors of both models.
    random_state : int, default 0
        For :func:`pca_baseline`.

    Returns
    -------
    summary : DataFrame
        :func:`seen_unseen`'s rows with a first column ``model`` in {"autoencoder", "pca"} (four rows).
    samples : DataFrame
        Only with ``return_samples``: :func:`seen_unseen`'s samples with the ``model`` column.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> rng = np.random.default_rng(0)
    >>> X_train, X_test = rng.random((50, 6)), rng.random((30, 6))
    >>> table = compare_to_pca(PCA(3).fit(X_train), X_train, X_test)
    >>> table[["model", "split"]].values.tolist()
    [['autoencoder', 'train'], ['autoencoder', 'test'], ['pca', 'train'], ['pca', 'test']]
    """
    bottleneck = _bottleneck_of(model) if bottleneck is None else bottleneck
    baseline = pca_baseline(X_train, bottleneck, random_state=random_state)
    kwargs = {"clean_train": clean_train, "noise_train": noise_train, "clean_test": clean_test,
              "noise_test": noise_test, "return_samples": True}
    parts = {name: seen_unseen(m, X_train, X_test, **kwargs) for name, m in
             (("autoencoder", model), ("pca", baseline))}
    summary = pd.concat([s.assign(model=name) for name, (s, _) in parts.items()], ignore_index=True)
    summary = summary[["model", *summary.columns.drop("model")]]
    if not return_samples:
        return summary
    samples = pd.concat([s.assign(model=name) for name, (_, s) in parts.items()], ignore_index=True)
    return summary, samples[["model", *samples.columns.drop("model")]]
