"""Membership audit of target models against reference models: loss threshold, LiRA, RMIA; TPR at low FPR.

A membership attack gives every (target, sample) pair a score, higher meaning "more likely trained on"; the audit
reports its ROC, with the true-positive rate at fixed low false-positive rates (the measure privacy research uses:
an attack that is right about a few samples with near certainty leaks more than its AUC says).

Scores (``e`` a target's error on a sample, ``t = log(e + eps)``):

- ``loss``: ``-e``, one global threshold (what ``membership_auc`` measures).
- LiRA (Carlini et al. 2022), per-sample Gaussians of ``t`` fitted to the reference models that did (in) and did
  not (out) train on the sample. The log makes the errors (non-negative, right-skewed, spanning decades between
  memorized and unseen samples) close to Gaussian and scale-free, the role the logit of the confidence plays for
  classifiers. ``eps`` is 1e-6 times the median reference error, so an exact zero (a stored sample) stays finite.
  ``lira_online``: log-likelihood ratio ``log N(t; mu_in, s_in) - log N(t; mu_out, s_out)``;
  ``lira_offline`` (out models only, one-sided): ``(mu_out - t) / s_out``, how far below its usual unseen error
  the sample lies. The ``_fixed`` variants replace each sample's variance by the mean per-sample variance (one
  for in, one for out), better when each sample has few reference models. Per-sample standard deviations are
  floored at 1e-3 times that pooled one, so a sample whose in-errors are all equal (zero) gives a large, finite
  ratio.
- ``rmia`` (Zarifzadeh et al. 2024), adapted to reconstruction: the likelihood of ``x`` under a model is taken
  as ``1 / (e + eps)`` (scale-free: the units of the data cancel in every ratio), ``Pr(x)`` as its mean over all
  reference models (in and out: the paper's online estimate) and ``ratio(x) = Pr(x | target) / Pr(x)``. The score
  is the share of population samples ``z`` with ``ratio(z) < ratio(x)`` (``gamma = 1``; ties count half), with
  the population being the target's non-members in :func:`membership_audit`. For one target that ranks samples
  exactly as ``ratio(x)`` does; pooled over targets it calibrates each target against its own population.

Several targets are pooled: each row of ``target_errors`` is one target model (all audited against the same
references), and the ROC is computed over all (target, sample) pairs, so the low-FPR numbers rest on more
non-members.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from autoenc.validation import check_int, check_positive_float

from .intervals import clopper_pearson
from .reference import _usable

__all__ = ["ATTACKS", "attack_scores", "membership_audit"]

ATTACKS = ("loss", "lira_offline", "lira_online", "lira_offline_fixed", "lira_online_fixed", "rmia")
_EPS = 1e-6  # relative to the median reference error: below this an error counts as zero
_SD_FLOOR = 1e-3  # relative to the pooled standard deviation


def _as_2d(a, name, dtype=np.float64):
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D (n_samples,) or 2-D (n_targets, n_samples), got shape {a.shape}")
    return a.astype(dtype, copy=False) if dtype is not None else a


def _check_attacks(attacks):
    if isinstance(attacks, str):
        attacks = (attacks,)
    attacks = tuple(attacks)
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"unknown attack(s) {unknown or attacks}; valid names are {list(ATTACKS)}")
    return attacks


def _gaussians(t_ref, masks):
    """Per-sample means and standard deviations of the log-errors in and out, plus pooled (fixed) deviations."""
    stats = {}
    for side, m in (("in", masks), ("out", ~masks)):
        n = m.sum(axis=0)
        if np.any(n == 0):
            raise ValueError(f"sample(s) {np.flatnonzero(n == 0)[:10].tolist()} have no '{side}' reference model: "
                             "every sample needs models that did and did not train on it (use reference_masks)")
        mu = np.where(m, t_ref, 0).sum(axis=0) / n
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(m, (t_ref - mu) ** 2, 0).sum(axis=0) / (n - 1)
        pooled = np.nanmean(np.where(n > 1, var, np.nan)) if np.any(n > 1) else 0.0
        var = np.where(n > 1, var, pooled)  # a single model gives no spread: borrow the pooled one
        stats[side] = (mu, np.sqrt(var), np.sqrt(pooled))
    floor = _SD_FLOOR * max(stats["in"][2], stats["out"][2], 1e-12)
    return {side: (mu, np.maximum(sd, floor), max(sd_fixed, floor)) for side, (mu, sd, sd_fixed) in stats.items()}


def _log_normal_pdf(t, mu, sd):
    return -0.5 * ((t - mu) / sd) ** 2 - np.log(sd)


def _rmia(t_target, t_ref, population):
    """RMIA scores: each target's ratio(x) ranked against its population samples' ratios."""
    # log Pr(x) = log mean_r exp(-t_r(x)), computed stably
    top = (-t_ref).max(axis=0)
    log_px = top + np.log(np.mean(np.exp(-t_ref - top), axis=0))
    ratio = -t_target - log_px
    scores = np.empty_like(ratio)
    for j, (r, pop) in enumerate(zip(ratio, population)):
        z = np.sort(r[pop])
        below = np.searchsorted(z, r, side="left")
        ties = np.searchsorted(z, r, side="right") - below
        scores[j] = (below + 0.5 * ties) / len(z)
    return scores


def attack_scores(target_errors, ref_errors, ref_masks, *, attacks=ATTACKS, population=None):
    """Membership scores of every attack for every (target, sample) pair; higher means "member".

    Parameters
    ----------
    target_errors : array-like of shape (n_samples,) or (n_targets, n_samples)
        Per-sample reconstruction errors of each target model on the pool.
    ref_errors : array-like of shape (n_models, n_samples)
        Errors of the reference models on the same pool (:func:`~.reference.train_references`); rows with
        non-finite values (diverged models) are skipped with a warning.
    ref_masks : ndarray of bool, shape (n_models, n_samples)
        Which samples each reference model trained on.
    attacks : sequence of str, default all of ``ATTACKS``
    population : ndarray of bool, shape like ``target_errors``, optional
        RMIA's population samples per target (known non-members); default every sample.

    Returns
    -------
    DataFrame
        Columns ``attack``, ``target`` (row of ``target_errors``), ``sample``, ``score``.

    Examples
    --------
    >>> from analysis.measures.reference import reference_masks
    >>> masks = reference_masks(4, n_models=4)
    >>> ref = np.where(masks, 0.5, 1.0)
    >>> s = attack_scores([0.5, 1.0, 0.5, 1.0], ref, masks, attacks=["lira_online"])
    >>> bool(s["score"][0] > s["score"][1])
    True
    """
    attacks = _check_attacks(attacks)
    arrays = _scores(target_errors, ref_errors, ref_masks, attacks, population)
    n_targets, n = next(iter(arrays.values())).shape
    target, sample = np.repeat(np.arange(n_targets), n), np.tile(np.arange(n), n_targets)
    return pd.concat([pd.DataFrame({"attack": a, "target": target, "sample": sample, "score": s.ravel()})
                      for a, s in arrays.items()], ignore_index=True)


def _scores(target_errors, ref_errors, ref_masks, attacks, population):
    """{attack: scores of shape (n_targets, n_samples)}, after the argument checks."""
    e = _as_2d(target_errors, "target_errors")
    if not np.isfinite(e).all() or np.any(e < 0):
        raise ValueError("target_errors must be finite and non-negative (squared errors)")
    ref, masks = _usable(ref_errors, ref_masks, "ref_errors")
    if ref.shape[1] != e.shape[1]:
        raise ValueError(f"target_errors has {e.shape[1]} samples but ref_errors has {ref.shape[1]}; the same pool "
                         "must be measured by both")
    if population is None:
        population = np.ones(e.shape, dtype=bool)
    population = _as_2d(population, "population", dtype=None)
    if population.shape != e.shape or population.dtype != bool:
        raise ValueError(f"population must be a bool array shaped like target_errors {e.shape}, got "
                         f"{population.dtype} of shape {population.shape}")
    positive = ref[ref > 0]
    eps = _EPS * (np.median(positive) if positive.size else 1.0)
    t, t_ref = np.log(e + eps), np.log(ref + eps)
    g = _gaussians(t_ref, masks) if any(a.startswith("lira") for a in attacks) else None
    out = {}
    for attack in attacks:
        if attack == "loss":
            out[attack] = -e
        elif attack == "rmia":
            if not population.any(axis=1).all():
                raise ValueError("every target needs at least one population sample for rmia")
            out[attack] = _rmia(t, t_ref, population)
        else:
            fixed = attack.endswith("_fixed")
            (mu_in, sd_in, fix_in), (mu_out, sd_out, fix_out) = g["in"], g["out"]
            if fixed:
                sd_in, sd_out = fix_in, fix_out
            if attack.startswith("lira_offline"):
                out[attack] = (mu_out - t) / sd_out
            else:
                out[attack] = _log_normal_pdf(t, mu_in, sd_in) - _log_normal_pdf(t, mu_out, sd_out)
    return out


def _roc(scores, labels):
    """Counts (false positives, true positives) at every distinct threshold, from (0, 0) up to (n_neg, n_pos)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last position of each run of tied scores
    tps = np.cumsum(y)[last]
    return np.r_[0, last + 1 - tps], np.r_[0, tps]


def _thin(fps, tps, n_neg, n_pos, n_points):
    """ROC points at log-spaced FPRs from 1/n_neg to 1: at each, the best point with at most that many FPs."""
    grid = np.unique(np.floor(np.geomspace(1, n_neg, n_points) + 1e-9))
    keep = np.unique(np.r_[0, np.searchsorted(fps, grid, side="right") - 1, len(fps) - 1])
    return fps[keep] / n_neg, tps[keep] / n_pos


def membership_audit(target_errors, is_member, ref_errors, ref_masks, *, attacks=ATTACKS, fprs=(0.001, 0.01, 0.1),
                     confidence=0.95, n_roc_points=200, warn_unresolved=True):
    """Audit target models: each attack's AUC and TPR at fixed FPRs with exact intervals, and ROC points.

    Parameters
    ----------
    target_errors : array-like of shape (n_samples,) or (n_targets, n_samples)
        Per-sample errors of each target model on the pool; targets are pooled into one ROC.
    is_member : array-like of bool, shape like ``target_errors``
        Whether the target trained on the sample. Needs members and non-members.
    ref_errors : array-like of shape (n_models, n_samples)
        Reference models' errors on the pool; models other than the targets.
    ref_masks : ndarray of bool, shape (n_models, n_samples)
    attacks : sequence of str, default ``ATTACKS``
        See the module docstring.
    fprs : sequence of float, default (0.001, 0.01, 0.1)
        False-positive rates in (0, 1) at which TPR is reported.
    confidence : float, default 0.95
        Of the Clopper-Pearson intervals of the TPRs.
    n_roc_points : int, default 200
        Log-spaced FPRs at which each ROC is kept.
    warn_unresolved : bool, default True
        Warn when an FPR cannot be resolved (``fpr_resolved`` says it either way); False, e.g. where the caller
        reports it itself, without touching the process-wide warning filters (threads may share them).

    Returns
    -------
    summary : DataFrame
        Long format, one row per attack x FPR: ``attack``, ``auc``, ``fpr`` (nominal), ``fpr_achieved`` (the
        best ROC point's FPR at or below it), ``tpr``, ``tpr_ci_low``, ``tpr_ci_high`` (Clopper-Pearson over the
        members), ``n_true_positives``, ``n_false_positives``, ``n_members``, ``n_nonmembers``, ``n_targets``,
        ``n_references``, ``fpr_resolved`` (False when ``n_nonmembers < 1 / fpr``: no threshold can reach that
        FPR except zero false positives; also warned, with ``warn_unresolved``).
    roc : DataFrame
        ``attack``, ``fpr``, ``tpr``: points of each empirical ROC at log-spaced FPRs, from FPR 0 and
        ``1 / n_nonmembers`` (the low end, kept) to 1.

    Examples
    --------
    >>> from analysis.measures.reference import reference_masks
    >>> rng = np.random.default_rng(0)
    >>> masks = reference_masks(200, n_models=8)
    >>> ref = np.where(masks, 0.5, 1.0) * rng.lognormal(0, 0.1, masks.shape)
    >>> member = rng.random(200) < 0.5
    >>> target = np.where(member, 0.5, 1.0) * rng.lognormal(0, 0.1, 200)
    >>> summary, roc = membership_audit(target, member, ref, masks, attacks=["loss"], fprs=[0.1])
    >>> summary[["attack", "fpr", "tpr"]].values.tolist()
    [['loss', 0.1, 1.0]]
    """
    attacks = _check_attacks(attacks)
    fprs = [check_positive_float(f, "fprs[...]") for f in np.atleast_1d(fprs).tolist()]
    if any(f >= 1 for f in fprs):
        raise ValueError(f"fprs must lie in (0, 1), got {fprs}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n_roc_points = check_int(n_roc_points, "n_roc_points", minimum=2)
    if not isinstance(warn_unresolved, bool):
        raise TypeError(f"warn_unresolved must be True or False, got {warn_unresolved!r}")
    e = _as_2d(target_errors, "target_errors")
    member = _as_2d(is_member, "is_member", dtype=None)
    if member.shape != e.shape or member.dtype != bool:
        raise ValueError(f"is_member must be a bool array shaped like target_errors {e.shape}, got {member.dtype} "
                         f"of shape {member.shape}")
    n_pos, n_neg = int(member.sum()), int((~member).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"is_member needs both members and non-members, got {n_pos} members and {n_neg} non-members")
    scores = _scores(e, ref_errors, ref_masks, attacks, ~member)  # checks the rest
    n_refs = int(np.isfinite(np.asarray(ref_errors, dtype=np.float64)).all(axis=1).sum())
    unresolved = [f for f in fprs if n_neg * f < 1 - 1e-9]
    if unresolved and warn_unresolved:
        warnings.warn(f"only {n_neg} non-members: FPR(s) {unresolved} need at least {int(np.ceil(1 / min(unresolved)))}"
                      " to be resolved; pool more targets or a larger pool", UserWarning, stacklevel=2)
    labels = member.ravel()
    rows, curves = [], []
    for attack, s in scores.items():
        fps, tps = _roc(s.ravel(), labels)
        auc = float(np.sum(np.diff(fps) * (tps[1:] + tps[:-1])) / (2.0 * n_pos * n_neg))  # trapezoids: ties 1/2
        for f in fprs:
            i = np.searchsorted(fps, np.floor(f * n_neg + 1e-9), side="right") - 1
            low, high = clopper_pearson(int(tps[i]), n_pos, confidence)
            rows.append({"attack": attack, "auc": auc, "fpr": f, "fpr_achieved": fps[i] / n_neg,
                         "tpr": tps[i] / n_pos, "tpr_ci_low": low, "tpr_ci_high": high,
                         "n_true_positives": int(tps[i]), "n_false_positives": int(fps[i]), "n_members": n_pos,
                         "n_nonmembers": n_neg, "n_targets": len(e), "n_references": n_refs,
                         "fpr_resolved": n_neg * f >= 1 - 1e-9})
        fpr, tpr = _thin(fps, tps, n_neg, n_pos, n_roc_points)
        curves.append(pd.DataFrame({"attack": attack, "fpr": fpr, "tpr": tpr}))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)
