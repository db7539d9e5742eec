"""Confidence intervals for the headline numbers: proportions (TPR at a fixed FPR), ROC AUC, means over seeds."""
from __future__ import annotations

import numpy as np
from scipy import stats

from autoenc.validation import check_int

__all__ = ["clopper_pearson"]


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
    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):
        low = np.where(k == 0, 0.0, stats.beta.ppf(alpha / 2, k, n - k + 1))
        high = np.where(k == n, 1.0, stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    if low.ndim == 0:
        return float(low), float(high)
    return low, high
