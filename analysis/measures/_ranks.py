"""Midranks and the rank-sum AUC, in numpy: the membership measures a study's worker takes need no scipy."""
from __future__ import annotations

import numpy as np

__all__ = ["midranks", "rank_auc"]


def midranks(values):
    """Ranks from 1 of the values of a 1-D array, ties sharing their mean rank (``scipy.stats.rankdata``'s).

    Examples
    --------
    >>> midranks([0.3, 0.1, 0.3, 0.2]).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # where each run of ties begins
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)  # the mean of ranks starts + 1 ... ends
    return ranks


def rank_auc(positives, negatives):
    """ROC AUC of scores, ``positives`` against ``negatives`` (ties count one half), from the rank sum.

    The Mann-Whitney statistic over ``m * n``: the rank sum is exact in float64 (halves below 2**52), so the AUC is
    the correctly rounded quotient.

    Examples
    --------
    >>> rank_auc([0.9, 0.4], [0.4, 0.1])
    0.875
    """
    m, n = len(positives), len(negatives)
    ranks = midranks(np.r_[positives, negatives])
    return float((np.sum(ranks[:m]) - m * (m + 1) / 2) / (m * n))
