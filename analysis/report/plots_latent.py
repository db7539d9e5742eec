"""Drawing ``latent.csv`` and ``paths.npz``: code similarity against capacity, latent membership beside the
reconstruction's, intrinsic dimension against the bottleneck, and decoded straight lines in the code."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from autoenc.validation import check_columns

from ._plotstyle import K, axes, finish, images_and_shape, k_label, k_palette, with_labels

__all__ = ["plot_code_dimension", "plot_code_membership", "plot_code_similarity", "plot_decoded_paths"]

SIMILARITY_NAMES = {"cka": "linear CKA", "cca": "mean squared canonical correlation"}
COMPARISONS = {"pca": "to PCA's scores, same k", "seeds": "across seeds"}
ATTACKS = {"latent_auc": "distance to the nearest training code", "membership_auc": "reconstruction error"}
NULL_COLOR, PCA_MARKER = "0.85", "D"


def _autoencoders(latent, columns, name="latent"):
    check_columns(latent, ["model", "bottleneck", "n_params", *columns], name)
    ae = latent[latent["model"] == "autoencoder"]
    if ae.empty or ae[columns].isna().all().all():
        raise ValueError(f"{name} has no autoencoder rows with {', '.join(columns)}")
    return with_labels(ae), k_palette(latent["bottleneck"])


def _hue(palette):
    return dict(hue=K, hue_order=[k_label(k) for k in palette], palette={k_label(k): c for k, c in palette.items()})


def plot_code_similarity(latent, *, measure="cka", ax=None):
    """How alike the codes are to PCA's scores and across seeds, against model size; the null level shaded.

    Parameters
    ----------
    latent : DataFrame
        ``latent.csv``: model, bottleneck, n_params and ``<measure>_pca``, ``<measure>_seeds``, ``<measure>_null``.
    measure : {"cka", "cca"}, default "cka"
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Lines: mean over seeds (band: sd), colour = bottleneck, solid = to PCA, dashed = across seeds; grey band up
        to the largest null level; black dashed at 1.
    """
    if measure not in SIMILARITY_NAMES:
        raise ValueError(f"measure must be one of {list(SIMILARITY_NAMES)}, got {measure!r}")
    columns = [f"{measure}_{c}" for c in (*COMPARISONS, "null")]
    ae, palette = _autoencoders(latent, columns)
    long = ae.melt(id_vars=["n_params", K], value_vars=columns[:2], var_name="comparison", value_name="similarity")
    long["comparison"] = long["comparison"].map({f"{measure}_{c}": w for c, w in COMPARISONS.items()})
    ax = axes(ax)
    null = float(ae[columns[2]].max())
    if np.isfinite(null):
        ax.axhspan(0, null, color=NULL_COLOR, zorder=0, gid="null")
    ax.axhline(1.0, color="black", ls="--", lw=0.9, gid="same")
    sns.lineplot(data=long.dropna(subset=["similarity"]), x="n_params", y="similarity", style="comparison",
                 style_order=list(COMPARISONS.values()), dashes={COMPARISONS["pca"]: "", COMPARISONS["seeds"]: (3, 2)},
                 markers={COMPARISONS["pca"]: "o", COMPARISONS["seeds"]: "s"}, markersize=5, errorbar="sd", seed=0,
                 ax=ax, **_hue(palette))
    extra = [Line2D([], [], color="black", ls="--", lw=0.9, label="1: the same code" +
                    (" up to a rotation" if measure == "cka" else " up to a linear map")),
             Patch(color=NULL_COLOR, label=f"unrelated codes (null, up to {null:.2g})")]
    ax.set_ylim(-0.02, 1.05)
    return finish(ax, extra, ylabel=f"{SIMILARITY_NAMES[measure]} (unseen samples)",
                  title=f"Codes against PCA and across seeds: {SIMILARITY_NAMES[measure]}")


def plot_code_membership(latent, *, ax=None):
    """Membership AUC from the code (distance to the nearest training code) beside the reconstruction error's.

    Parameters
    ----------
    latent : DataFrame
        ``latent.csv``: model, bottleneck, n_params, latent_auc, latent_auc_low, latent_auc_high, membership_auc.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Lines: means over seeds, solid = the code, dashed = the reconstruction error; vertical bars: each run's
        interval of the latent AUC; PCA as diamonds; 0.5 (chance) black dashed.
    """
    ae, palette = _autoencoders(latent, ["latent_auc", "latent_auc_low", "latent_auc_high", "membership_auc"])
    long = ae.melt(id_vars=["n_params", K], value_vars=list(ATTACKS), var_name="attack", value_name="auc")
    long["attack"] = long["attack"].map(ATTACKS)
    ax = axes(ax)
    ax.axhline(0.5, color="black", ls="--", lw=0.9, gid="chance")
    for k, color in palette.items():
        mine = ae[ae["bottleneck"] == k].dropna(subset=["latent_auc"])
        ax.vlines(mine["n_params"], mine["latent_auc_low"], mine["latent_auc_high"], color=color, alpha=0.45, lw=1.2)
    sns.lineplot(data=long.dropna(subset=["auc"]), x="n_params", y="auc", style="attack",
                 style_order=list(ATTACKS.values()), dashes={ATTACKS["latent_auc"]: "", ATTACKS["membership_auc"]: (3, 2)},
                 markers={ATTACKS["latent_auc"]: "o", ATTACKS["membership_auc"]: "^"}, markersize=5, errorbar=None,
                 ax=ax, **_hue(palette))
    pca = latent[latent["model"] == "pca"].dropna(subset=["latent_auc"])
    extra = [Line2D([], [], color="black", ls="--", lw=0.9, label="chance (0.5): no leakage"),
             Line2D([], [], color="0.5", lw=1.2, alpha=0.6, label="95% interval of each run (code)")]
    if len(pca):
        ax.scatter(pca["n_params"], pca["latent_auc"], marker=PCA_MARKER, s=28, edgecolors="black", linewidths=0.6,
                   c=[palette[int(k)] for k in pca["bottleneck"]], zorder=3, gid="pca")
        extra.append(Line2D([], [], color="0.6", marker=PCA_MARKER, ls="", markeredgecolor="black",
                            label="PCA's scores, same k"))
    return finish(ax, extra, ylabel="membership AUC (0.5 = no leakage)",
                  title="Does the code itself give membership away?")


def plot_code_dimension(latent, *, ax=None):
    """Intrinsic dimension (TwoNN) of each model's unseen codes against its bottleneck, with the data's own.

    Parameters
    ----------
    latent : DataFrame
        ``latent.csv``: model, bottleneck, hidden, intrinsic_dim, and data_intrinsic_dim, data_signal.
    ax : matplotlib Axes, optional

    Returns
    -------
    Axes
        Autoencoders: colour = hidden width (mean over seeds, band: sd); PCA: black diamonds; dotted: the bottleneck
        itself (a code can use no more); dash-dotted: the data's intrinsic dimension.
    """
    check_columns(latent, ["model", "bottleneck", "hidden", "intrinsic_dim"], "latent")
    ae = latent[latent["model"] == "autoencoder"].dropna(subset=["intrinsic_dim"])
    if ae.empty:
        raise ValueError("latent has no autoencoder rows with intrinsic_dim")
    width = "hidden width"  # the legend's title
    ae = ae.assign(**{width: ae["hidden"].map(lambda h: "?" if pd.isna(h) else str(h).removesuffix(".0"))})
    ax = axes(ax)
    order = sorted(ae[width].unique(), key=lambda h: (len(h), h))
    sns.lineplot(data=ae, x="bottleneck", y="intrinsic_dim", hue=width, hue_order=order, marker="o",
                 palette=sns.color_palette("rocket_r", len(order) + 1)[1:], errorbar="sd", seed=0, ax=ax)
    ks = np.sort(latent["bottleneck"].unique())
    ax.plot(ks, ks, color="black", ls=":", lw=1, gid="bottleneck")
    extra = [Line2D([], [], color="black", ls=":", lw=1, label="the bottleneck k")]
    pca = latent[latent["model"] == "pca"].dropna(subset=["intrinsic_dim"])
    if len(pca):
        ax.scatter(pca["bottleneck"], pca["intrinsic_dim"], marker=PCA_MARKER, s=30, color="0.3", edgecolors="black",
                   zorder=3, gid="pca")
        extra.append(Line2D([], [], color="0.3", marker=PCA_MARKER, ls="", label="PCA's scores"))
    if "data_intrinsic_dim" in latent.columns and latent["data_intrinsic_dim"].notna().any():
        level = float(latent["data_intrinsic_dim"].dropna().iloc[0])
        signal = str(latent["data_signal"].dropna().iloc[0]) if "data_signal" in latent.columns else "inputs"
        ax.axhline(level, color="tab:green", ls="-.", lw=1.2, gid="data")
        extra.append(Line2D([], [], color="tab:green", ls="-.", lw=1.2,
                            label=f"the data ({'clean signal' if signal == 'clean' else 'inputs'}): {level:.1f}"))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.minorticks_off()
    return finish(ax, extra, xlabel="bottleneck k (log scale)", ylabel="intrinsic dimension of the codes (TwoNN)",
                  logx=False, title="How many dimensions do the codes use?")


def plot_decoded_paths(paths, image_shape, *, ends=None):
    """Decoded straight lines in each model's code between pairs of unseen samples, one row per pair and model.

    Parameters
    ----------
    paths : dict of str to ndarray of shape (n_pairs, n_steps, n_features)
        Row label -> the decoded points along each line, in the dict's order.
    image_shape : tuple of int
        (height, width) of one sample; (1, n_features) for data that are not images (then each row is a heatmap
        of steps x features).
    ends : ndarray of shape (n_pairs, 2, n_features), optional
        The two clean samples of each pair, drawn at both ends of the pair's first row's neighbours.

    Returns
    -------
    Figure
    """
    if not paths:
        raise ValueError("paths must hold at least one model's decoded lines")
    arrays = {str(k): np.asarray(v, dtype=float) for k, v in paths.items()}
    n_pairs, n_steps, d = next(iter(arrays.values())).shape
    if any(v.shape != (n_pairs, n_steps, d) for v in arrays.values()):
        raise ValueError(f"every model's paths must have shape ({n_pairs}, {n_steps}, {d})")
    _, image_shape = images_and_shape(np.zeros((1, d)), "paths", image_shape)
    if ends is not None:
        ends = np.asarray(ends, dtype=float)
        if ends.shape != (n_pairs, 2, d):
            raise ValueError(f"ends must have shape ({n_pairs}, 2, {d}), got {ends.shape}")
    # The clean samples' range when given (as the reconstructions figure draws them), else the decoded points'.
    vmin, vmax = (ends.min(), ends.max()) if ends is not None else \
        np.quantile(np.concatenate([v.ravel() for v in arrays.values()]), [0.01, 0.99])
    if image_shape[0] == 1:  # not images: one heatmap (steps x features) per pair and model
        fig, grid = plt.subplots(n_pairs, len(arrays), figsize=(3.2 * len(arrays), 1.6 * n_pairs), squeeze=False)
        for p in range(n_pairs):
            for m, (label, v) in enumerate(arrays.items()):
                grid[p, m].imshow(v[p], aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
                grid[p, m].set(xticks=[], yticks=[], title=label if p == 0 else "",
                               ylabel=f"pair {p + 1}: steps" if m == 0 else "")
        fig.suptitle("Decoded straight lines in the code between unseen samples (rows: steps, columns: features)")
        return fig
    # One mosaic on one axes (a grid of subplots per image takes seconds to draw): a blank pixel between tiles.
    rows = [(p, label) for p in range(n_pairs) for label in arrays]
    columns = n_steps + (2 if ends is not None else 0)
    h, w = image_shape
    mosaic = np.full((len(rows) * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for r, (p, label) in enumerate(rows):
        images = list(arrays[label][p])
        if ends is not None:
            images = [ends[p][0], *images, ends[p][1]]
        for c, image in enumerate(images):
            mosaic[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = np.reshape(image, image_shape)
    fig, ax = plt.subplots(figsize=(0.8 * columns * w / 8 + 2.4, 0.8 * len(rows) * h / 8 + 0.9))
    cmap = plt.get_cmap("gray_r").with_extremes(bad="0.8")
    ax.imshow(mosaic, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", gid="mosaic")
    ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(rows))],
                  [f"pair {p + 1}: {label}" for p, label in rows], fontsize="x-small")
    steps = [f"{a:.2g}" for a in np.linspace(0, 1, n_steps)]
    ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(columns)],
                  ["start", *steps, "end"] if ends is not None else steps, fontsize="x-small")
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle("Decoded straight lines in the code between unseen samples")
    return fig
