"""Seaborn plots over the study's tidy frames: seen vs unseen error, gap, noise memorization, membership, latents.

Every function draws one frame (the schema of ``results.csv``, ``samples.csv``, ``history.csv``,
``embeddings.csv`` or ``memorization.csv``) onto ``ax`` (default: ``plt.gca()``) and returns the Axes, or a
Figure for multi-panel plots. Nothing here computes a metric beyond a mean or a difference, and nothing calls
``plt.show()``: callers decide where figures go.
"""
from __future__ import annotations

import numbers
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

__all__ = [
    "plot_capacity", "plot_gap", "plot_memorization", "plot_membership", "plot_learning_curves",
    "plot_error_distributions", "plot_reconstructions", "plot_latent", "plot_memorization_scores",
]

SEEN, UNSEEN = "seen (train)", "unseen (test)"
_SPLIT_LABELS = {"train": SEEN, "test": UNSEEN}
_K = "bottleneck k"  # hue column name: seaborn shows it as the legend's title
_SPLIT = "split"
_PARAMS_LABEL = "parameters (log scale)"
METRIC_LABELS = {
    "mse": "reconstruction MSE (per feature, vs. model input)",
    "mse_clean": "reconstruction MSE vs. clean signal (per feature)",
    "noise_memorization": "noise memorization (0 = removes noise, 1 = copies it)",
    "membership_auc": "membership AUC (0.5 = no leakage)",
    "gap": "generalization gap: unseen − seen MSE (per feature)",
    "ratio": "unseen / seen MSE (ratio)",
    "tpr_at_1pct_fpr": "true-positive rate at 1% false positives",
}


def _require(frame, columns, name):
    """Raise a ValueError naming the columns of ``columns`` that ``frame`` (called ``name``) lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {', '.join(map(repr, missing))}; "
                         f"it has {', '.join(map(str, frame.columns)) or 'no columns'}")


def _axes(ax):
    return plt.gca() if ax is None else ax


def _ok(frame):
    """Rows of runs that trained successfully, on the seen and unseen splits only."""
    out = frame
    if "status" in out.columns:
        out = out[out["status"].fillna("ok") == "ok"]
    if "split" in out.columns:
        out = out[out["split"].isin(["train", "test"])]
    return out


def _k_label(k):
    return f"k={int(k)}"


def _k_palette(bottlenecks):
    """One colour per bottleneck, dark to light (viridis without its hard-to-see yellow end)."""
    ks = sorted({int(k) for k in pd.Series(bottlenecks).dropna()})
    cmap = sns.color_palette("viridis", as_cmap=True)
    positions = np.linspace(0.0, 0.85, len(ks)) if len(ks) > 1 else [0.35]
    return {k: cmap(p) for k, p in zip(ks, positions)}


def _with_labels(frame):
    out = frame.assign(**{_K: frame["bottleneck"].map(_k_label)})
    if "split" in out.columns:
        out[_SPLIT] = out["split"].map(_SPLIT_LABELS).fillna(out["split"])
    return out


def _ae_lines(ae, y, palette, ax, *, style=True, errorbar="sd"):
    """Autoencoder lines against parameter count: colour = bottleneck, style = split, band = spread over seeds."""
    kw = dict(style=_SPLIT, style_order=[SEEN, UNSEEN], markers={SEEN: "o", UNSEEN: "s"},
              dashes={SEEN: (3, 2), UNSEEN: ""}) if style else dict(marker="o")
    sns.lineplot(data=ae, x="n_params", y=y, hue=_K, hue_order=[_k_label(k) for k in palette],
                 palette={_k_label(k): c for k, c in palette.items()}, errorbar=errorbar, seed=0,
                 markersize=5, ax=ax, **kw)


def _plain_log_ticks(axis):
    """Label a log axis with plain numbers (2,000, 0.05) at 1-2-5 steps when it spans few decades."""
    low, high = sorted(abs(v) for v in axis.get_view_interval())
    decades = np.log10(high / low) if low > 0 else np.inf
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.2g}"))
    axis.set_minor_formatter(NullFormatter())


def _finish(ax, extra_handles=(), *, title=None, xlabel=_PARAMS_LABEL, ylabel=None, logx=True):
    if logx:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    old = ax.get_legend()
    legend_title = old.get_title().get_text() if old is not None else ""
    handles, labels = ax.get_legend_handles_labels()
    handles, labels = list(handles) + list(extra_handles), list(labels) + [h.get_label() for h in extra_handles]
    if handles:
        ax.legend(handles, labels, title=legend_title or None, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="small", title_fontsize="small", frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    return ax


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
        Autoencoders as lines (dashed = seen, solid = unseen) with bands over seeds; PCA with the same k as
        dotted horizontal lines at its unseen value.

    Examples
    --------
    >>> ax = plot_capacity(pd.read_csv("runs/digits/results.csv"))  # doctest: +SKIP
    """
    _require(results, ["model", "bottleneck", "n_params", "split", metric], "results")
    data = _ok(results)
    ae = data[data["model"] == "autoencoder"]
    _require_values(ae, metric, "results (autoencoder rows)")
    ax = _axes(ax)
    palette = _k_palette(data["bottleneck"])
    _ae_lines(_with_labels(ae), metric, palette, ax, errorbar=errorbar)
    pca = data[(data["model"] == "pca") & (data["split"] == "test")]
    for k, value in pca.groupby("bottleneck")[metric].mean().dropna().items():
        ax.axhline(value, color=palette[int(k)], ls=":", lw=1.3, gid=f"pca-k{int(k)}")
    extra = [Line2D([], [], color="0.4", ls=":", lw=1.3, label="PCA, same k (unseen)")] if len(pca) else []
    what = {"mse": "reconstruction error", "mse_clean": "error against the clean signal"}.get(metric, metric)
    return _finish(ax, extra, ylabel=METRIC_LABELS.get(metric, metric), title=f"Seen vs unseen {what} by model size")


def _run_gaps(results):
    """One row per successful run: its metadata and gap = unseen mse − seen mse."""
    _require(results, ["run", "model", "bottleneck", "n_params", "split", "mse"], "results")
    data = _ok(results)
    wide = data.pivot_table(index="run", columns="split", values="mse", aggfunc="mean")
    if not {"train", "test"} <= set(wide.columns):
        return pd.DataFrame(columns=["run", "model", "bottleneck", "n_params", "gap"])
    meta_cols = [c for c in ("run", "model", "bottleneck", "hidden", "width", "depth", "seed", "n_params")
                 if c in data.columns]
    meta = data.drop_duplicates("run")[meta_cols].set_index("run")
    gaps = meta.join((wide["test"] - wide["train"]).rename("gap"), how="inner").reset_index()
    return gaps.dropna(subset=["gap"])


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
        _require(results, ["width"], "results")
    gaps = _run_gaps(results)
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
        ax.axhline(value, color=palette[int(k)], ls=":", lw=1.3, gid=f"pca-k{int(k)}")
    extra = [Line2D([], [], color="0.4", ls=":", lw=1.3, label="PCA, same k")] if len(pca) else []
    return _finish(ax, extra, ylabel=METRIC_LABELS["gap"], title="Generalization gap by model size")


def plot_memorization(results, *, errorbar="sd", ax=None):
    """Noise memorization on seen and unseen samples against model size, with the k/d line of a fixed projection.

    Parameters
    ----------
    results : DataFrame
        ``results.csv``: columns model, bottleneck, n_params, n_features, split, noise_memorization.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Autoencoder lines (dashed = seen, solid = unseen); dash-dotted k/d reference per bottleneck (what any
        fixed rank-k projection reproduces); PCA's values as diamonds; 1 = the identity map.
    """
    _require(results, ["model", "bottleneck", "n_params", "n_features", "split", "noise_memorization"], "results")
    data = _ok(results)
    ae = data[data["model"] == "autoencoder"]
    _require_values(ae, "noise_memorization", "results (autoencoder rows)", " (was noise injected?)")
    ax = _axes(ax)
    palette = _k_palette(data["bottleneck"])
    _ae_lines(_with_labels(ae), "noise_memorization", palette, ax, errorbar=errorbar)
    d = data.groupby("bottleneck")["n_features"].first()
    for k, n_features in d.items():
        ax.axhline(int(k) / n_features, color=palette[int(k)], ls="-.", lw=1.0, alpha=0.8, gid=f"k/d-k{int(k)}")
    ax.axhline(1.0, color="0.3", lw=0.8, gid="identity")
    pca = data[(data["model"] == "pca")].dropna(subset=["noise_memorization"])
    if len(pca):
        ax.scatter(pca["n_params"], pca["noise_memorization"], marker="D", s=28, edgecolors="black",
                   linewidths=0.6, c=[palette[int(k)] for k in pca["bottleneck"]], zorder=3, gid="pca")
    extra = [Line2D([], [], color="0.4", ls="-.", label="k/d: fixed rank-k projection"),
             Line2D([], [], color="0.3", lw=0.8, label="1: identity (copies noise)")]
    if len(pca):
        extra.append(Line2D([], [], color="0.6", marker="D", ls="", markeredgecolor="black", label="PCA, same k"))
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
    _require(results, ["model", "bottleneck", "n_params", "split", "membership_auc"], "results")
    data = _ok(results)
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
    """Training (dashed) and validation (solid) loss per epoch for a few runs, log y.

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
    _require(history, ["run", "epoch", "train_loss", "val_loss"], "history")
    runs = _default_runs(history) if runs is None else list(runs)
    unknown = sorted(set(runs) - set(history["run"]))
    if unknown:
        raise ValueError(f"runs not in history: {', '.join(map(str, unknown))}")
    if not runs:
        raise ValueError("history has no runs to draw")
    data = history[history["run"].isin(runs)]
    long = data.melt(id_vars=["run", "epoch"], value_vars=["train_loss", "val_loss"], var_name="curve",
                     value_name="loss")
    long["curve"] = long["curve"].map({"train_loss": "train (seen)", "val_loss": "validation (unseen)"})
    long = long.dropna(subset=["loss"])
    ax = _axes(ax)
    sns.lineplot(data=long, x="epoch", y="loss", hue="run", hue_order=runs, style="curve",
                 style_order=["train (seen)", "validation (unseen)"],
                 dashes={"train (seen)": (3, 2), "validation (unseen)": ""}, errorbar=None,
                 palette=sns.color_palette("viridis", len(runs)) if len(runs) > 1 else None, ax=ax)
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    return _finish(ax, ylabel="loss: reconstruction MSE per feature (log scale)", xlabel="epoch", logx=False,
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
    data = data.assign(**{_SPLIT: data["split"].map(_SPLIT_LABELS)})
    colors = {SEEN: sns.color_palette()[0], UNSEEN: sns.color_palette()[3]}
    sns.histplot(data=data, x="error", hue=_SPLIT, hue_order=[SEEN, UNSEEN], palette=colors, log_scale=True,
                 element="step", stat="density", common_norm=False, bins=30, ax=ax)
    for label, part in data.groupby(_SPLIT):
        ax.axvline(part["error"].mean(), color=colors[label], ls="--", lw=1.0)
    _plain_log_ticks(ax.xaxis)
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
        Dashed vertical lines mark each split's mean error.
    """
    _require(samples, ["run", "model", "bottleneck", "split", "error"], "samples")
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
    clean = np.asarray(clean, dtype=float)
    if clean.ndim != 2:
        raise ValueError(f"clean must be a 2-D array of shape (n_samples, n_features), got shape {clean.shape}")
    image_shape = tuple(int(s) for s in np.ravel(image_shape))
    if len(image_shape) != 2 or int(np.prod(image_shape)) != clean.shape[1]:
        raise ValueError(f"clean has {clean.shape[1]} features but image_shape {image_shape} holds "
                         f"{int(np.prod(image_shape))} pixels")
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rows = [("clean", clean)]
    if noisy is not None:
        rows.append(("noisy input", _as_images("noisy", noisy, clean.shape)))
    rows += [(str(name), _as_images(f"reconstructions[{name!r}]", arr, clean.shape))
             for name, arr in reconstructions.items()]
    n = min(n, clean.shape[0])
    vmin, vmax = float(clean.min()), float(clean.max())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.2, 1.15 * len(rows) + 0.4), squeeze=False)
    for r, (label, arr) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(arr[c].reshape(image_shape), cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and titles is not None and c < len(titles):
                ax.set_title(str(titles[c]), fontsize="small")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")
    fig.suptitle("Unseen (test) samples and their reconstructions")
    return fig


def plot_latent(embedding, *, run=None, ax=None):
    """2-D embedding of latent codes: colour = label, dots = seen (train), crosses = unseen (test).

    Parameters
    ----------
    embedding : DataFrame
        ``embeddings.csv``: columns x, y, split (and label, run). With several runs, ``run`` picks one
        (default: the first autoencoder run).
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    _require(embedding, ["x", "y", "split"], "embedding")
    data = embedding
    if "run" in data.columns and data["run"].nunique() > 1 or run is not None:
        _require(data, ["run"], "embedding")
        if run is None:
            ae = data[data["model"] == "autoencoder"] if "model" in data.columns else data
            run = (ae if len(ae) else data)["run"].iloc[0]
        data = data[data["run"] == run]
        if data.empty:
            raise ValueError(f"run {run!r} is not in embedding")
    elif "run" in data.columns and len(data):
        run = data["run"].iloc[0]
    data = data[data["split"].isin(["train", "test"])]
    data = data.assign(**{_SPLIT: data["split"].map(_SPLIT_LABELS)})
    hue, palette, order = None, None, None
    if "label" in data.columns and data["label"].notna().any():
        labels = data["label"]
        numeric = pd.api.types.is_numeric_dtype(labels)
        data = data.assign(label=labels.map(lambda v: "?" if pd.isna(v) else str(int(v)) if numeric else str(v)))
        order = sorted(data["label"].unique(), key=lambda s: (len(s), s))
        hue, palette = "label", sns.color_palette("tab10" if len(order) <= 10 else "husl", len(order))
    ax = _axes(ax)
    sns.scatterplot(data=data, x="x", y="y", hue=hue, hue_order=order, palette=palette, style=_SPLIT,
                    style_order=[SEEN, UNSEEN], markers={SEEN: "o", UNSEEN: "X"}, s=16, alpha=0.75,
                    linewidth=0, ax=ax)
    title = "2-D embedding of the latent codes" + (f" ({run})" if run is not None else "")
    return _finish(ax, xlabel="embedding dimension 1 (arbitrary units)",
                   ylabel="embedding dimension 2 (arbitrary units)", logx=False, title=title)


def plot_memorization_scores(memorization, *, ax=None):
    """Distributions of per-sample memorization scores (error when unseen − error when seen), one per model.

    Parameters
    ----------
    memorization : DataFrame
        ``memorization.csv``: columns model, score.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
    """
    _require(memorization, ["model", "score"], "memorization")
    data = memorization.dropna(subset=["score"])
    if data.empty:
        raise ValueError("memorization has no score values")
    ax = _axes(ax)
    sns.histplot(data=data, x="score", hue="model", element="step", stat="density", common_norm=False,
                 bins=40, ax=ax)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("memorization score: error unseen − error seen (MSE per feature)")
    ax.set_ylabel("density")
    ax.set_title("Per-sample memorization (cross-fitted)")
    return ax
