"""How much of its training data a model stores: noise memorization, membership inference, per-sample scores."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autoenc.validation import check_array, check_int, check_positive_float

from ._ranks import rank_auc
from .reconstruction import reconstruction_errors, row_chunks

__all__ = ["membership_auc", "memorization_scores", "noise_memorization", "tpr_at_fpr"]


def _noise_fraction(reconstruction, clean, noise=None, X=None):
    """NM as a float, or NaN when the noise carries no energy (the ratio is undefined).

    Without ``noise`` it is ``X - clean``, taken chunk by chunk of rows like the float64 products, so that large
    data need no full-size copies.
    """
    energy = product = 0.0
    for rows in row_chunks(*clean.shape):
        e = noise[rows] if noise is not None else X[rows] - clean[rows]
        energy += float(np.sum(np.square(e, dtype=np.float64)))
        product += float(np.sum((reconstruction[rows].astype(np.float64, copy=False) - clean[rows]) * e))
    return math.nan if energy == 0.0 else product / energy


def noise_memorization(reconstruction, clean, noise):
    """Share of the injected noise a model reproduces: ``sum_i <x_hat_i - s_i, e_i> / sum_i ||e_i||^2``.

    With inputs ``x = s + e`` (``s`` clean, ``e`` the injected noise), the identity map scores 1, a perfect
    denoiser 0, and a fixed orthogonal rank-k projection about k/d on isotropic noise. A network that stores its
    training samples scores near 1 on the training split while its test score stays near k/d. Computed in float64.

    Parameters
    ----------
    reconstruction : array-like of shape (n_samples, n_features)
        The model's output ``x_hat`` for the noisy inputs ``s + e``.
    clean : array-like of shape (n_samples, n_features)
        The clean signal ``s``.
    noise : array-like of shape (n_samples, n_features)
        The injected noise ``e``; not all zero.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When the shapes differ (naming all three) or the noise is all zeros.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s, e = rng.random((50, 4)), 0.1 * rng.standard_normal((50, 4))
    >>> noise_memorization(s + e, s, e)  # the identity map reproduces all of the noise
    1.0
    >>> noise_memorization(s, s, e)  # a perfect denoiser none of it
    0.0
    """
    reconstruction = check_array(reconstruction, "reconstruction")
    clean = check_array(clean, "clean")
    noise = check_array(noise, "noise")
    if not reconstruction.shape == clean.shape == noise.shape:
        raise ValueError(
            "reconstruction, clean and noise must have the same shape, got reconstruction "
            f"{reconstruction.shape}, clean {clean.shape} and noise {noise.shape}"
        )
    value = _noise_fraction(reconstruction, clean, noise)
    if math.isnan(value):
        raise ValueError("noise is all zeros: noise memorization divides by the noise energy and is undefined")
    return value


def _check_errors(errors_train, errors_test):
    return check_array(errors_train, "errors_train", ndim=1), check_array(errors_test, "errors_test", ndim=1)


def membership_auc(errors_train, errors_test):
    """How well a sample's reconstruction error tells whether the model was trained on it (ROC AUC).

    Train samples are the positive class and a lower error is the stronger vote for "member": the AUC of
    ``-error``. 0.5 means the errors reveal nothing; 1 means every train sample has a lower error than every test
    sample; ties count one half. The same as scikit-learn's ``roc_auc_score``, computed from ranks.

    Parameters
    ----------
    errors_train : array-like of shape (n_train,)
        Per-sample reconstruction errors of samples the model was trained on.
    errors_test : array-like of shape (n_test,)
        Per-sample reconstruction errors of held-out samples.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> membership_auc([0.1, 0.2, 0.3], [0.4, 0.5])
    1.0
    >>> membership_auc([0.1, 0.5], [0.1, 0.5])
    0.5
    """
    errors_train, errors_test = _check_errors(errors_train, errors_test)
    return rank_auc(-errors_train, -errors_test)


def tpr_at_fpr(errors_train, errors_test, fpr=0.01):
    """True-positive rate of the error-threshold membership attack at a false-positive rate of at most ``fpr``.

    The attack flags a sample as a training member when its error is strictly below a threshold ``t``. ``t`` is
    the ``(m + 1)``-th smallest test error with ``m = floor(fpr * n_test)``, the largest threshold that flags at
    most ``m`` test samples; the result is the share of train samples flagged. This is the best TPR on the ROC
    curve among points with FPR <= ``fpr``. With fewer than ``1 / fpr`` test samples, ``m = 0``: the strictest
    threshold, flagging only train samples with a lower error than every test sample (zero false positives).

    Parameters
    ----------
    errors_train : array-like of shape (n_train,)
    errors_test : array-like of shape (n_test,)
    fpr : float, default 0.01
        Allowed false-positive rate, in [0, 1].

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> tpr_at_fpr([0.1, 0.2, 0.6], [0.3, 0.4, 0.5, 0.7], fpr=0.25)  # t = 0.4: one test sample flagged
    0.6666666666666666
    """
    errors_train, errors_test = _check_errors(errors_train, errors_test)
    fpr = check_positive_float(fpr, "fpr", allow_zero=True)
    if fpr > 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    m = math.floor(fpr * len(errors_test) + 1e-9)  # 1e-9: 0.29 * 100 must give 29, not 28
    if m >= len(errors_test):
        return 1.0
    threshold = np.partition(errors_test, m)[m]
    return float(np.mean(errors_train < threshold))


def memorization_scores(X, make_model, *, n_folds=5, repeats=1, seed=0, target=None, progress=None):
    """Per-sample memorization scores by K-fold cross-fitting (after Feldman & Zhang, 2020).

    Each repeat splits the samples into ``n_folds`` folds at random; for every fold a fresh ``make_model()`` is
    fitted on the other folds. A sample's *unseen* error is its error under the model that left it out, its
    *seen* error the mean under the ``n_folds - 1`` models trained on it; both are averaged over the repeats.
    ``score = error_unseen - error_seen``: large for samples a model only reconstructs because it stored them
    (outliers, mislabeled or noisy rows), near zero for samples the learned structure explains.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The inputs the models are trained on.
    make_model : callable
        ``make_model()`` returns a new unfitted estimator with ``fit``, ``transform`` and ``inverse_transform``
        (``PCA``, ``AutoencoderTransformer``). Seeding it (``random_state``) is left to ``make_model``.
    n_folds : int, default 5
        ``2 <= n_folds <= n_samples``.
    repeats : int, default 1
        Independent fold assignments, drawn from ``seed``.
    seed : int, default 0
    target : array-like of shape (n_samples, n_features), optional
        Measure the errors against this (e.g. the clean signal) instead of ``X``.
    progress : bool or None
        tqdm bar over the ``n_folds * repeats`` fits; None shows it only on a terminal.

    Returns
    -------
    DataFrame
        One row per sample: ``sample`` (row of ``X``), ``error_seen``, ``error_unseen``, ``score``.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((60, 5))
    >>> scores = memorization_scores(X, lambda: PCA(2), n_folds=3, progress=False)
    >>> list(scores.columns), len(scores)
    (['sample', 'error_seen', 'error_unseen', 'score'], 60)
    """
    X = check_array(X, "X")
    n = len(X)
    n_folds = check_int(n_folds, "n_folds")
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must satisfy 2 <= n_folds <= n_samples = {n}, got n_folds={n_folds}")
    repeats = check_int(repeats, "repeats", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if target is not None:
        target = check_array(target, "target")
        if target.shape != X.shape:
            raise ValueError(f"target has shape {target.shape} but X has shape {X.shape}; they must match")
    if not callable(make_model):
        raise TypeError(f"make_model must be a callable returning a new estimator, got {type(make_model).__name__}")

    rng = np.random.default_rng(seed)
    seen, unseen = np.zeros(n), np.zeros(n)
    bar = tqdm(total=repeats * n_folds, disable=None if progress is None else not progress, leave=False)
    for _ in range(repeats):
        for fold in np.array_split(rng.permutation(n), n_folds):
            model = make_model()
            if not all(hasattr(model, m) for m in ("fit", "transform", "inverse_transform")):
                raise TypeError(
                    "make_model() must return an estimator with fit, transform and inverse_transform, "
                    f"got {type(model).__name__}"
                )
            in_fold = np.zeros(n, dtype=bool)
            in_fold[fold] = True
            model.fit(X[~in_fold])
            errors = reconstruction_errors(model, X, target)
            unseen[in_fold] += errors[in_fold]
            seen[~in_fold] += errors[~in_fold]
            bar.update()
    bar.close()
    error_seen = seen / (repeats * (n_folds - 1))
    error_unseen = unseen / repeats
    return pd.DataFrame(
        {"sample": np.arange(n), "error_seen": error_seen, "error_unseen": error_unseen,
         "score": error_unseen - error_seen}
    )
