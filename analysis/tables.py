"""Tables and summaries of a study's results: pandas only, no drawing (the plots and the report use these)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from autoenc.validation import check_columns

__all__ = ["ok_rows", "run_gaps", "summarize_runs", "summary_table"]

SUMMARY_COLUMNS = ["model", "bottleneck", "hidden", "n_params", "n_seeds", "test_mse", "test_mse_sd", "gap",
                   "k_over_d", "nm_seen", "nm_unseen", "membership_auc"]

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


def summary_table(results):
    """Key numbers per model x bottleneck x hidden layers, means over the successful seeds.

    Parameters
    ----------
    results : DataFrame
        ``results.csv``.

    Returns
    -------
    DataFrame
        Columns model, bottleneck, hidden, n_params, n_seeds, test_mse, test_mse_sd, gap, k_over_d (when
        results has n_features), nm_seen, nm_unseen, membership_auc; one row per architecture, PCA first
        within each bottleneck.
    """
    check_columns(results, ["run", "model", "bottleneck", "n_params", "split", "mse"], "results")
    data = ok_rows(results).copy()
    data["hidden"] = data["hidden"].fillna("").astype(str) if "hidden" in data.columns else ""
    for col in ("noise_memorization", "membership_auc"):
        if col not in data.columns:
            data[col] = np.nan
    keys = ["model", "bottleneck", "hidden"]
    test, train = data[data["split"] == "test"], data[data["split"] == "train"]
    gaps = run_gaps(data).assign(hidden=lambda g: g["hidden"].fillna("").astype(str)
                                        if "hidden" in g.columns else "")
    table = test.groupby(keys).agg(n_params=("n_params", "mean"), n_seeds=("run", "nunique"),
                                   test_mse=("mse", "mean"), test_mse_sd=("mse", "std"),
                                   nm_unseen=("noise_memorization", "mean"),
                                   membership_auc=("membership_auc", "mean"))
    table = table.join(train.groupby(keys)["noise_memorization"].mean().rename("nm_seen"))
    table = table.join(gaps.groupby(keys)["gap"].mean())
    table = table.reset_index()
    table["n_params"] = table["n_params"].round().astype(int)
    if "n_features" in data.columns:  # what a fixed rank-k projection reproduces of the noise
        d = table["bottleneck"].map(data.groupby("bottleneck")["n_features"].first())
        table["k_over_d"] = table["bottleneck"] / d
    table["_order"] = (table["model"] != "pca").astype(int)
    table = table.sort_values(["bottleneck", "_order", "n_params"]).drop(columns="_order")
    table["bottleneck"] = table["bottleneck"].astype(int)
    columns = [c for c in SUMMARY_COLUMNS if c in table.columns]
    return table[columns].reset_index(drop=True)
