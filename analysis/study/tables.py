"""Tables and summaries of a study's results: pandas only, no drawing (the plots and the report use these)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from autoenc.validation import check_columns

from ..measures.intervals import seed_interval
from .runspec import format_hidden

__all__ = ["INTERVAL_METHOD", "ok_rows", "per_run", "run_gaps", "summarize_runs", "summary_table"]

INTERVAL_METHOD = ("95% intervals over seeds: Student t on the log scale for errors, on the logit scale for "
                   "membership AUC and noise memorization (leaving [0, 1] only on a side where a seed's value does), "
                   "on Fisher's arctanh scale for seen minus unseen noise memorization and on the raw scale for "
                   "other differences, both paired by seed; a single run shows its own DeLong interval of the AUC")

CONFIG_COLUMNS = ["model", "bottleneck", "hidden", "depth", "width", "n_params"]


def ok_rows(results, splits=("train", "test")):
    """Rows of runs that trained successfully, on the given splits only (seen and unseen by default)."""
    out = results
    if "status" in out.columns:
        out = out[out["status"].fillna("ok") == "ok"]
    if "split" in out.columns and splits is not None:
        out = out[out["split"].isin(list(splits))]
    return out


def run_gaps(results):
    """One row per successful run: its metadata and gap = unseen mse − seen mse."""
    check_columns(results, ["run", "model", "bottleneck", "n_params", "split", "mse"], "results")
    data = ok_rows(results)
    wide = data.pivot_table(index="run", columns="split", values="mse", aggfunc="mean")
    if not {"train", "test"} <= set(wide.columns):
        return pd.DataFrame(columns=["run", "model", "bottleneck", "n_params", "gap"])
    meta_cols = [c for c in ("run", "model", "bottleneck", "hidden", "width", "depth", "seed", "n_params")
                 if c in data.columns]
    meta = data.drop_duplicates("run")[meta_cols].set_index("run")
    gaps = meta.join((wide["test"] - wide["train"]).rename("gap"), how="inner").reset_index()
    return gaps.dropna(subset=["gap"])


def summarize_runs(results, *, split="val", metric="mse"):
    """Mean and spread of ``metric`` over seeds, one row per model configuration, on one ``split``.

    Parameters
    ----------
    results : DataFrame
        Rows like ``results.csv`` (one per model x split); rows whose ``status`` is not ``"ok"`` are ignored.
    split : str
        Which split's error to summarize (``"val"``, ``"test"`` or ``"train"``).
    metric : str
        Column to summarize, e.g. ``"mse"`` or ``"mse_clean"``.

    Returns
    -------
    DataFrame
        Columns ``model, bottleneck, hidden, depth, width, n_params, <metric>, <metric>_std, n_seeds``,
        sorted by ``n_params``.
    """
    check_columns(results, [*CONFIG_COLUMNS, "split", metric], "results")
    rows = results[results["split"] == split]
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    rows = rows[np.isfinite(rows[metric].astype(float))]
    if rows.empty:
        have = sorted(results["split"].dropna().unique())
        raise ValueError(f"results has no finished rows for split={split!r} (splits present: {have})")
    grouped = rows.groupby(CONFIG_COLUMNS, dropna=False, sort=False)[metric]
    out = grouped.agg(["mean", "std", "size"]).reset_index()
    out.columns = [*CONFIG_COLUMNS, metric, f"{metric}_std", "n_seeds"]
    out[f"{metric}_std"] = out[f"{metric}_std"].fillna(0.0)
    return out.sort_values(["n_params", metric]).reset_index(drop=True)


HEADLINE = {  # summary column -> (split, results column) averaged over seeds
    "test_mse": ("test", "mse"),
    "test_mse_clean": ("test", "mse_clean"),
    "nm_seen": ("train", "noise_memorization"),
    "nm_unseen": ("test", "noise_memorization"),
    "membership_auc": ("test", "membership_auc"),
}


def per_run(results):
    """One row per successful run: its configuration, the headline numbers and its gap (unseen minus seen mse)."""
    check_columns(results, ["run", "model", "bottleneck", "n_params", "split", "mse"], "results")
    data = ok_rows(results, splits=None).copy()
    data["hidden"] = data["hidden"].map(format_hidden) if "hidden" in data.columns else ""
    keys = ["run", "model", "bottleneck", "hidden", "n_params"]
    out = data.drop_duplicates("run")[keys + [c for c in ("nm_reference", "n_features") if c in data.columns]]
    out = out.set_index("run")
    for name, (split, column) in HEADLINE.items():
        if column in data.columns:
            out[name] = data[data["split"] == split].set_index("run")[column]
    for bound in ("membership_auc_ci_low", "membership_auc_ci_high"):  # a single run's own interval (DeLong)
        if bound in data.columns:
            out[f"run_{bound}"] = data[data["split"] == "test"].set_index("run")[bound]
    if "n_samples" in data.columns:  # the AUC's trials: the smaller of its two splits
        pair = data[data["split"].isin(["train", "test"])]
        out["n_pairs"] = pair.groupby("run")["n_samples"].min()
    gaps = run_gaps(data)
    out["gap"] = gaps.set_index("run")["gap"] if len(gaps) else np.nan
    if {"nm_seen", "nm_unseen"} <= set(out.columns):
        out["mem_gap"] = out["nm_seen"] - out["nm_unseen"]
    if "test_mse_clean" in out.columns:
        seeds = data.drop_duplicates("run").set_index("run")["seed"] if "seed" in data.columns else None
        out["clean_vs_pca"] = out["test_mse_clean"] - _pca_clean(out, seeds)
    return out.reset_index()


def _pca_clean(runs, seeds):
    """PCA's unseen clean error at each run's bottleneck: of the same seed where PCA has one per seed (data seeds
    draw each seed's split), else of the one PCA run."""
    pca = runs[runs["model"] == "pca"]
    by_k = pca.groupby("bottleneck")["test_mse_clean"].mean()
    out = runs["bottleneck"].map(by_k)
    if seeds is not None and len(pca):
        seed = seeds.reindex(runs.index)
        paired = pd.Series(list(zip(pca["bottleneck"], seed.reindex(pca.index))), index=pca.index)
        lookup = dict(zip(paired, pca["test_mse_clean"]))
        same = pd.Series([lookup.get((k, s), np.nan) for k, s in zip(runs["bottleneck"], seed)], index=runs.index)
        out = same.where(same.notna(), out)
    return out


SCALE = {"test_mse": "log", "test_mse_clean": "log", "membership_auc": "logit", "nm_seen": "share",
         "nm_unseen": "share", "gap": "raw", "mem_gap": "signed",
         "clean_vs_pca": "raw"}


def _interval(values, scale, confidence, n_trials=None):
    """:func:`seed_interval` on the quantity's scale; errors of exactly 0 (an identity map) fall back to the raw
    scale, truncated at 0."""
    if scale == "log" and np.any(values <= 0):
        mean, sd, low, high = seed_interval(values, "raw", confidence)
        return mean, sd, max(low, 0.0), high  # an error of 0 (the identity map): t truncated to errors >= 0
    return seed_interval(values, scale, confidence, n_trials=n_trials if scale == "logit" else None)


def summary_table(results, confidence=0.95):
    """Key numbers per model configuration: mean, sd and a confidence interval over the successful seeds.

    Each interval is a Student-t interval over seeds on a scale that keeps it inside the quantity's range
    (:data:`INTERVAL_METHOD` says it in words): the log scale for errors, the logit scale for the membership AUC
    (the empirical logit of the smaller split's size where a seed reaches 0 or 1) and for noise memorization (the
    ``"share"`` scale of :func:`~.intervals.seed_interval`: it leaves [0, 1] only on a side where a seed's
    value does); differences are paired by seed, on the raw scale, or for seen minus unseen noise memorization on
    the ``"signed"`` (arctanh) scale while every seed's difference lies inside (-1, 1). A configuration whose
    seeds agree exactly on the AUC, or that has a single run, shows the widest of its runs' own DeLong intervals.

    Parameters
    ----------
    results : DataFrame
        ``results.csv``.
    confidence : float
        Of the intervals over seeds (none with a single seed; PCA has one run per bottleneck).

    Returns
    -------
    DataFrame
        One row per model x bottleneck x hidden widths, PCA first within each bottleneck: ``model, bottleneck,
        hidden, n_params, n_seeds, nm_reference`` (what the rank-k PCA projection keeps of the noise; k/d when
        results has no such column), then for each of ``test_mse, test_mse_clean, gap, nm_seen, nm_unseen,
        membership_auc, mem_gap`` (seen minus unseen noise memorization) and ``clean_vs_pca`` (unseen clean error
        minus PCA's at the same bottleneck): the mean and ``<name>_sd``, ``<name>_ci_low``, ``<name>_ci_high``.

    Examples
    --------
    >>> table = summary_table(pd.read_csv("runs/digits/results.csv"))  # doctest: +SKIP
    """
    runs = per_run(results)
    keys = ["model", "bottleneck", "hidden"]
    metrics = [m for m in SCALE if m in runs.columns and runs[m].notna().any()]
    rows = []
    for key, group in runs.groupby(keys, sort=False):
        row = dict(zip(keys, key), n_params=int(round(group["n_params"].mean())), n_seeds=len(group))
        if "nm_reference" in group.columns and group["nm_reference"].notna().any():
            row["nm_reference"] = float(group["nm_reference"].mean())
        elif "n_features" in group.columns:
            row["nm_reference"] = float(key[1] / group["n_features"].iloc[0])
        for m in metrics:
            kept = group[group[m].notna()]
            values = kept[m].to_numpy(dtype=float)
            trials = float(kept["n_pairs"].min()) if "n_pairs" in kept.columns else None
            trials = trials if trials is not None and np.isfinite(trials) else None
            stats = _interval(values, SCALE[m], confidence, trials) if len(values) else (np.nan,) * 4
            row.update({m: stats[0], f"{m}_sd": stats[1], f"{m}_ci_low": stats[2], f"{m}_ci_high": stats[3]})
        own = group.get("run_membership_auc_ci_low")
        if own is not None and own.notna().any() and (len(group) == 1 or row.get("membership_auc_sd") == 0):
            row["membership_auc_ci_low"] = np.nanmin([row.get("membership_auc_ci_low", np.nan), own.min()])
            row["membership_auc_ci_high"] = np.nanmax([row.get("membership_auc_ci_high", np.nan),
                                                       group["run_membership_auc_ci_high"].max()])
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_order"] = (table["model"] != "pca").astype(int)
    table = table.sort_values(["bottleneck", "_order", "n_params"]).drop(columns="_order")
    table["bottleneck"] = table["bottleneck"].astype(int)
    return table.reset_index(drop=True)
