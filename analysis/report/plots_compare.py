"""Drawing for :func:`~analysis.report.compare.compare_studies`: capacity curves of several studies on shared axes.

Only draws the frame it is given (one row per run and split, with a ``study`` column); the reading and grouping
by data live in :mod:`analysis.report.compare`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from autoenc.io import atomic_write
from autoenc.validation import check_columns

from ._plotstyle import METRIC_LABELS, PCA_LINESTYLE, SEEN, UNSEEN, k_label, plain_log_ticks, split_handle
from ._plotstyle import look, with_labels

__all__ = ["plot_compared", "save", "study_palette"]

ROWS = {  # what a row of panels draws: its label, the splits, whether its axis is logarithmic
    "mse_clean": ("unseen and seen error\nvs. clean signal (MSE)", (SEEN, UNSEEN), True),
    "mse": ("unseen and seen error\n(MSE vs. model input)", (SEEN, UNSEEN), True),
    "noise_memorization": ("noise memorization\n(0 removes, 1 copies)", (SEEN, UNSEEN), False),
    "cka_pca": ("CKA of the code\nto PCA's scores (unseen)", (UNSEEN,), False),
    "cca_pca": ("canonical similarity\nto PCA's scores (unseen)", (UNSEEN,), False),
}


SIMILARITY = ("cka_pca", "cca_pca")


def study_palette(names):
    """One colour per study name, in order (seaborn's colour-blind palette, then tab20 past ten studies)."""
    names = list(names)
    colors = sns.color_palette("colorblind", 10) if len(names) <= 10 else sns.color_palette("tab20", 20)
    return {name: colors[i % len(colors)] for i, name in enumerate(names)}


def _rows(curves):
    """The metrics to draw: the error against the clean signal where every study has it, else against the input."""
    def has(col):
        return col in curves.columns and curves[col].notna().any()

    clean = has("mse_clean") and curves.groupby("study")["mse_clean"].apply(lambda v: v.notna().any()).all()
    rows = ["mse_clean" if clean else "mse"]
    rows += [m for m in ("noise_memorization",) if has(m)]
    rows += [m for m in SIMILARITY if has(m)][:1]  # one similarity row: CKA where it is there
    return rows


def plot_compared(curves, *, palette, title=None, errorbar="sd"):
    """Seen and unseen capacity curves of several studies, one colour per study, one column per bottleneck.

    Parameters
    ----------
    curves : DataFrame
        One row per run and split: ``study, model, bottleneck, n_params, split`` and ``mse`` (optionally
        ``mse_clean``, ``noise_memorization``, ``cka_pca`` or ``cca_pca``), as ``results.csv`` holds them with a
        ``study`` column added. Only the train (seen) and test (unseen) splits are drawn.
    palette : dict
        Colour per study (:func:`study_palette`).
    title : str, optional
        The figure's title (say which data the studies share).
    errorbar : {"sd", None}
        Band over seeds: one standard deviation, or none.

    Returns
    -------
    Figure
        Rows: the error (against the clean signal where every study has it), noise memorization, and the code's
        similarity to PCA where ``latent.csv`` gave it; autoencoders as lines against parameter count, PCA with
        the same k as a dotted line in the study's colour at its unseen value.

    Examples
    --------
    >>> fig = plot_compared(curves, palette=study_palette(curves["study"].unique()))  # doctest: +SKIP
    """
    check_columns(curves, ["study", "model", "bottleneck", "n_params", "split", "mse"], "curves")
    if errorbar not in ("sd", None):
        raise ValueError(f"errorbar must be 'sd' or None, got {errorbar!r}")
    missing = sorted(set(curves["study"]) - set(palette))
    if missing:
        raise ValueError(f"palette has no colour for the studies {missing}")
    data = with_labels(curves[curves["split"].isin(["train", "test"])])
    if data.empty:
        raise ValueError("curves has no seen (train) or unseen (test) rows to draw")
    names = [n for n in palette if n in set(data["study"])]
    ks = sorted(int(k) for k in data["bottleneck"].unique())
    rows = _rows(data)
    width, height = 2.5 * len(ks) + 2.6, 2.3 * len(rows) + 0.8
    fig, axs = plt.subplots(len(rows), len(ks), figsize=(width, height), sharex=True, sharey="row", squeeze=False)
    # fixed margins in inches (a constrained layout measures every tick label: a second per figure)
    fig.subplots_adjust(left=1.3 / width, right=1 - 2.0 / width, bottom=0.7 / height, top=1 - 0.6 / height,
                        wspace=0.08, hspace=0.12)
    for r, metric in enumerate(rows):
        label, splits, logy = ROWS[metric]
        for c, k in enumerate(ks):
            ax = axs[r, c]
            _panel(data[data["bottleneck"] == k], metric, splits, names, palette, ax, errorbar)
            if logy and ax.has_data():
                ax.set_yscale("log")
                plain_log_ticks(ax.yaxis)
            ax.set_title(k_label(k) if r == 0 else "", fontsize="medium")
            ax.set_ylabel(label if c == 0 else "")
            ax.set_xlabel("parameters" if r == len(rows) - 1 else "")
            ax.grid(True, which="major", alpha=0.3)
    for ax in axs.flat:
        if ax.has_data():
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(_short))
            ax.xaxis.set_minor_formatter(NullFormatter())
    handles = [Line2D([], [], color=palette[n], lw=2, label=n) for n in names]
    handles += [split_handle(SEEN), split_handle(UNSEEN),
                Line2D([], [], color="0.35", ls=PCA_LINESTYLE, lw=1.3, label="PCA, same k (unseen)")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1 - 1.9 / width, 1 - 0.6 / height),
               fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _short(value, _pos=None):
    """Parameter counts as 3k, 100k, 1.2M."""
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if value >= div:
            return f"{value / div:.3g}{unit}"
    return f"{value:.0f}"


def _panel(frame, metric, splits, names, palette, ax, errorbar):
    """Mean over seeds against parameter count, a band of one sd, per study and split; PCA as dotted lines."""
    ae = frame[(frame["model"] == "autoencoder") & frame["split"].isin(splits)] if metric in frame else frame.iloc[:0]
    for (name, split), group in ae[ae[metric].notna()].groupby(["study", "split"], sort=False):
        stats = group.groupby("n_params")[metric].agg(["mean", "std"]).sort_index()
        style = look(split)
        ax.plot(stats.index, stats["mean"], color=palette[name], ls=style["linestyle"], marker=style["marker"],
                markersize=5, lw=1.5, gid=f"{name}-{split}")
        if errorbar == "sd" and stats["std"].notna().any():
            sd = stats["std"].fillna(0.0)
            ax.fill_between(stats.index, stats["mean"] - sd, stats["mean"] + sd, color=palette[name], alpha=0.2,
                            lw=0)
    pca = frame[(frame["model"] == "pca") & (frame["split"] == UNSEEN)]
    if metric in pca.columns and metric not in SIMILARITY:  # PCA's similarity to itself says nothing
        for name, value in pca.groupby("study")[metric].mean().dropna().items():
            if np.isfinite(value):
                ax.axhline(value, color=palette[name], ls=PCA_LINESTYLE, lw=1.3, gid=f"pca-{name}")


def save(fig, path, *, dpi=100):
    """Write ``fig`` as a PNG atomically, close it and return the path."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    finally:
        plt.close(fig)
