"""Seaborn plots over the study's tidy frames: seen vs unseen error, gap, noise memorization, membership, latents.

Every function draws one frame (the schema of ``results.csv``, ``samples.csv``, ``history.csv``,
``embeddings.csv`` or ``memorization.csv``) onto ``ax`` (default: ``plt.gca()``) and returns the Axes, or a
Figure for multi-panel plots. Nothing here computes a metric beyond a mean or a difference, and nothing calls
``plt.show()``: callers decide where figures go.
"""
from __future__ import annotations

import warnings

import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D

from autoenc.validation import check_columns

from ._plotstyle import METRIC_LABELS, PCA_LINESTYLE, SEEN, UNSEEN, ae_lines as _ae_lines, axes as _axes
from ._plotstyle import finish as _finish, k_palette as _k_palette, look as _look, with_labels as _with_labels
from .tables import ok_rows, run_gaps
from .plots_runs import (plot_error_distributions, plot_latent, plot_learning_curves,  # noqa: F401  (re-exported)
                         plot_memorization_scores, plot_reconstructions)

__all__ = [
    "plot_capacity", "plot_gap", "plot_memorization", "plot_membership", "plot_learning_curves",
    "plot_error_distributions", "plot_reconstructions", "plot_latent", "plot_memorization_scores",
]

def _require_values(frame, column, name, why=""):
    if frame.empty or frame[column].isna().all():
        raise ValueError(f"{name} has no {column} values on successful runs{why}")


def plot_capacity(results, *, metric="mse", errorbar="sd", ax=None):
    """Seen and unseen ``metric`` against model size, one colour per bottleneck, PCA as reference lines.

    Parameters
    ----------
    results : DataFrame
        ``results.csv``: columns model, bottleneck, n_params, split and ``metric``; only ``status == "ok"``
        rows on the train and test splits are drawn.
    metric : str
        Column to draw, e.g. ``"mse"`` or ``"mse_clean"``.
    errorbar : seaborn errorbar spec
        Band over seeds; default ±1 standard deviation (with a handful of seeds a bootstrap interval means little).
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Autoencoders as lines (seen dashed with circles, unseen solid with crosses: ``_plotstyle.LOOKS``) with
        bands over seeds; PCA with the same k as dotted horizontal lines at its unseen value.

    Examples
    --------
    >>> ax = plot_capacity(pd.read_csv("runs/digits/results.csv"))  # doctest: +SKIP
    """
    check_columns(results, ["model", "bottleneck", "n_params", "split", metric], "results")
    data = ok_rows(results)
    ae = data[data["model"] == "autoencoder"]
    _require_values(ae, metric, "results (autoencoder rows)")
    ax = _axes(ax)
    palette = _k_palette(data["bottleneck"])
    _ae_lines(_with_labels(ae), metric, palette, ax, errorbar=errorbar)
    pca = data[(data["model"] == "pca") & (data["split"] == "test")]
    for k, value in pca.groupby("bottleneck")[metric].mean().dropna().items():
        ax.axhline(value, color=palette[int(k)], ls=PCA_LINESTYLE, lw=1.3, gid=f"pca-k{int(k)}")
    extra = [Line2D([], [], color="0.4", ls=PCA_LINESTYLE, lw=1.3, label="PCA, same k (unseen)")] if len(pca) else []
    what = {"mse": "reconstruction error", "mse_clean": "error against the clean signal"}.get(metric, metric)
    return _finish(ax, extra, ylabel=METRIC_LABELS.get(metric, metric), title=f"Seen vs unseen {what} by model size")


def plot_gap(results, *, kind="line", errorbar="sd", ax=None):
    """Generalization gap (unseen − seen MSE) by model size, or as a bottleneck x width heatmap.

    Parameters
    ----------
    results : DataFrame
        ``results.csv``: columns run, model, bottleneck, n_params, split, mse (and width for the heatmap).
    kind : {"line", "heatmap"}
        ``"line"``: gap against parameter count, one line per bottleneck with a band over seeds, PCA dotted.
        ``"heatmap"``: mean gap over seeds (and depths) of the autoencoders, rows bottleneck, columns width.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    if kind not in ("line", "heatmap"):
        raise ValueError(f"kind must be 'line' or 'heatmap', got {kind!r}")
    if kind == "heatmap":
        check_columns(results, ["width"], "results")
    gaps = run_gaps(results)
    ae = gaps[gaps["model"] == "autoencoder"]
    if ae.empty:
        raise ValueError("results has no successful autoencoder run with both train and test rows")
    ax = _axes(ax)
    if kind == "heatmap":
        table = ae.pivot_table(index="bottleneck", columns="width", values="gap", aggfunc="mean")
        table.index = [int(k) for k in table.index]
        table.columns = [int(w) for w in table.columns]
        with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 deprecates
            warnings.filterwarnings("ignore", "The set_bad function", PendingDeprecationWarning)
            sns.heatmap(table, annot=True, fmt=".2g", cmap="vlag", center=0.0, linewidths=0.5, ax=ax,
                        cbar_kws={"label": "mean gap: unseen − seen MSE (per feature)"})
        ax.tick_params(axis="y", rotation=0)
        ax.set_xlabel("first hidden layer width (units)")
        ax.set_ylabel("bottleneck k (latent units)")
        ax.set_title("Generalization gap, mean over seeds")
        return ax
    palette = _k_palette(gaps["bottleneck"])
    _ae_lines(_with_labels(ae), "gap", palette, ax, style=False, errorbar=errorbar)
    ax.axhline(0.0, color="black", lw=0.8)
    pca = gaps[gaps["model"] == "pca"]
    for k, value in pca.groupby("bottleneck")["gap"].mean().items():
        ax.axhline(value, color=palette[int(k)], ls=PCA_LINESTYLE, lw=1.3, gid=f"pca-k{int(k)}")
    extra = [Line2D([], [], color="0.4", ls=PCA_LINESTYLE, lw=1.3, label="PCA, same k")] if len(pca) else []
    return _finish(ax, extra, ylabel=METRIC_LABELS["gap"], title="Generalization gap by model size")


def plot_memorization(results, *, errorbar="sd", ax=None):
    """Noise memorization on seen and unseen samples against model size, with what a fixed projection keeps.

    Parameters
    ----------
    results : DataFrame
        ``results.csv``: columns model, bottleneck, n_params, n_features, split, noise_memorization.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Autoencoder lines (seen dashed with circles, unseen solid with crosses); dash-dotted reference per
        bottleneck: ``nm_reference`` when results has it (what the rank-k PCA projection keeps of the noise, k/d
        for isotropic noise), else k/d; PCA's values as black-edged points with the split's marker; 1 = the
        identity map.
    """
    check_columns(results, ["model", "bottleneck", "n_params", "n_features", "split", "noise_memorization"], "results")
    data = ok_rows(results)
    ae = data[data["model"] == "autoencoder"]
    _require_values(ae, "noise_memorization", "results (autoencoder rows)", " (was noise injected?)")
    ax = _axes(ax)
    palette = _k_palette(data["bottleneck"])
    _ae_lines(_with_labels(ae), "noise_memorization", palette, ax, errorbar=errorbar)
    has_reference = "nm_reference" in data.columns and data["nm_reference"].notna().any()
    if has_reference:
        reference = data.groupby("bottleneck")["nm_reference"].mean()
    else:
        reference = data.groupby("bottleneck")["bottleneck"].first() / data.groupby("bottleneck")["n_features"].first()
    for k, value in reference.items():
        ax.axhline(value, color=palette[int(k)], ls="-.", lw=1.0, alpha=0.8, gid=f"reference-k{int(k)}")
    ax.axhline(1.0, color="0.3", lw=0.8, gid="identity")
    pca = data[(data["model"] == "pca")].dropna(subset=["noise_memorization"])
    for split, label in (("train", SEEN), ("test", UNSEEN)):
        part = pca[pca["split"] == split]
        if len(part):
            ax.scatter(part["n_params"], part["noise_memorization"], marker=_look(label)["marker"], s=45,
                       linewidths=0.8, zorder=3, c=[palette[int(k)] for k in part["bottleneck"]],
                       edgecolors="black", gid=f"pca-{split}")
    label = ("rank-k PCA projection (nm_reference)" if has_reference else "k/d: fixed rank-k projection")
    extra = [Line2D([], [], color="0.4", ls="-.", label=label),
             Line2D([], [], color="0.3", lw=0.8, label="1: identity (copies noise)")]
    if len(pca):
        extra += [Line2D([], [], color="0.6", marker=_look(label)["marker"], ls="", markeredgecolor="black",
                         markersize=7, label=f"PCA, same k, {label}") for label in (SEEN, UNSEEN)]
    top = max(1.05, float(np.nanmax(data["noise_memorization"])) + 0.05)
    ax.set_ylim(min(0.0, float(np.nanmin(data["noise_memorization"]))) - 0.02, top)
    return _finish(ax, extra, ylabel=METRIC_LABELS["noise_memorization"],
                   title="How much of the injected noise the model reproduces")


def plot_membership(results, *, errorbar="sd", ax=None):
    """Membership AUC (can the error tell seen from unseen samples?) against model size; 0.5 is chance.

    Parameters
    ----------
    results : DataFrame
        ``results.csv``: columns model, bottleneck, n_params, split, membership_auc (a pair metric, read from
        the test rows).
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    check_columns(results, ["model", "bottleneck", "n_params", "split", "membership_auc"], "results")
    data = ok_rows(results)
    data = data[data["split"] == "test"]
    ae = data[data["model"] == "autoencoder"]
    _require_values(ae, "membership_auc", "results (autoencoder test rows)")
    ax = _axes(ax)
    palette = _k_palette(data["bottleneck"])
    _ae_lines(_with_labels(ae), "membership_auc", palette, ax, style=False, errorbar=errorbar)
    ax.axhline(0.5, color="black", ls="--", lw=0.9, gid="chance")
    pca = data[data["model"] == "pca"].dropna(subset=["membership_auc"])
    if len(pca):
        ax.scatter(pca["n_params"], pca["membership_auc"], marker="D", s=28, edgecolors="black", linewidths=0.6,
                   c=[palette[int(k)] for k in pca["bottleneck"]], zorder=3, gid="pca")
    extra = [Line2D([], [], color="black", ls="--", lw=0.9, label="chance (0.5): no leakage")]
    if len(pca):
        extra.append(Line2D([], [], color="0.6", marker="D", ls="", markeredgecolor="black", label="PCA, same k"))
    return _finish(ax, extra, ylabel=METRIC_LABELS["membership_auc"],
                   title="Does the reconstruction error reveal training membership?")


