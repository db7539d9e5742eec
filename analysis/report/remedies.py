"""What to do about memorization: the recommendation a study's remedies support, their table and their figure.

Reads :func:`analysis.study.remedy_plan.remedy_summary`'s frame (``remedy_summary.csv``). A remedy *works* for a
target architecture when it brings the leakage to PCA's level at the same bottleneck, that is no measurably higher
(the lower ends of the membership AUC's and the seen-minus-unseen memorization's intervals over seeds reach PCA's
upper ends: less leakage than PCA is welcome), while its error on the validation split stays within one standard
error of the best model's (the selection's threshold, ``adequate``). Among those that work the recommendation is the
one with the lowest unseen clean error: the cheapest in what the user cares about, reconstruction quality. When none
works, the closest is the lowest error among those at PCA's leakage (what it costs is said), else the least leakage
among those near the best error, else the least leakage.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from autoenc.validation import check_columns

__all__ = ["leaks_like_pca", "plot_remedies", "recommend", "remedy_rows"]

_NEEDED = ["target", "remedy", "remedy_text", "test_mse_clean", "membership_auc", "adequate"]


def _yes(value):
    """A table's ``adequate`` cell as a bool: True, or "True" as a CSV reads it back; anything else is no."""
    return value is True or value is np.True_ or (isinstance(value, str) and value.strip().lower() == "true")


def _bounds(row, name):
    value = float(row.get(name, np.nan))
    low, high = float(row.get(f"{name}_ci_low", np.nan)), float(row.get(f"{name}_ci_high", np.nan))
    return (value, value) if not (np.isfinite(low) and np.isfinite(high)) else (low, high)


def _not_above(row, pca, name):
    (a, _), (_, d) = _bounds(row, name), _bounds(pca, name)
    return bool(np.isfinite([a, d]).all() and a <= d)


def leaks_like_pca(row, pca):
    """Whether a row's membership AUC and seen-minus-unseen memorization are at most PCA's by their intervals (the
    row's lower end reaches PCA's upper end; a measure PCA's row lacks is not asked for)."""
    measures = [m for m in ("membership_auc", "mem_gap") if np.isfinite(float(pca.get(m, np.nan)))]
    return bool(measures) and all(_not_above(row, pca, m) for m in measures)


def _interval_text(row, name, fmt):
    low, high = float(row.get(f"{name}_ci_low", np.nan)), float(row.get(f"{name}_ci_high", np.nan))
    text = format(float(row[name]), fmt)
    return text + (f" [{format(low, fmt)}, {format(high, fmt)}]" if np.isfinite(low) and np.isfinite(high) else "")


def _privacy(row):
    parts = []
    if np.isfinite(float(row.get("epsilon", np.nan))):
        parts.append(f"the accountant bounds its epsilon at {float(row['epsilon']):.3g} (delta = 1/n)")
    if float(row.get("epsilon_lb", np.nan)) > 0:
        parts.append(f"its audit proves epsilon >= {float(row['epsilon_lb']):.2f}")
    elif np.isfinite(float(row.get("epsilon_lb", np.nan))):
        parts.append("its audit proves no epsilon above 0")
    return "; " + " and ".join(parts) if parts else ""


def recommend(summary):
    """One sentence per target architecture: the cheapest remedy that works, with its cost, or that none does and
    which comes closest.

    Examples
    --------
    >>> rows = pd.DataFrame([
    ...     dict(target="ae-k8-h64", remedy="none", remedy_text="none", test_mse_clean=0.03, membership_auc=0.8,
    ...          membership_auc_ci_low=0.78, membership_auc_ci_high=0.82, mem_gap=0.3, adequate=True),
    ...     dict(target="ae-k8-h64", remedy="wd0.01", remedy_text="weight decay 0.01", test_mse_clean=0.031,
    ...          membership_auc=0.51, membership_auc_ci_low=0.49, membership_auc_ci_high=0.53, mem_gap=0.01,
    ...          mem_gap_ci_low=-0.01, mem_gap_ci_high=0.03, adequate=True),
    ...     dict(target="ae-k8-h64", remedy="pca", remedy_text="PCA with 8 components", test_mse_clean=0.032,
    ...          membership_auc=0.5, membership_auc_ci_low=0.48, membership_auc_ci_high=0.52, mem_gap=0.0,
    ...          adequate=None)])
    >>> print(recommend(rows)[0].split(":")[0])
    For ae-k8-h64, weight decay 0.01 is the cheapest remedy that brings its leakage to PCA's level
    """
    check_columns(summary, _NEEDED, "summary")
    lines = []
    for target, rows in summary.groupby("target", sort=False):
        pca = rows[rows["remedy"] == "pca"]
        none = rows[rows["remedy"] == "none"]
        tried = rows[~rows["remedy"].isin(["pca", "none"])]
        if pca.empty or none.empty or tried.empty:
            continue
        pca, none = pca.iloc[0], none.iloc[0]
        works = tried[[_yes(r["adequate"]) and leaks_like_pca(r, pca) for _, r in tried.iterrows()]]
        base = float(none["test_mse_clean"])
        if leaks_like_pca(none, pca):
            lines.append(f"{target} needs no remedy against memorization: without one its membership AUC "
                         f"{_interval_text(none, 'membership_auc', '.3f')} is no higher than PCA's "
                         f"{_interval_text(pca, 'membership_auc', '.3f')} by their intervals, and neither is its "
                         "seen-minus-unseen memorization.")
            continue
        if len(works):
            best = works.sort_values("test_mse_clean").iloc[0]
            cost = float(best["test_mse_clean"]) / base - 1
            lines.append(
                f"For {target}, {best['remedy_text']} is the cheapest remedy that brings its leakage to PCA's level: "
                f"membership AUC {_interval_text(best, 'membership_auc', '.3f')} against PCA's "
                f"{_interval_text(pca, 'membership_auc', '.3f')} (without a remedy "
                f"{_interval_text(none, 'membership_auc', '.3f')}), while its validation error stays within one "
                f"standard error of the best model's; its unseen clean error is {float(best['test_mse_clean']):.4g}, "
                f"{abs(cost):.1%} {'above' if cost >= 0 else 'below'} the {base:.4g} of the architecture without a "
                f"remedy{_privacy(best)}.")
            continue
        at_pca = tried[[leaks_like_pca(r, pca) for _, r in tried.iterrows()]]
        adequate = tried[tried["adequate"].map(_yes)]
        known = rows["best_test_mse_clean"].dropna() if "best_test_mse_clean" in rows else ()
        best_error = float(known.iloc[0]) if len(known) else np.nan
        start = (f"None of the {len(tried)} remedies tried brings {target}'s leakage to PCA's level (membership AUC "
                 f"{_interval_text(pca, 'membership_auc', '.3f')}) while keeping its validation error within one "
                 "standard error of the best model's.")
        if len(at_pca):
            closest = at_pca.sort_values("test_mse_clean").iloc[0]
            error = float(closest["test_mse_clean"])
            cost = (f", {error / best_error - 1:.1%} above the best model's {best_error:.4g}"
                    if np.isfinite(best_error) else "")
            lines.append(f"{start} The closest is {closest['remedy_text']}: it brings the leakage to PCA's level "
                         f"(membership AUC {_interval_text(closest, 'membership_auc', '.3f')}, without a remedy "
                         f"{_interval_text(none, 'membership_auc', '.3f')}) at an unseen clean error of {error:.4g}"
                         f"{cost} ({base:.4g} without a remedy){_privacy(closest)}.")
            continue
        pool = adequate if len(adequate) else tried
        closest = pool.sort_values("membership_auc").iloc[0]
        among = "of those that keep the error near the best model's" if len(adequate) else "of all"
        lines.append(f"{start} The least leaking {among} is {closest['remedy_text']}: membership AUC "
                     f"{_interval_text(closest, 'membership_auc', '.3f')} and unseen clean error "
                     f"{float(closest['test_mse_clean']):.4g}, against {_interval_text(none, 'membership_auc', '.3f')}"
                     f" and {base:.4g} without a remedy{_privacy(closest)}.")
    return lines


def remedy_rows(summary):
    """The remedies table as text: heads and rows (one per target and remedy, PCA's row last per target)."""
    heads = ["architecture", "remedy", "unseen clean error", "membership AUC", "seen − unseen memorization",
             "TPR at 1% FPR", "near best", "epsilon (accountant)", "epsilon ≥ (audit)"]
    rows = []
    for _, r in summary.iterrows():
        def number(name, fmt):
            value = float(r.get(name, np.nan))
            return format(value, fmt) if np.isfinite(value) else "–"
        near = "–" if r["remedy"] == "pca" else "yes" if _yes(r["adequate"]) else "no"
        rows.append([r["target"], r["remedy_text"], number("test_mse_clean", ".4g"),
                     _interval_text(r, "membership_auc", ".3f"),
                     _interval_text(r, "mem_gap", "+.3f") if np.isfinite(float(r.get("mem_gap", np.nan))) else "–",
                     number("tpr_at_1pct_fpr", ".1%"), near, number("epsilon", ".3g"), number("epsilon_lb", ".2f")])
    return heads, rows


def plot_remedies(summary, *, leakage="tpr_at_1pct_fpr", ax=None):
    """Unseen clean error against leakage, one point per remedy with its intervals over seeds; PCA and the
    architecture without a remedy marked. One colour per target architecture.

    Parameters
    ----------
    summary : DataFrame
        ``remedy_summary.csv``.
    leakage : {"tpr_at_1pct_fpr", "membership_auc", "epsilon_lb"}
        The leakage axis.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ._plotstyle import METRIC_LABELS, axes

    check_columns(summary, ["target", "remedy", "remedy_text", "test_mse_clean", leakage], "summary")
    ax = axes(ax)
    palette = sns.color_palette("colorblind", 10)[2:]
    for color, (target, rows) in zip(palette, summary.groupby("target", sort=False)):
        for _, r in rows.iterrows():
            x, y = float(r[leakage]), float(r["test_mse_clean"])
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            xl, xh = _bounds(r, leakage)
            yl, yh = _bounds(r, "test_mse_clean")
            marker = {"pca": "P", "none": "s"}.get(r["remedy"], "o")
            face = "black" if r["remedy"] == "pca" else color
            ax.errorbar(x, y, xerr=[[max(x - xl, 0)], [max(xh - x, 0)]], yerr=[[max(y - yl, 0)], [max(yh - y, 0)]],
                        fmt=marker, color=face, ms=8 if marker != "o" else 6, capsize=2, lw=1,
                        gid=f"remedy:{target}:{r['remedy']}")
            label = {"pca": "PCA", "none": f"{target}, no remedy"}.get(r["remedy"], r["remedy_text"])
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize="x-small", color=face)
    ax.set_xlabel(METRIC_LABELS.get(leakage, {"epsilon_lb": "epsilon proven by the audit (lower bound)"}
                                    .get(leakage, leakage)) + "  (less leakage ←)")
    ax.set_ylabel(METRIC_LABELS["mse_clean"] + " (unseen)")
    ax.set_yscale("log")
    ax.set_title("Remedies: reconstruction quality against leakage (95% intervals over seeds)", fontsize="small")
    plt.setp(ax.get_xticklabels(), fontsize="small")
    return ax
