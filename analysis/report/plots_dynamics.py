"""Seaborn plots of the frames of :mod:`analysis.measures.dynamics` and :mod:`analysis.measures.landscape`.

Curves over training, the width sweep past the interpolation threshold, loss slices and attractors. Each
function draws one tidy frame onto ``ax`` (default ``plt.gca()``) and returns the Axes; nothing is computed beyond
a minimum, a mean or a share, and nothing calls ``plt.show()``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from autoenc.validation import check_columns

from ._plotstyle import (PCA_LINESTYLE, SEEN, SPLIT, SPLIT_LABELS as _SPLITS, UNSEEN, VALIDATION, axes as _axes, look,
                         plain_log_ticks, split_colors, split_handle, split_style)

__all__ = ["plot_attractors", "plot_double_descent", "plot_loss_slice", "plot_memorization_curves"]

_COLORS = split_colors((SEEN, UNSEEN, VALIDATION))
_NM_LABEL = "noise memorization (0 = removes noise, 1 = copies it)"


def plot_memorization_curves(curves, *, minima=None, hue=None, ax=None):
    """Seen and unseen noise memorization against epoch (log scale), one colour per ``hue``, the clean minima marked.

    Parameters
    ----------
    curves : DataFrame
        From :func:`analysis.measures.dynamics.training_curves` (or ``history.csv``): ``epoch``,
        ``noise_memorization_train``, ``noise_memorization_val``, ``mse_clean_val``; runs told apart by ``run`` or
        ``member`` (else by ``hue``).
    minima : DataFrame, optional
        Each run's epoch of lowest clean validation error, as the study recorded it: ``epoch`` and the columns
        that tell runs apart in ``curves`` (``results.csv``'s ``run`` and ``best_clean_epoch``, or
        :func:`analysis.measures.dynamics.clean_minimum`). Without it no epoch is marked.
    hue : str, optional
        Colour column; default ``width`` if present, else ``member``, else one colour. Runs sharing a colour
        (seeds) are drawn as their mean with a band of one standard deviation.
    ax : Axes, optional

    Returns
    -------
    Axes
        Seen (train) dashed, unseen (validation) solid, as in every figure (``_plotstyle.LOOKS``); a star on each
        run's seen and unseen curve at its epoch in ``minima``, the lowest clean validation error (what early
        stopping on the clean signal would keep).
    """
    check_columns(curves, ["epoch", "noise_memorization_train", "noise_memorization_val", "mse_clean_val"],
                  "curves")
    ax = _axes(ax)
    if hue is None:
        hue = next((c for c in ("width", "member") if c in curves.columns), None)
    elif hue not in curves.columns:
        raise ValueError(f"hue={hue!r} is not a column of curves; it has {list(curves.columns)}")
    ids = [c for c in ("run", "member") if c in curves.columns] or ([hue] if hue else [])
    long = curves.melt(id_vars=list(dict.fromkeys([*ids, "epoch", *([hue] if hue else [])])),
                       value_vars=["noise_memorization_train", "noise_memorization_val"], var_name=SPLIT,
                       value_name="noise_memorization")
    long[SPLIT] = long[SPLIT].map({"noise_memorization_train": SEEN, "noise_memorization_val": VALIDATION})
    palette = None
    if hue:
        levels = sorted(long[hue].dropna().unique())
        long[hue] = pd.Categorical(long[hue], categories=levels)
        palette = dict(zip(levels, sns.color_palette("viridis", len(levels))))
    sns.lineplot(data=long, x="epoch", y="noise_memorization", hue=hue, palette=palette,
                 **split_style((SEEN, VALIDATION), markers=False), errorbar="sd", ax=ax)
    handles, labels = ax.get_legend_handles_labels()
    if minima is not None:
        on = [c for c in ids if c in minima.columns] + ["epoch"]
        check_columns(minima, on, "minima")
        best = curves.merge(minima[on].drop_duplicates(), on=on)
        for column in ("noise_memorization_train", "noise_memorization_val"):
            colors = [palette[v] for v in best[hue]] if hue else "black"
            ax.scatter(best["epoch"], best[column], marker="*", s=90, c=colors, edgecolors="black", linewidths=0.6,
                       zorder=5)
        handles.append(Line2D([], [], marker="*", color="none", markerfacecolor="white", markeredgecolor="black",
                              markersize=10))
        labels.append("lowest clean val error")
    ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set(xlabel="epoch (log scale)", ylabel=_NM_LABEL, title="Noise memorization over training")
    return ax


def plot_double_descent(frame, *, metric="mse", epoch=None, ax=None):
    """Train and test error against parameter count, the interpolation threshold (n_train x d) marked.

    Parameters
    ----------
    frame : DataFrame
        From :func:`analysis.measures.dynamics.double_descent`.
    metric : {"mse", "mse_clean"}, default "mse"
    epoch : int, optional
        Which recorded epoch to draw; default each run's last. PCA (``model="pca"``) is drawn as a dotted
        horizontal line per split.
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    check_columns(frame, ["model", "n_params", "split", "epoch", "interpolation_threshold", metric], "frame")
    if metric not in ("mse", "mse_clean"):
        raise ValueError(f"metric must be 'mse' or 'mse_clean', got {metric!r}")
    ax = _axes(ax)
    ae = frame[frame["model"] == "autoencoder"]
    if epoch is None:
        last = ae.groupby(["n_params", "seed", "split"])["epoch"].transform("max")
        ae = ae[ae["epoch"] == last]
    else:
        ae = ae[ae["epoch"] == epoch]
        if ae.empty:
            recorded = sorted(frame["epoch"].dropna().unique())
            raise ValueError(f"epoch={epoch} was not recorded; recorded epochs are {recorded}")
    ae = ae.assign(split=ae["split"].map(_SPLITS).fillna(ae["split"]))
    sns.lineplot(data=ae, x="n_params", y=metric, hue="split", hue_order=[SEEN, UNSEEN], palette=_COLORS,
                 **split_style((SEEN, UNSEEN), column="split"), errorbar="sd", legend=False, ax=ax)
    handles = [split_handle(s, color=True) for s in (SEEN, UNSEEN)]
    labels = [SEEN, UNSEEN]
    for _, row in frame[frame["model"] == "pca"].iterrows():
        label = _SPLITS.get(row["split"], row["split"])
        ax.axhline(row[metric], color=_COLORS.get(label, "grey"), linestyle=PCA_LINESTYLE, linewidth=1.2)
    if (frame["model"] == "pca").any():
        handles.append(Line2D([], [], color="grey", linestyle=PCA_LINESTYLE))
        labels.append("PCA (same bottleneck)")
    threshold = float(frame["interpolation_threshold"].iloc[0])
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    handles.append(Line2D([], [], color="black", linestyle="--"))
    labels.append(f"interpolation threshold n·d = {threshold:,.0f}")
    ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xscale("log")
    ax.set_yscale("log")
    what = "vs. clean signal" if metric == "mse_clean" else "vs. model input"
    ax.set(xlabel="parameters (log scale)", ylabel=f"reconstruction MSE {what} (per feature, log scale)",
           title="Error across the interpolation threshold")
    return ax


def plot_loss_slice(slice_frame, *, log=True, ax=None):
    """The loss along one direction (seen and unseen lines) or two (contours), from :func:`loss_slice`.

    Parameters
    ----------
    slice_frame : DataFrame
        ``alpha`` (and ``beta``), ``split``, ``loss``.
    log : bool, default True
        Log-scaled loss axis (1-D) or log-spaced contour levels (2-D).
    ax : Axes, optional

    Returns
    -------
    Axes
        1-D: seen and unseen loss against the step, the trained weights at 0. 2-D: seen contours dashed, unseen
        solid (as every figure draws them), on the same levels, the trained weights marked.
    """
    check_columns(slice_frame, ["alpha", "split", "loss"], "slice_frame")
    ax = _axes(ax)
    frame = slice_frame.assign(split=slice_frame["split"].map(_SPLITS).fillna(slice_frame["split"]))
    if "beta" not in frame.columns:
        present = [s for s in (SEEN, UNSEEN) if s in set(frame["split"])]
        sns.lineplot(data=frame, x="alpha", y="loss", hue="split", hue_order=present, palette=_COLORS,
                     **split_style(present, column="split", markers=False), legend=False, ax=ax)
        ax.legend(handles=[split_handle(s, color=True, marker=False) for s in present], fontsize="small")
        ax.axvline(0, color="grey", linewidth=0.8)
        if log:
            ax.set_yscale("log")
        ax.set(xlabel="step along a filter-normalized direction", ylabel="reconstruction MSE (per feature)",
               title="Loss along a random direction")
        return ax
    losses = frame["loss"].to_numpy()
    low, high = np.nanmin(losses), np.nanmax(losses)
    levels = (np.geomspace(low, high, 12) if log and low > 0 else np.linspace(low, high, 12))[1:]
    handles, labels = [], []
    for split in (SEEN, UNSEEN):
        style = look(split)["linestyle"]
        part = frame[frame["split"] == split]
        if part.empty:
            continue
        grid = part.pivot(index="beta", columns="alpha", values="loss")
        ax.contour(grid.columns.to_numpy(), grid.index.to_numpy(), grid.to_numpy(), levels=levels,
                   colors=_COLORS[split], linestyles=style, linewidths=1)
        handles.append(Line2D([], [], color=_COLORS[split], linestyle=style))
        labels.append(split)
    ax.plot([0], [0], marker="x", color="black", linestyle="none")
    handles.append(Line2D([], [], marker="x", color="black", linestyle="none"))
    labels.append("trained weights")
    ax.legend(handles, labels, fontsize="small")
    ax.set(xlabel="step along direction 1", ylabel="step along direction 2",
           title="Loss around the trained weights" + (" (log-spaced contours)" if log and low > 0 else ""))
    return ax


def plot_attractors(frame, *, x="split", ax=None):
    """Spectral radius of the reconstruction map's Jacobian per sample, attractors coloured, the radius 1 marked.

    Parameters
    ----------
    frame : DataFrame
        From :func:`analysis.measures.landscape.attractors`, optionally concatenated over splits or models with a column
        naming them (``x``).
    x : str, default "split"
        Grouping column; ignored when absent (one group).
    ax : Axes, optional

    Returns
    -------
    Axes
        One strip per group, its tick label giving the share of attractors; radius 1 (neutral) dashed and, when
        ``frame`` has a ``margin`` column, the largest radius an attractor may have, ``1 - margin``, dash-dotted.
    """
    check_columns(frame, ["spectral_radius", "attractor"], "frame")
    ax = _axes(ax)
    data = frame.assign(attractor=frame["attractor"].map({True: "attractor", False: "not an attractor"}))
    if x not in data.columns:
        data = data.assign(**{x: "samples"})
    data[x] = data[x].map(_SPLITS).fillna(data[x]) if x == "split" else data[x]
    order = list(dict.fromkeys(data[x]))
    drawn = len(ax.collections)
    sns.stripplot(data=data, x=x, y="spectral_radius", hue="attractor", order=order,
                  hue_order=["attractor", "not an attractor"], palette={"attractor": "tab:green",
                  "not an attractor": "tab:grey"}, size=3, jitter=False, ax=ax)
    rng = np.random.default_rng(0)  # seaborn's own jitter draws from numpy's global state: a new figure each time
    for points in ax.collections[drawn:]:
        offsets = np.array(points.get_offsets(), dtype=float)
        offsets[:, 0] += rng.uniform(-0.25, 0.25, len(offsets))
        points.set_offsets(offsets)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, gid="neutral")
    if "margin" in frame.columns and frame["margin"].notna().any():
        ax.axhline(1 - float(frame["margin"].max()), color="tab:green", linestyle="-.", linewidth=1, gid="bound")
    shares = frame["attractor"].astype(float).groupby(data[x].to_numpy()).mean()
    ax.set_xticks(range(len(order)), [f"{g}\n{shares[g]:.0%} attractors" for g in order])
    ax.set(xlabel="", ylabel="spectral radius of the Jacobian J_f(x)", title="Which samples attract the map")
    if ax.get_legend() is not None:  # beside the strips, never over them
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=None)
    return ax
