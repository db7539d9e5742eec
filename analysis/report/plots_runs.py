"""Seaborn plots of single runs' tidy frames: learning curves, per-sample error distributions, reconstructions,
latent maps and per-sample memorization scores (the plots over many runs are in ``plots``).
"""
from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from autoenc.validation import check_columns

from ._plotstyle import (SEEN, SPLIT, SPLIT_LABELS, UNSEEN, VALIDATION, axes, finish, image_grid, images_and_shape,
                         look, plain_log_ticks, split_handle, split_style)

__all__ = ["plot_error_distributions", "plot_latent", "plot_learning_curves", "plot_memorization_scores",
           "plot_reconstructions"]


def _default_runs(history, limit=6):
    runs = list(dict.fromkeys(history["run"]))
    if len(runs) <= limit:
        return runs
    if not {"bottleneck", "width"} <= set(history.columns):
        return runs[:limit]
    meta = history.drop_duplicates("run")
    meta = meta[meta["bottleneck"] == meta["bottleneck"].max()]
    if "seed" in meta.columns and meta["seed"].notna().any():
        meta = meta[meta["seed"] == meta["seed"].min()]
    order = ["width"] + (["depth"] if "depth" in meta.columns else [])
    return list(meta.sort_values(order).drop_duplicates("width")["run"])


def plot_learning_curves(history, *, runs=None, ax=None):
    """Seen (training, dashed) and unseen (validation, solid) loss per epoch for a few runs, log y.

    Parameters
    ----------
    history : DataFrame
        ``history.csv``: columns run, epoch, train_loss, val_loss.
    runs : sequence of str, optional
        Runs to draw. Default: all if at most six, else one per width at the largest bottleneck and smallest seed.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    check_columns(history, ["run", "epoch", "train_loss", "val_loss"], "history")
    runs = _default_runs(history) if runs is None else list(runs)
    unknown = sorted(set(runs) - set(history["run"]))
    if unknown:
        raise ValueError(f"runs not in history: {', '.join(map(str, unknown))}")
    if not runs:
        raise ValueError("history has no runs to draw")
    data = history[history["run"].isin(runs)]
    long = data.melt(id_vars=["run", "epoch"], value_vars=["train_loss", "val_loss"], var_name=SPLIT,
                     value_name="loss")
    long[SPLIT] = long[SPLIT].map({"train_loss": SEEN, "val_loss": VALIDATION})
    long = long.dropna(subset=["loss"])
    ax = axes(ax)
    sns.lineplot(data=long, x="epoch", y="loss", hue="run", hue_order=runs, **split_style((SEEN, VALIDATION),
                 markers=False), errorbar=None,
                 palette=sns.color_palette("viridis", len(runs)) if len(runs) > 1 else None, ax=ax)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    return finish(ax, ylabel="loss: reconstruction MSE per feature (log scale)", xlabel="epoch", logx=False,
                   title="Learning curves")


def _pick_run(samples):
    """The autoencoder run with the largest unseen − seen mean error, or the first run."""
    ae = samples[samples["model"] == "autoencoder"] if "model" in samples.columns else samples
    means = ae.groupby(["run", "split"])["error"].mean().unstack()
    if {"train", "test"} <= set(means.columns):
        gap = (means["test"] - means["train"]).dropna()
        if len(gap):
            return gap.idxmax()
    return (ae if len(ae) else samples)["run"].iloc[0]


def _error_panel(frame, ax, title):
    data = frame[frame["split"].isin(["train", "test"]) & (frame["error"] > 0)]
    if data.empty:
        raise ValueError(f"no positive seen or unseen error to draw for {title}")
    edges = np.geomspace(data["error"].min(), data["error"].max() * (1 + 1e-9), 31)  # shared log-spaced bins
    handles = []
    for split, label in (("train", SEEN), ("test", UNSEEN)):
        errors = data.loc[data["split"] == split, "error"]
        if errors.empty:
            continue
        style = look(label)
        ax.hist(errors, bins=edges, density=True, histtype="step", color=style["color"], ls=style["linestyle"],
                lw=1.4, gid=f"hist-{split}")
        ax.axvline(errors.mean(), color=style["color"], ls=style["linestyle"], lw=2.2, alpha=0.6,
                   gid=f"mean-{split}")
        handles.append(split_handle(label, marker=False, color=True))
    ax.set_xscale("log")
    ax.legend(handles=handles, title="split (thick: its mean)", fontsize="small", title_fontsize="small")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("per-sample reconstruction error (MSE per feature, log scale)")
    ax.set_ylabel("density")
    ax.set_title(title)


def plot_error_distributions(samples, *, run=None, ax=None):
    """Seen vs unseen per-sample error distributions of one autoencoder run and of PCA with the same bottleneck.

    Parameters
    ----------
    samples : DataFrame
        ``samples.csv``: columns run, model, bottleneck, split, error.
    run : str, optional
        The autoencoder run. Default: the one whose mean unseen error exceeds its mean seen error the most.
    ax : Axes or sequence of two Axes, optional
        One Axes draws only ``run``; two draw ``run`` and its PCA. Default: a new figure.

    Returns
    -------
    Figure
        Step histograms, seen blue dashed and unseen orange solid; thick vertical lines of the same look mark each
        split's mean error.
    """
    check_columns(samples, ["run", "model", "bottleneck", "split", "error"], "samples")
    if samples.empty:
        raise ValueError("samples is empty")
    run = _pick_run(samples) if run is None else run
    mine = samples[samples["run"] == run]
    if mine.empty:
        raise ValueError(f"run {run!r} is not in samples")
    k = mine["bottleneck"].iloc[0]
    pca = samples[(samples["model"] == "pca") & (samples["bottleneck"] == k)]
    pca = pca[pca["run"] == pca["run"].iloc[0]] if len(pca) and mine["model"].iloc[0] != "pca" else pca.iloc[:0]
    if ax is None:
        n_panels = 2 if len(pca) else 1
        fig, axes = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 4.0), sharex=True, squeeze=False)
        axes = list(axes[0])
    else:
        axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
        fig = axes[0].figure
    _error_panel(mine, axes[0], f"{run} (k={int(k)})")
    if len(axes) > 1 and len(pca):
        _error_panel(pca, axes[1], f"PCA, same k ({pca['run'].iloc[0]})")
    fig.suptitle("Per-sample reconstruction error: seen vs unseen")
    return fig


def _as_images(name, array, shape):
    arr = np.asarray(array, dtype=float)
    if arr.ndim != 2 or arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} like clean, got {arr.shape}")
    return arr


def plot_reconstructions(clean, noisy, reconstructions, image_shape, *, n=8, titles=None):
    """Image grid: clean samples, the noisy inputs, then one row per model's reconstruction.

    The images are one mosaic on one axes (row labels as its y tick labels, column titles as its top x tick labels).

    Parameters
    ----------
    clean : ndarray of shape (n_samples, n_features)
    noisy : ndarray of shape (n_samples, n_features) or None
        The inputs the models saw; None skips the row.
    reconstructions : dict of str to ndarray of shape (n_samples, n_features)
        Row label -> reconstruction, drawn in the dict's order.
    image_shape : tuple of int
        (height, width); ``height * width`` must equal ``n_features``.
    n : int
        Columns to draw (the first ``n`` samples).
    titles : sequence of str, optional
        Column titles, e.g. ``"digit 3"``.

    Returns
    -------
    Figure

    Examples
    --------
    >>> fig = plot_reconstructions(X[:8], X_noisy[:8], {"pca": pca_hat[:8]}, (8, 8))  # doctest: +SKIP
    """
    clean, image_shape = images_and_shape(clean, "clean", image_shape)
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rows = [("clean", clean)]
    if noisy is not None:
        rows.append(("noisy input", _as_images("noisy", noisy, clean.shape)))
    rows += [(str(name), _as_images(f"reconstructions[{name!r}]", arr, clean.shape))
             for name, arr in reconstructions.items()]
    n = min(n, clean.shape[0])
    vmin, vmax = float(clean.min()), float(clean.max())
    if image_shape[0] == 1:  # tabular data: one heatmap per row kind, samples as rows, features as columns
        return _reconstruction_heatmaps(rows, n, vmin, vmax, titles)
    fig, ax = plt.subplots(figsize=(1.1 * n + 1.2, 1.15 * len(rows) + 0.4))
    columns, centres = image_grid(ax, [list(arr[:n]) for _, arr in rows], image_shape, vmin=vmin, vmax=vmax)
    ax.set_yticks(centres, [label for label, _ in rows], fontsize="small")
    if titles is not None:
        ax.xaxis.tick_top()
        ax.set_xticks(columns[:len(titles)], [str(t) for t in titles[:n]], fontsize="small")
    fig.suptitle("Unseen (test) samples and their reconstructions")
    return fig


def _reconstruction_heatmaps(rows, n, vmin, vmax, titles):
    fig, axes = plt.subplots(len(rows), 1, figsize=(8.0, 0.35 * n * len(rows) + 1.2), sharex=True, squeeze=False)
    for ax, (label, arr) in zip(axes[:, 0], rows):
        image = ax.imshow(arr[:n], cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")
        ax.set_yticks(range(n), [str(t) for t in titles[:n]] if titles is not None else range(n), fontsize="x-small")
    axes[-1, 0].set_xlabel("feature")
    fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.8, label="value")
    fig.suptitle("Unseen (test) samples (rows) and their reconstructions, feature by feature")
    return fig


def plot_latent(embedding, *, run=None, method=None, ax=None):
    """2-D embedding of latent codes: colour = label, circles = seen (train), crosses = unseen (test).

    Parameters
    ----------
    embedding : DataFrame
        ``embeddings.csv``: columns x, y, split (and label, run). With several runs, ``run`` picks one
        (default: the first autoencoder run).
    method : {"pca", "umap"}, optional
        How the codes were mapped to 2-D (``StudyConfig.latent``), named in the title and axis labels.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    check_columns(embedding, ["x", "y", "split"], "embedding")
    if method not in (None, "pca", "umap"):
        raise ValueError(f"method must be None, 'pca' or 'umap', got {method!r}")
    data = embedding
    if "run" in data.columns and data["run"].nunique() > 1 or run is not None:
        check_columns(data, ["run"], "embedding")
        if run is None:
            ae = data[data["model"] == "autoencoder"] if "model" in data.columns else data
            run = (ae if len(ae) else data)["run"].iloc[0]
        data = data[data["run"] == run]
        if data.empty:
            raise ValueError(f"run {run!r} is not in embedding")
    elif "run" in data.columns and len(data):
        run = data["run"].iloc[0]
    data = data[data["split"].isin(["train", "test"])]
    data = data.assign(**{SPLIT: data["split"].map(SPLIT_LABELS)})
    hue, palette, order = None, None, None
    if "label" in data.columns and data["label"].notna().any():
        labels = data["label"]
        numeric = pd.api.types.is_numeric_dtype(labels)
        data = data.assign(label=labels.map(lambda v: "?" if pd.isna(v) else str(int(v)) if numeric else str(v)))
        order = sorted(data["label"].unique(), key=lambda s: (len(s), s))
        hue, palette = "label", sns.color_palette("tab10" if len(order) <= 10 else "husl", len(order))
    ax = axes(ax)
    sns.scatterplot(data=data, x="x", y="y", hue=hue, hue_order=order, palette=palette, style=SPLIT,
                    style_order=[SEEN, UNSEEN], markers={s: look(s)["marker"] for s in (SEEN, UNSEEN)}, s=16,
                    alpha=0.75, linewidth=0, ax=ax)
    name = {"pca": "PCA", "umap": "UMAP", None: "2-D embedding"}[method]
    title = f"{name} map of the latent codes" + (f" ({run})" if run is not None else "")
    axis = f"{name} dimension" if method else "embedding dimension"
    return finish(ax, xlabel=f"{axis} 1 (arbitrary units)", ylabel=f"{axis} 2 (arbitrary units)", logx=False,
                  title=title)


def plot_memorization_scores(memorization, *, ax=None):
    """Distributions of per-sample memorization scores (error when unseen − error when seen), one per run.

    Parameters
    ----------
    memorization : DataFrame
        ``memorization.csv``: columns model, score, and run (each run named in the legend; else one per model).
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    check_columns(memorization, ["model", "score"], "memorization")
    data = memorization.dropna(subset=["score"])
    if data.empty:
        raise ValueError("memorization has no score values")
    ax = axes(ax)
    hue = "run" if "run" in data.columns else "model"
    levels = list(dict.fromkeys(data[hue]))  # viridis: blue and orange mean seen and unseen in every figure
    sns.histplot(data=data, x="score", hue=hue, hue_order=levels, element="step", stat="density", common_norm=False,
                 palette=sns.color_palette("viridis", len(levels)), bins=40, ax=ax)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("memorization score: error unseen − error seen (MSE per feature)")
    ax.set_ylabel("density")
    ax.set_title("Per-sample memorization of each run's architecture")
    return ax
