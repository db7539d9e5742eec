"""What every plot shares: the look of seen and unseen, metric labels, the bottleneck palette, log axes, legends.

One visual grammar: seen samples are drawn dashed with circles (blue where colour is free), unseen ones solid
with crosses (orange), in every figure; PCA is dotted. Legends and the report's captions are both built from
:data:`LOOKS` (:func:`split_handle`, :func:`split_key`), so they cannot disagree.
"""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import PatchCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

SEEN, UNSEEN, VALIDATION = "seen (train)", "unseen (test)", "unseen (validation)"
SPLIT_LABELS = {"train": SEEN, "test": UNSEEN, "val": VALIDATION}
LOOKS = {  # seaborn's dashes spec and matplotlib's linestyle of the same line
    "seen": {"dashes": (3, 2), "linestyle": "--", "marker": "o", "color": "tab:blue"},
    "unseen": {"dashes": "", "linestyle": "-", "marker": "X", "color": "tab:orange"},
}
PCA_LINESTYLE = ":"
PAIR_MARKER = "^"  # lines of a measure of the pair (gap, membership): neither split's marker
WORDS = {"--": "dashed", "-": "solid", ":": "dotted", "-.": "dash-dotted", "o": "circles", "X": "crosses",
         "D": "diamonds", "^": "triangles", "*": "stars", "tab:blue": "blue", "tab:orange": "orange"}
K = "bottleneck k"  # hue column name: seaborn shows it as the legend's title
SPLIT = "split"
PARAMS_LABEL = "parameters (log scale)"
METRIC_LABELS = {
    "mse": "reconstruction MSE (per feature, vs. model input)",
    "mse_clean": "reconstruction MSE vs. clean signal (per feature)",
    "noise_memorization": "noise memorization (0 = removes noise, 1 = copies it)",
    "membership_auc": "membership AUC (0.5 = no leakage)",
    "gap": "generalization gap: unseen − seen MSE (per feature)",
    "ratio": "unseen / seen MSE (ratio)",
    "tpr_at_1pct_fpr": "true-positive rate at 1% false positives",
}


def look(label):
    """The look (dashes, linestyle, marker, color) of a split label: seen, or unseen (test or validation)."""
    return LOOKS["seen" if str(label).startswith("seen") else "unseen"]


def look_words(linestyle=None, marker=None, color=None):
    """``"dashed, circles"``: the words a caption uses for a line style, a marker and a colour (those given)."""
    return ", ".join(WORDS.get(v, str(v)) for v in (color, linestyle, marker) if v not in (None, "", "None"))


def split_key(labels=(SEEN, UNSEEN), *, line=True, marker=True, color=False):
    """The caption's key to the splits, ``"seen (train): dashed, circles; unseen (test): solid, crosses"``.

    Built from :data:`LOOKS`, as the legends are (:func:`split_handle`, :func:`split_style`); ``line``, ``marker``
    and ``color`` say which of them the figure uses.
    """
    return "; ".join(f"{label}: " + look_words(look(label)["linestyle"] if line else None,
                                               look(label)["marker"] if marker else None,
                                               look(label)["color"] if color else None) for label in labels)


def split_handle(label, *, line=True, marker=True, color=False, **kw):
    """A legend handle drawn with the split's look (grey unless ``color``)."""
    style = look(label)
    return Line2D([], [], color=style["color"] if color else "0.35", linestyle=style["linestyle"] if line else "",
                  marker=style["marker"] if marker else "", label=label, **kw)


def split_style(labels=(SEEN, UNSEEN), column=None, *, markers=True):
    """Keyword arguments of a seaborn ``lineplot`` whose ``style`` (``column``, default the split) is the split."""
    labels = list(labels)
    out = dict(style=column or SPLIT, style_order=labels, dashes={s: look(s)["dashes"] for s in labels})
    out["markers"] = {s: look(s)["marker"] for s in labels} if markers else False
    return out


def split_colors(labels=(SEEN, UNSEEN)):
    """Colour per split label, for figures whose hue is the split."""
    return {s: look(s)["color"] for s in labels}


def axes(ax):
    return plt.gca() if ax is None else ax


def k_label(k):
    return f"k={int(k)}"


def k_palette(bottlenecks):
    """One colour per bottleneck, dark to light (viridis without its hard-to-see yellow end)."""
    ks = sorted({int(k) for k in pd.Series(bottlenecks).dropna()})
    cmap = sns.color_palette("viridis", as_cmap=True)
    positions = np.linspace(0.0, 0.85, len(ks)) if len(ks) > 1 else [0.35]
    return {k: cmap(p) for k, p in zip(ks, positions)}


def with_labels(frame):
    out = frame.assign(**{K: frame["bottleneck"].map(k_label)})
    if "split" in out.columns:
        out[SPLIT] = out["split"].map(SPLIT_LABELS).fillna(out["split"])
    return out


def ae_lines(ae, y, palette, ax, *, style=True, errorbar="sd"):
    """Autoencoder lines against parameter count: colour = bottleneck, style = split, band = spread over seeds."""
    kw = split_style() if style else dict(marker=PAIR_MARKER)  # a pair metric is neither seen nor unseen
    sns.lineplot(data=ae, x="n_params", y=y, hue=K, hue_order=[k_label(k) for k in palette],
                 palette={k_label(k): c for k, c in palette.items()}, errorbar=errorbar, seed=0,
                 markersize=5, ax=ax, **kw)


def plain_log_ticks(axis):
    """Label a log axis with plain numbers (2,000, 0.05) at 1-2-5 steps when it spans few decades."""
    low, high = sorted(abs(v) for v in axis.get_view_interval())
    decades = np.log10(high / low) if low > 0 else np.inf
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.2g}"))
    axis.set_minor_formatter(NullFormatter())


def finish(ax, extra_handles=(), *, title=None, xlabel=PARAMS_LABEL, ylabel=None, logx=True):
    if logx:
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
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


def images_and_shape(X, name, image_shape):
    """``X`` as a float (n_samples, n_features) array and ``image_shape`` as (height, width) holding its features."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}")
    image_shape = tuple(int(s) for s in np.ravel(image_shape))
    if len(image_shape) != 2 or int(np.prod(image_shape)) != X.shape[1]:
        raise ValueError(f"{name} has {X.shape[1]} features but image_shape {image_shape} holds "
                         f"{int(np.prod(image_shape))} pixels")
    return X, image_shape


def image_grid(ax, images, image_shape, *, vmin, vmax, gap=0.2):
    """Draw a grid of images on one axes as one mosaic, each image framed as if it had an axes of its own.

    A grid of small axes costs tens of milliseconds per image to lay out and draw; one image and one collection of
    frames cost the same for any number of images.

    Parameters
    ----------
    ax : Axes
    images : sequence of sequences of ndarray of shape (n_features,) or None
        Rows of images (``height * width`` features each), top row first; None leaves a cell empty.
    image_shape : tuple of int
        (height, width).
    vmin, vmax : float
        The grey scale's ends (gray_r: ``vmax`` is black).
    gap : float or (float, float)
        Space between neighbouring images, as a share of an image's height (between rows) and width (between
        columns); a pair gives the two apart.

    Returns
    -------
    columns, rows : list of float
        The centres of the columns and of the rows in data coordinates (for tick labels and titles); the top edge
        of row ``r`` is ``rows[r] - height / 2``.
    """
    height, width = image_shape
    gap_rows, gap_columns = np.broadcast_to(gap, 2)
    dy, dx = height + max(1, round(gap_rows * height)), width + max(1, round(gap_columns * width))
    n_rows, n_columns = len(images), max(len(row) for row in images)
    mosaic = np.full((n_rows * dy - dy + height, n_columns * dx - dx + width), np.nan)
    frames = []
    for r, row in enumerate(images):
        for c, image in enumerate(row):
            if image is not None:
                mosaic[r * dy:r * dy + height, c * dx:c * dx + width] = np.reshape(image, image_shape)
                frames.append(Rectangle((c * dx - 0.5, r * dy - 0.5), width, height))
    ax.imshow(mosaic, cmap=plt.get_cmap("gray_r").with_extremes(bad="none"), vmin=vmin, vmax=vmax,
              interpolation="nearest", gid="mosaic")
    ax.add_collection(PatchCollection(frames, facecolor="none", edgecolor=mpl.rcParams["axes.edgecolor"],
                                      linewidth=mpl.rcParams["axes.linewidth"], clip_on=False, gid="frames"),
                      autolim=False)  # unclipped: the outer frames lie on the axes edge, as spines do
    ax.set(xticks=[], yticks=[])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return [c * dx + (width - 1) / 2 for c in range(n_columns)], [r * dy + (height - 1) / 2 for r in range(n_rows)]


def single(draw, figsize=(8.0, 4.6)):
    """A figure maker: ``make()`` draws ``draw(ax)`` on one new axes of ``figsize`` and returns the figure."""
    def make():
        fig, ax = plt.subplots(figsize=figsize)
        draw(ax)
        return fig
    return make
