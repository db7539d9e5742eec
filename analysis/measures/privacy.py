"""An empirical lower bound on a trained model's privacy loss epsilon, from its membership audit.

A training algorithm that is (epsilon, delta)-differentially private bounds every membership test: for any
threshold on any score, ``TPR <= exp(epsilon) * FPR + delta`` and, turning the test around,
``TNR <= exp(epsilon) * FNR + delta`` (Kairouz et al. 2015). A test that does better than that on real members and
non-members proves that the model leaks at least ``epsilon_lb = log((TPR - delta) / FPR)``. Following Jagielski,
Ullman and Oprea (2020), the rates are taken at their one-sided Clopper-Pearson bounds (TPR's low end, FPR's high
end), so the bound holds with the stated confidence, and the threshold is chosen on one half of the audit samples
and counted on the other half, so that choosing it does not spend the confidence.

Assumptions, and which the study's split meets. The guarantee of DP is over the randomness of training for two
data sets that differ in one sample; a bound from one training run (Steinke, Nasr and Jagielski 2023) also needs
the audited samples' membership to be drawn at random, independently of everything else, so that each sample is a
fresh experiment. The study's train/test split is a uniformly random partition of the data (the split seed is
recorded), which meets "at random"; it is a partition of fixed size rather than independent coins, so the
members' indicators are slightly negatively dependent: the counts then vary a little less than binomially and the
Clopper-Pearson bounds are, if anything, conservative. The attack's scores come from reference models trained on
other random halves of the same pool, which do not depend on the target's split. Several seeds of one
architecture share one split, so only one target's scores enter a bound.
"""
from __future__ import annotations

import numpy as np

from autoenc.validation import check_int

from .intervals import clopper_pearson

__all__ = ["epsilon_lower_bound"]


def _counts(scores, member):
    """(thresholds, true positives, false positives) of "member" = ``score >= threshold`` at every distinct score."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], member[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last]
    return s[last], tps, last + 1 - tps


def _bounds(tp, fp, n_pos, n_neg, delta, confidence):
    """The epsilon lower bound of both directions of the test at the given counts (arrays), the larger one.

    Each direction's bound uses a one-sided (1 - alpha / 4) Clopper-Pearson end for each of its two rates: the
    two directions and the two rates of each are covered by one union bound at level ``confidence``.
    """
    level = 1 - (1 - confidence) / 2  # a two-sided interval at this level has one-sided ends at 1 - alpha / 4
    tpr_low = clopper_pearson(tp, n_pos, level)[0]
    fpr_high = clopper_pearson(fp, n_neg, level)[1]
    tnr_low = clopper_pearson(n_neg - fp, n_neg, level)[0]
    fnr_high = clopper_pearson(n_pos - tp, n_pos, level)[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = np.log(np.maximum(tpr_low - delta, 0) / fpr_high)
        backward = np.log(np.maximum(tnr_low - delta, 0) / fnr_high)
    return np.maximum(np.nan_to_num(forward, nan=-np.inf), np.nan_to_num(backward, nan=-np.inf))


def epsilon_lower_bound(scores, is_member, *, delta=0.0, confidence=0.95, seed=0):
    """Lower bound on the epsilon of the algorithm that trained a model, from its membership scores.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        One target model's membership score per audit sample, higher meaning "member" (an attack of
        :func:`~.audit.attack_scores`, or minus the reconstruction error).
    is_member : array-like of bool, shape (n_samples,)
        Whether the target trained on the sample; at least 4 members and 4 non-members.
    delta : float, default 0
        The delta of the (epsilon, delta) guarantee tested, in [0, 1); 1/n for the accountant's.
    confidence : float, default 0.95
        The bound holds with this probability over the draw of the split and of training.
    seed : int, default 0
        Which half of the samples (stratified by membership) chooses the threshold.

    Returns
    -------
    dict
        ``epsilon_lb`` (>= 0; 0 when no threshold beats chance), ``threshold``, ``direction`` ("member" when the
        bound comes from calling high scores members, "non-member" from calling low scores non-members),
        ``tpr`` and ``fpr`` (observed on the counting half), ``n_members`` and ``n_nonmembers`` (counting half),
        ``delta``, ``confidence``.

    Examples
    --------
    A perfect attack on 1,000 members and 1,000 non-members proves epsilon of about log(500 / 4.4)
    (no false positive among the 500 non-members that are counted):

    >>> member = np.arange(2000) < 1000
    >>> round(epsilon_lower_bound(member.astype(float), member)["epsilon_lb"], 2)
    4.73
    """
    s = np.asarray(scores, dtype=np.float64)
    member = np.asarray(is_member)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (one target's scores), got shape {s.shape}")
    if member.shape != s.shape or member.dtype != bool:
        raise ValueError(f"is_member must be a bool array of shape {s.shape}, got {member.dtype} of shape "
                         f"{member.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if not 0 <= delta < 1:
        raise ValueError(f"delta must lie in [0, 1), got {delta!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    seed = check_int(seed, "seed", minimum=0)
    n_pos, n_neg = int(member.sum()), int((~member).sum())
    if n_pos < 4 or n_neg < 4:
        raise ValueError(f"is_member needs at least 4 members and 4 non-members, got {n_pos} and {n_neg}")
    rng = np.random.default_rng(seed)
    choose = np.zeros(len(s), dtype=bool)
    for group in (np.flatnonzero(member), np.flatnonzero(~member)):  # half of each class chooses the threshold
        choose[rng.permutation(group)[: len(group) // 2]] = True
    thresholds, tp, fp = _counts(s[choose], member[choose])
    a_pos, a_neg = int(member[choose].sum()), int((~member[choose]).sum())
    bound = _bounds(tp, fp, a_pos, a_neg, delta, confidence)
    best = int(np.argmax(bound))
    threshold = thresholds[best]
    count, m = s[~choose], member[~choose]
    b_pos, b_neg = int(m.sum()), int((~m).sum())
    tp_b, fp_b = int(np.sum(m & (count >= threshold))), int(np.sum(~m & (count >= threshold)))
    level = 1 - (1 - confidence) / 2
    tpr_low, fpr_high = clopper_pearson(tp_b, b_pos, level)[0], clopper_pearson(fp_b, b_neg, level)[1]
    tnr_low, fnr_high = clopper_pearson(b_neg - fp_b, b_neg, level)[0], clopper_pearson(b_pos - tp_b, b_pos, level)[1]
    forward = np.log((tpr_low - delta) / fpr_high) if tpr_low > delta else -np.inf
    backward = np.log((tnr_low - delta) / fnr_high) if tnr_low > delta and fnr_high > 0 else -np.inf
    return {"epsilon_lb": float(max(forward, backward, 0.0)), "threshold": float(threshold),
            "direction": "member" if forward >= backward else "non-member", "tpr": tp_b / b_pos,
            "fpr": fp_b / b_neg, "n_members": b_pos, "n_nonmembers": b_neg, "delta": float(delta),
            "confidence": float(confidence)}
