"""Pictures of a membership audit and of per-sample memorization from reference models.

Draws the frames of :mod:`~analysis.measures.audit` and :mod:`~analysis.measures.reference`; computes only sorting.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from autoenc.validation import check_columns, check_int

from ._plotstyle import axes as _axes, image_grid, images_and_shape

__all__ = ["plot_audit_roc", "plot_memorization_distribution", "plot_most_memorized"]

_ATTACK_LABELS = {
    "loss": "loss threshold", "lira_offline": "LiRA offline", "lira_online": "LiRA online",
    "lira_offline_fixed": "LiRA offline, fixed variance", "lira_online_fixed": "LiRA online, fixed variance",
    "rmia": "RMIA",
}


def plot_audit_roc(roc, *, summary=None, ax=None):
    """ROC curve of each attack on log-log axes, where the low false-positive end is visible, with chance.

    Parameters
    ----------
    roc : DataFrame
        The ROC frame of :func:`analysis.measures.audit.membership_audit`: columns ``attack``, ``fpr``, ``tpr``. Points
        with a zero FPR or TPR cannot be placed on log axes and are left out.
    summary : DataFrame, optional
        The summary frame of the same audit: its ``auc`` goes into the legend.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        One line per attack (gid ``roc:<attack>``) and the diagonal TPR = FPR (gid ``chance``). Both axes span
        the drawn points (a decade below the lowest TPR at most, so curves near TPR = 1 stay apart from the
        border); where every curve is TPR = 1, a note says so (gid ``all-flagged``).

    Examples
    --------
    >>> ax = plot_audit_roc(roc, summary=summary)  # doctest: +SKIP
    """
    check_columns(roc, ["attack", "fpr", "tpr"], "roc")
    data = roc[(roc["fpr"] > 0) & (roc["tpr"] > 0)]
    if data.empty:
        raise ValueError("roc has no point with both fpr > 0 and tpr > 0 to draw on log axes")
    auc = {}
    if summary is not None:
        check_columns(summary, ["attack", "auc"], "summary")
        auc = summary.drop_duplicates("attack").set_index("attack")["auc"].to_dict()
    ax = _axes(ax)
    # colour-blind safe, without its blue and orange: those mean seen and unseen in every figure
    palette = sns.color_palette("colorblind", 10)[2:] + sns.color_palette("husl", max(0, data["attack"].nunique() - 8))
    for color, (attack, curve) in zip(palette, data.groupby("attack", sort=False)):
        label = _ATTACK_LABELS.get(attack, attack) + (f" (AUC {auc[attack]:.3f})" if attack in auc else "")
        ax.plot(curve["fpr"], curve["tpr"], color=color, lw=1.4, label=label, gid=f"roc:{attack}")
    low = float(data["fpr"].min())
    ax.plot([low, 1], [low, 1], color="black", ls="--", lw=0.9, label="chance (TPR = FPR)", gid="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, 1)
    bottom = float(data["tpr"].min())
    # the data's own range, with room on a log scale: curves at TPR near 1 must not sit on the border
    span = max(np.log10(1 / bottom), 0.1)
    ax.set_ylim(10 ** (-1.1 * span), 10 ** (0.15 * span))
    if bottom >= 1:  # every curve is the line TPR = 1: say so, rather than leave the reader to find six lines in one
        note = f"TPR = 1 throughout: every attack flags all members\neven at {100 * low:.2g}% false positives"
        ax.text(0.5, 0.45, note, transform=ax.transAxes, ha="center", va="center", fontsize="small", gid="all-flagged")
    ax.set_xlabel("false-positive rate (non-members flagged)")
    ax.set_ylabel("true-positive rate (members flagged)")
    ax.set_title("Membership attacks: ROC, log-log")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)  # off the curves
    ax.grid(True, which="major", alpha=0.3)
    return ax


def _scores_frame(scores, name="scores"):
    if isinstance(scores, pd.DataFrame):
        check_columns(scores, ["score"], name)
        return scores if "sample" in scores.columns else scores.assign(sample=np.arange(len(scores)))
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-sample scores or a DataFrame, got shape {values.shape}")
    return pd.DataFrame({"sample": np.arange(len(values)), "score": values})


def plot_memorization_distribution(scores, *, ax=None):
    """Histogram of per-sample memorization (error when out − error when in), with zero marked.

    Parameters
    ----------
    scores : DataFrame or array-like of shape (n_samples,)
        :func:`analysis.measures.reference.memorization_from_references` (column ``score``; a ``model`` column, if any,
        gives one histogram per model), or the scores themselves.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes

    Examples
    --------
    >>> ax = plot_memorization_distribution(memorization_from_references(errors, masks))  # doctest: +SKIP
    """
    data = _scores_frame(scores).dropna(subset=["score"])
    if data.empty:
        raise ValueError("scores has no finite score")
    ax = _axes(ax)
    hue = "model" if "model" in data.columns else None
    levels = list(dict.fromkeys(data[hue])) if hue else None
    sns.histplot(data=data, x="score", hue=hue, hue_order=levels, element="step", stat="density", common_norm=False,
                 palette=sns.color_palette("viridis", len(levels)) if hue else None, bins=50, ax=ax)
    ax.axvline(0.0, color="black", lw=0.8, gid="zero")
    ax.set_xlabel("memorization: error when unseen − error when seen (MSE per feature)")
    ax.set_ylabel("density")
    ax.set_title("Per-sample memorization (reference models)")
    return ax


def plot_most_memorized(X, scores, image_shape, *, n=8, sample_ids=None):
    """The ``n`` most memorized samples (top row) and the ``n`` least (bottom row), drawn as images.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The pool the scores refer to (row ``sample`` of ``X``).
    scores : DataFrame or array-like of shape (n_samples,)
        As for :func:`plot_memorization_distribution`; NaN scores are skipped.
    image_shape : tuple of int
        (height, width), ``height * width == n_features``.
    n : int, default 8
    sample_ids : array-like of int, optional
        The names to show for rows of ``X`` (when ``X`` holds only some rows of a larger dataset).

    Returns
    -------
    Figure
        One axes holding the 2 x n images as one mosaic (:func:`._plotstyle.image_grid`), each image titled with
        its sample index and score (the axes' texts, in row order); the rows' labels are its y tick labels.

    Examples
    --------
    >>> fig = plot_most_memorized(X_train, scores, (8, 8))  # doctest: +SKIP
    """
    X, image_shape = images_and_shape(X, "X", image_shape)
    n = check_int(n, "n", minimum=1)
    data = _scores_frame(scores).dropna(subset=["score"]).sort_values("score", ascending=False, kind="stable")
    if data.empty:
        raise ValueError("scores has no finite score")
    if data["sample"].max() >= len(X) or data["sample"].min() < 0:
        raise ValueError(f"scores refer to sample {int(data['sample'].max())} but X has {len(X)} rows")
    n = min(n, len(data))
    rows = {"most memorized": data.head(n), "least memorized": data.tail(n).iloc[::-1]}
    low, high = float(X.min()), float(X.max())
    ids = np.arange(len(X)) if sample_ids is None else np.asarray(sample_ids)
    fig, ax = plt.subplots(figsize=(1.2 * n + 0.8, 3.8), gridspec_kw=dict(left=0.04, right=0.99, bottom=0.02, top=0.86))
    # rows half an image apart, room for each image's two-line title: no title prints over the row above
    columns, centres = image_grid(ax, [[X[int(i)] for i in frame["sample"]] for frame in rows.values()], image_shape,
                                  vmin=low, vmax=high, gap=(0.5, 0.1))
    for (label, frame), y in zip(rows.items(), centres):
        for x, sample, score in zip(columns, frame["sample"], frame["score"]):
            ax.annotate(f"#{int(ids[int(sample)])}\n{score:.3g}", (x, y - image_shape[0] / 2), xytext=(0, 4),
                        textcoords="offset points", ha="center", va="bottom", fontsize="x-small")
    ax.set_yticks(centres, list(rows), fontsize="small", rotation=90, va="center")
    fig.suptitle("Samples by memorization (error unseen − seen)", fontsize="small")
    return fig
