"""Confidence intervals for the headline numbers: proportions (TPR at a fixed FPR), ROC AUC, means over seeds.

The functions import scipy (its distributions) when called: a study's worker may need none of them.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from autoenc.validation import check_array, check_int, check_positive_float

from ._ranks import midranks

__all__ = [
    "FPRResolutionWarning", "SCALES", "auc_interval", "clopper_pearson", "delong_auc", "mean_interval",
    "one_standard_error", "seed_interval", "tpr_at_fpr_interval",
]

SCALES = ("raw", "log", "logit", "share", "signed")


class FPRResolutionWarning(UserWarning):
    """The unseen split has fewer than ``1 / fpr`` samples: the false-positive rate asked for cannot be reached."""


def clopper_pearson(successes, n, confidence=0.95):
    """Exact (Clopper-Pearson) interval for a binomial proportion ``successes / n``.

    Parameters
    ----------
    successes : int or array of int
        Number of successes, ``0 <= successes <= n``.
    n : int or array of int
        Number of trials (> 0).
    confidence : float, default 0.95

    Returns
    -------
    (low, high) : floats (or arrays, broadcast)
        ``low = 0`` when there are no successes, ``high = 1`` when all are successes.

    Examples
    --------
    >>> low, high = clopper_pearson(0, 50)
    >>> round(low, 3), round(high, 3)
    (0.0, 0.071)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    k, n = np.asarray(successes), np.asarray(n)
    if np.ndim(k) == 0:
        check_int(int(k) if float(k).is_integer() else k, "successes", minimum=0)
        check_int(int(n) if float(n).is_integer() else n, "n", minimum=1)
    if np.any(k < 0) or np.any(n < 1) or np.any(k > n):
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got successes={successes!r}, n={n!r}")
    from scipy import stats

    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):
        low = np.where(k == 0, 0.0, stats.beta.ppf(alpha / 2, k, n - k + 1))
        high = np.where(k == n, 1.0, stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def _check_confidence(confidence):
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


def delong_auc(errors_train, errors_test):
    """Membership AUC and DeLong's estimate of its variance, in O(n log n) through midranks (Sun & Xu, 2014).

    The AUC of ``-error`` with train samples as positives (ties count one half), as
    :func:`analysis.measures.memorization.membership_auc`. DeLong's variance ``S10 / m + S01 / n`` comes from the sample
    variances of the placement values: for each train sample the share of test samples with a larger error, for
    each test sample the share of train samples with a smaller one.

    Parameters
    ----------
    errors_train : array-like of shape (n_train,)
        At least 2 samples.
    errors_test : array-like of shape (n_test,)
        At least 2 samples.

    Returns
    -------
    auc : float
    variance : float

    Examples
    --------
    >>> auc, variance = delong_auc([0.1, 0.3, 0.2], [0.25, 0.4])
    >>> round(auc, 4), round(variance, 4)
    (0.8333, 0.0556)
    """
    positives = -check_array(errors_train, "errors_train", ndim=1, min_samples=2).astype(np.float64)
    negatives = -check_array(errors_test, "errors_test", ndim=1, min_samples=2).astype(np.float64)
    m, n = len(positives), len(negatives)
    ranks = midranks(np.r_[positives, negatives])  # ties count one half
    placement_train = (ranks[:m] - midranks(positives)) / n
    placement_test = 1 - (ranks[m:] - midranks(negatives)) / m
    auc = float(np.mean(placement_train))
    variance = float(np.var(placement_train, ddof=1) / m + np.var(placement_test, ddof=1) / n)
    return auc, variance


def auc_interval(errors_train, errors_test, confidence=0.95):
    """Confidence interval for the membership AUC: DeLong's variance, Wald on the logit scale.

    ``logit(auc) +- z * se / (auc (1 - auc))`` mapped back, so the interval stays inside (0, 1) and is asymmetric
    near the ends, where the raw-scale Wald interval undercovers. At perfect separation (AUC 0 or 1) DeLong's
    variance is 0 and the logit infinite; the interval then comes from ``min(n_train, n_test)`` disjoint
    (train, test) pairs, each ordered correctly with probability AUC and all observed so: the exact
    Clopper-Pearson bound for that many successes out of as many trials (``(alpha / 2) ** (1 / min(m, n))``),
    valid and conservative. When every placement is equal (all errors tied) the interval is the point itself.

    Parameters
    ----------
    errors_train : array-like of shape (n_train,)
        Per-sample errors of samples the model was trained on (the positives); at least 2.
    errors_test : array-like of shape (n_test,)
        Per-sample errors of unseen samples; at least 2.
    confidence : float, default 0.95

    Returns
    -------
    (low, high) : floats in [0, 1]

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> low, high = auc_interval(rng.random(200), rng.random(200))
    >>> bool(low < 0.5 < high)
    True
    >>> [round(v, 4) for v in auc_interval([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])]  # separated: 0.025 ** (1 / 3)
    [0.2924, 1.0]
    """
    alpha = 1 - _check_confidence(confidence)
    auc, variance = delong_auc(errors_train, errors_test)
    if auc in (0.0, 1.0):
        pairs = min(len(np.ravel(errors_train)), len(np.ravel(errors_test)))
        bound = (alpha / 2) ** (1 / pairs)  # Clopper-Pearson for `pairs` successes out of `pairs` trials
        return (bound, 1.0) if auc == 1.0 else (0.0, 1.0 - bound)
    if variance <= 0:
        return auc, auc
    from scipy import stats
    from scipy.special import expit, logit

    z = stats.norm.ppf(1 - alpha / 2)
    half = z * math.sqrt(variance) / (auc * (1 - auc))
    return float(expit(logit(auc) - half)), float(expit(logit(auc) + half))


def tpr_at_fpr_interval(errors_train, errors_test, fpr=0.01, confidence=0.95):
    """TPR of the error-threshold membership attack at a false-positive rate of at most ``fpr``, with its interval.

    The threshold is :func:`analysis.measures.memorization.tpr_at_fpr`'s: the ``(m + 1)``-th smallest unseen error with
    ``m = floor(fpr * n_test)``; a train sample is flagged when its error is strictly below it. The interval is
    Clopper-Pearson on the number of train samples flagged out of ``n_train``, the threshold held fixed (it
    covers the sampling of the train side, not of the threshold). With fewer than ``1 / fpr`` unseen samples the
    rate asked for cannot be reached: the threshold is the smallest unseen error (achieved FPR 0, true FPR about
    ``1 / (n_test + 1)``), so the TPR is biased upward; then ``resolvable`` is False and a
    :class:`FPRResolutionWarning` names the sizes.

    Parameters
    ----------
    errors_train : array-like of shape (n_train,)
    errors_test : array-like of shape (n_test,)
    fpr : float, default 0.01
        In (0, 1].
    confidence : float, default 0.95

    Returns
    -------
    dict
        ``tpr``, ``ci_low``, ``ci_high``, ``n_flagged`` (train samples flagged), ``n_train``, ``achieved_fpr``
        (share of unseen samples flagged), ``resolvable`` (``n_test >= 1 / fpr``).

    Examples
    --------
    >>> out = tpr_at_fpr_interval([0.1, 0.2, 0.6], [0.3, 0.4, 0.5, 0.7], fpr=0.25)
    >>> out["n_flagged"], out["achieved_fpr"], out["resolvable"]
    (2, 0.25, True)
    """
    errors_train = check_array(errors_train, "errors_train", ndim=1).astype(np.float64, copy=False)
    errors_test = check_array(errors_test, "errors_test", ndim=1).astype(np.float64, copy=False)
    fpr = check_positive_float(fpr, "fpr")
    if fpr > 1:
        raise ValueError(f"fpr must be in (0, 1], got {fpr}")
    _check_confidence(confidence)
    n_train, n_test = len(errors_train), len(errors_test)
    resolvable = n_test * fpr >= 1 - 1e-9  # 1e-9: 100 samples at fpr 0.01 are enough
    if not resolvable:
        warnings.warn(
            f"the unseen split has {n_test} samples, fewer than the {math.ceil(1 / fpr - 1e-9)} (1 / fpr) needed "
            f"to measure the true-positive rate at a false-positive rate of {fpr:g}; the threshold flags no unseen "
            "sample, so the reported rate is that of a looser threshold and overstates the attack",
            FPRResolutionWarning, stacklevel=2,
        )
    m = math.floor(fpr * n_test + 1e-9)  # as tpr_at_fpr: 0.29 * 100 must give 29, not 28
    threshold = math.inf if m >= n_test else float(np.partition(errors_test, m)[m])
    n_flagged = int(np.sum(errors_train < threshold))
    low, high = clopper_pearson(n_flagged, n_train, confidence)
    return {
        "tpr": n_flagged / n_train, "ci_low": low, "ci_high": high, "n_flagged": n_flagged, "n_train": n_train,
        "achieved_fpr": float(np.mean(errors_test < threshold)), "resolvable": bool(resolvable),
    }


def mean_interval(values, confidence=0.95):
    """Mean, standard deviation and Student-t interval of a few values (a metric over seeds).

    Parameters
    ----------
    values : array-like of shape (n,)
        Finite values, ``n >= 1``.
    confidence : float, default 0.95

    Returns
    -------
    (mean, sd, low, high) : floats
        ``sd`` with ``ddof=1``; ``mean +- t_{n-1} sd / sqrt(n)``. With one value ``sd``, ``low`` and ``high`` are
        NaN (no spread can be estimated from it).

    Examples
    --------
    >>> mean, sd, low, high = mean_interval([1.0, 2.0, 3.0])
    >>> mean, sd, round(low, 3), round(high, 3)
    (2.0, 1.0, -0.484, 4.484)
    """
    values = check_array(values, "values", ndim=1).astype(np.float64, copy=False)
    alpha = 1 - _check_confidence(confidence)
    n, mean = len(values), float(np.mean(values))
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    sd = float(np.std(values, ddof=1))
    from scipy import stats

    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def seed_interval(values, scale="raw", confidence=0.95, *, n_trials=None):
    """Mean over seeds and a Student-t interval computed on a scale that keeps it inside the quantity's range.

    The t-interval (``n - 1`` degrees of freedom) of the transformed values is mapped back:

    - ``"log"`` for errors: the interval stays above 0 and widens upward;
    - ``"logit"`` for proportions in [0, 1] such as an AUC or a TPR: it stays inside [0, 1], asymmetric near the
      ends. A value of exactly 0 or 1 is read as the empirical logit ``log((v n + 1/2) / ((1 - v) n + 1/2))`` of
      ``n = n_trials`` trials (Cox 1970); without ``n_trials`` such values are held 1e-6 inside the range;
    - ``"share"`` for a share that may legitimately leave [0, 1] (noise memorization: a model can oppose or amplify
      the noise): per set of values, the logit while all lie inside (0, 1), ``log(v)`` while all are above 0 but
      one is 1 or more, ``-log(1 - v)`` while all are below 1 but one is 0 or less, else the raw scale. So the
      interval crosses 0 only where a value lies at or below 0, and 1 only where one lies at or above 1;
    - ``"signed"`` for a difference of two shares (seen minus unseen noise memorization): Fisher's
      ``arctanh`` while every value lies inside (-1, 1), where the interval then stays, else the raw scale;
    - ``"raw"`` for differences whose range is unbounded.

    The mean is the arithmetic mean of ``values``.

    Parameters
    ----------
    values : array-like of shape (n_seeds,) or (..., n_seeds)
        Finite values, one per seed on the last axis; positive for ``"log"``, in [0, 1] for ``"logit"``.
    scale : {"raw", "log", "logit", "share", "signed"}, default "raw"
    confidence : float, default 0.95
    n_trials : float or array-like of shape ``values.shape[:-1]``, optional
        Trials behind the values on the logit scale (e.g. the smaller split of an AUC).

    Returns
    -------
    (mean, sd, low, high) : floats, or arrays of shape ``values.shape[:-1]``
        ``sd`` over seeds with ``ddof=1`` on the raw scale; with a single seed ``sd``, ``low`` and ``high`` are NaN.

    Examples
    --------
    >>> mean, sd, low, high = seed_interval([0.80, 0.90], scale="logit")
    >>> round(mean, 2), 0 < low < 0.8, 0.9 < high < 1
    (0.85, True, True)
    >>> [round(v, 4) for v in seed_interval([0.01, 0.03], scale="log")[2:]]  # never below 0
    [0.0, 18.6106]
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    alpha = 1 - _check_confidence(confidence)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0 or values.shape[-1] < 1 or not np.isfinite(values).all():
        raise ValueError(f"values must be finite, with at least one seed on the last axis; got {values!r}")
    if scale == "log" and np.any(values <= 0):
        raise ValueError(f"values must be > 0 on the log scale, got {values.min()!r}")
    if scale == "logit" and (np.any(values < 0) or np.any(values > 1)):
        raise ValueError(f"values must be in [0, 1] on the logit scale, got {values.min()!r} to {values.max()!r}")
    if n_trials is not None:
        n_trials = np.asarray(n_trials, dtype=np.float64)
        if not np.all(n_trials >= 1) or np.ndim(n_trials) > values.ndim - 1:
            raise ValueError(f"n_trials must be >= 1, one per set of values, got {n_trials!r}")
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    if n == 1:
        nan = np.full(mean.shape, np.nan)
        out = (mean, nan, nan, nan)
    else:
        from scipy import stats

        forward, back = _scale_maps(scale, values, n_trials)
        y = forward(values)
        centre, spread = y.mean(axis=-1), y.std(axis=-1, ddof=1)
        half = stats.t.ppf(1 - alpha / 2, n - 1) * spread / math.sqrt(n)
        out = (mean, values.std(axis=-1, ddof=1), back(centre - half), back(centre + half))
    return tuple(float(v) for v in out) if mean.ndim == 0 else out


def _scale_maps(scale, values, n_trials):
    """Forward map (on values, shape (..., n_seeds)) and back map (on centres, shape (...)) of a scale."""
    from scipy.special import expit, logit

    if scale == "raw":
        return (lambda v: v), (lambda y: y)
    if scale == "log":
        return np.log, np.exp
    if scale == "logit":
        if n_trials is None:
            return (lambda v: logit(np.clip(v, 1e-6, 1 - 1e-6))), expit
        n = np.broadcast_to(n_trials, values.shape[:-1])
        edge = np.any((values == 0) | (values == 1), axis=-1)  # the empirical logit only where a value needs it

        def forward(v):
            empirical = np.log((v * n[..., None] + 0.5) / ((1 - v) * n[..., None] + 0.5))
            return np.where(edge[..., None], empirical, logit(np.clip(v, 1e-12, 1 - 1e-12)))

        return forward, lambda y: np.where(edge, np.clip(((n + 1) * expit(y) - 0.5) / n, 0.0, 1.0), expit(y))
    if scale == "signed":
        inside = np.all(np.abs(values) < 1, axis=-1)[..., None]
        return (lambda v: np.where(inside, np.arctanh(np.clip(v, -1 + 1e-12, 1 - 1e-12)), v)), \
            (lambda y: np.where(inside[..., 0], np.tanh(y), y))
    above, below = np.all(values > 0, axis=-1), np.all(values < 1, axis=-1)  # "share": per set, the sides it keeps
    both, low_only, high_only = above & below, above & ~below, below & ~above

    def forward(v):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.select([both[..., None], low_only[..., None], high_only[..., None]],
                             [logit(v), np.log(v), -np.log(1 - v)], v)

    def back(y):
        with np.errstate(over="ignore"):
            return np.select([both, low_only, high_only], [expit(y), np.exp(y), 1 - np.exp(-y)], y)

    return forward, back


def one_standard_error(means, sds, counts):
    """Threshold of the one-standard-error rule: the best (lowest) mean plus its standard error.

    Among configurations ordered from simplest to most complex, the rule picks the simplest whose mean is at
    most this threshold. The standard error is ``sd / sqrt(count)`` of the configuration with the lowest mean;
    where it cannot be estimated (one seed: ``sd`` NaN) it counts as 0, leaving the plain minimum.

    Parameters
    ----------
    means, sds, counts : array-like of shape (n_configurations,)
        Per configuration: mean of the metric over seeds, its sd over seeds (``ddof=1``), number of seeds.

    Returns
    -------
    float

    Examples
    --------
    >>> one_standard_error([1.0, 0.8, 0.9], [0.1, 0.2, 0.1], [4, 4, 4])
    0.9
    """
    means = check_array(means, "means", ndim=1).astype(np.float64, copy=False)
    sds = np.asarray(sds, dtype=np.float64)
    counts = np.asarray(counts)
    if sds.shape != means.shape or counts.shape != means.shape:
        raise ValueError(
            f"means, sds and counts must have the same shape, got {means.shape}, {sds.shape} and {counts.shape}"
        )
    if not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 1):
        raise ValueError(f"counts must be positive integers, got {counts}")
    if np.any(sds[~np.isnan(sds)] < 0) or np.any(np.isinf(sds)):
        raise ValueError(f"sds must be >= 0 and finite (NaN for a single seed), got {sds}")
    best = int(np.argmin(means))
    se = sds[best] / math.sqrt(counts[best])
    return float(means[best] + (0.0 if math.isnan(se) else se))
