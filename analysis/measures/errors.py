"""Seen-vs-unseen tables: one measurement per split, the pair's leakage, and the comparison with PCA."""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from autoenc.validation import check_array, check_same_shape

from .divergence import degrees_of_freedom
from .risk import sure
from .intervals import auc_interval, tpr_at_fpr_interval
from .memorization import _noise_fraction, membership_auc
from .reconstruction import pca_baseline, reconstruct_with, row_errors

__all__ = ["compare_to_pca", "measure_split", "pair_metrics", "sample_errors", "seen_unseen"]

DF_PROBES = 8192  # Hutchinson probes for df in all: the mean's Monte Carlo error is ~sqrt(2 k / 8192), 0.06 at k = 16


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
    """(clean, noise) checked, clean derived as ``X - noise`` when only the noise was given.

    Given only the clean signal, the noise stays None: :func:`_noise_fraction` takes it as ``X - clean`` chunk by
    chunk instead of copying it whole.
    """
    x_name = f"X_{split}"
    clean = None if clean is None else check_same_shape(clean, f"clean_{split}", X, x_name)
    noise = None if noise is None else check_same_shape(noise, f"noise_{split}", X, x_name)
    if clean is None and noise is not None:
        clean = X - noise
    return clean, noise


def measure_split(model, X, *, clean=None, noise=None, split="test"):
    """One split's measurement, the same for train, val and test: error, clean error, noise memorization.

    Parameters
    ----------
    model : Autoencoder or fitted transformer
    X : array-like of shape (n_samples, n_features)
        The model's inputs (noisy where noise was injected).
    clean, noise : array-like of shape (n_samples, n_features), optional
        Clean signal and injected noise of ``X``; given one, the other is ``X`` minus it.
    split : str
        The split's name, written into the row and used in error messages.

    Returns
    -------
    row : dict
        ``split, n_samples, mse, mse_clean, noise_memorization`` (NaN where clean/noise are unknown).
    samples : DataFrame
        ``split, sample`` (row of ``X``), ``error``, ``error_clean``.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((20, 3))
    >>> row, samples = measure_split(PCA(3).fit(X), X, clean=X, split="train")
    >>> row["n_samples"], round(row["mse"], 12)
    (20, 0.0)
    """
    X = check_array(X, f"X_{split}")
    clean, noise = _clean_and_noise(X, clean, noise, split)
    X_hat = reconstruct_with(model, X)
    samples = _samples_frame(X_hat, X, clean)
    row = {
        "split": split,
        "n_samples": len(X),
        "mse": float(samples["error"].mean()),
        "mse_clean": float(samples["error_clean"].mean()),
        "noise_memorization": math.nan if clean is None else _noise_fraction(X_hat, clean, noise, X),
    }
    return row, samples.assign(split=split)[["split", "sample", "error", "error_clean"]]


def pair_metrics(seen, unseen):
    """What the seen and unseen splits say together: gap, ratio, memorization, membership leakage, KS test.

    Parameters
    ----------
    seen, unseen : (row, samples)
        :func:`measure_split`'s output for the training split and for a held-out split.

    Returns
    -------
    dict
        ``gap, ratio, memorization, membership_auc`` with its 95% interval (``membership_auc_ci_low``,
        ``membership_auc_ci_high``: DeLong), ``tpr_at_1pct_fpr`` with its exact Clopper-Pearson interval
        (``tpr_at_1pct_fpr_ci_low``, ``tpr_at_1pct_fpr_ci_high``; a warning when the unseen split has fewer than 100
        samples, too few to resolve 1%), ``ks_statistic, ks_pvalue``.
    """
    from scipy.stats import ks_2samp  # on first use: a worker imports this module long before it measures

    (row_seen, samples_seen), (row_unseen, samples_unseen) = seen, unseen
    e_seen, e_unseen = samples_seen["error"].to_numpy(), samples_unseen["error"].to_numpy()
    ks = ks_2samp(e_seen, e_unseen)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(row_unseen["mse"]) / np.float64(row_seen["mse"]))
    auc_low, auc_high = auc_interval(e_seen, e_unseen)
    tpr = tpr_at_fpr_interval(e_seen, e_unseen, 0.01)
    return {
        "gap": row_unseen["mse"] - row_seen["mse"],
        "ratio": ratio,
        "memorization": row_seen["noise_memorization"] - row_unseen["noise_memorization"],
        "membership_auc": membership_auc(e_seen, e_unseen),
        "membership_auc_ci_low": auc_low,
        "membership_auc_ci_high": auc_high,
        "tpr_at_1pct_fpr": tpr["tpr"],
        "tpr_at_1pct_fpr_ci_low": tpr["ci_low"],
        "tpr_at_1pct_fpr_ci_high": tpr["ci_high"],
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
    }


PAIR_COLUMNS = ("gap", "ratio", "memorization", "membership_auc", "membership_auc_ci_low", "membership_auc_ci_high",
                "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci_low", "tpr_at_1pct_fpr_ci_high", "ks_statistic", "ks_pvalue")


def seen_unseen(model, X_train, X_test, *, clean_train=None, noise_train=None, clean_test=None, noise_test=None,
                X_val=None, clean_val=None, noise_val=None, sigma=None, return_samples=False, pairs=True):
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
    X_val, clean_val, noise_val : array-like, optional
        A validation split, measured the same way (a ``val`` row between train and test).
    sigma : float, optional
        Std of isotropic Gaussian noise in the inputs, when known: adds ``df`` (the model's degrees of freedom,
        :func:`~.divergence.degrees_of_freedom` over the unseen inputs, val and test; beyond 256 features
        Hutchinson's estimate with ``DF_PROBES`` probes in all, at most 8 a row, so that its cost stays that of a
        few thousand rows on large data) and ``sure`` (Stein's estimate of the error against the clean signal,
        :func:`~analysis.measures.risk.sure`) to the unseen rows.
    return_samples : bool, default False
        Also return the per-sample errors.
    pairs : bool, default True
        False leaves the :func:`pair_metrics` columns (``PAIR_COLUMNS``) NaN, for a caller that computes them
        elsewhere from the per-sample errors: a study's worker, where their scipy.stats would take 0.44 s to import.

    Returns
    -------
    summary : DataFrame
        One row per split (``train``, ``val`` when given, ``test``) with :func:`measure_split`'s columns, then the
        train/test pair's :func:`pair_metrics` on the train and test rows (NaN on the val row): ``gap`` (test mse
        minus train mse), ``ratio``, ``memorization`` (train minus test noise memorization), ``membership_auc``,
        ``tpr_at_1pct_fpr`` (see :func:`tpr_at_fpr`), ``ks_statistic``, ``ks_pvalue``.
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
    if not isinstance(pairs, bool):
        raise TypeError(f"pairs must be True or False, got {pairs!r}")
    X_train = check_array(X_train, "X_train")
    X_test = check_array(X_test, "X_test")
    given = {"train": (X_train, clean_train, noise_train), "test": (X_test, clean_test, noise_test)}
    if X_val is not None:
        given["val"] = (check_array(X_val, "X_val"), clean_val, noise_val)
    for split, (X, _, _) in given.items():
        if X.shape[1] != X_train.shape[1]:
            raise ValueError(f"X_train and X_{split} must have the same number of features, got shapes "
                             f"{X_train.shape} and {X.shape}")
    measured = {split: measure_split(model, X, clean=clean, noise=noise, split=split)
                for split, (X, clean, noise) in given.items()}
    pair = pair_metrics(measured["train"], measured["test"]) if pairs else dict.fromkeys(PAIR_COLUMNS, math.nan)
    order = [s for s in ("train", "val", "test") if s in measured]
    summary = pd.DataFrame([{**measured[s][0], **(pair if s != "val" else dict.fromkeys(pair, math.nan))}
                            for s in order])
    if sigma is not None:
        unseen = np.concatenate([given[s][0] for s in order if s != "train"])
        df = degrees_of_freedom(model, unseen, n_probes=min(8, max(1, math.ceil(DF_PROBES / len(unseen)))))
        held_out = (summary["split"] != "train").to_numpy()
        summary["df"] = np.where(held_out, df, math.nan)
        summary["sure"] = np.where(held_out, sure(summary["mse"].to_numpy(), sigma, df, X_train.shape[1]), math.nan)
    if not return_samples:
        return summary
    return summary, pd.concat([measured[s][1] for s in order], ignore_index=True)


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
