"""The rules that decide what the verdict may claim: one per claim, each read off the intervals of a summary row.

A claim of an effect needs its interval to exclude the null value (AUC 0.5, a memorization gap of 0, no
difference from PCA); a claim of *no more than PCA* needs the interval inside a small margin of PCA's numbers.
Where neither holds the evidence is inconclusive, and the verdict says so and what would settle it. Nothing here
measures or writes: rows of :func:`analysis.tables.summary_table` and ``history.csv`` in, decisions out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["assess", "fit_causes", "pca_comparison", "settle", "stores", "still_falling"]

STORES = 0.10         # seen minus unseen noise memorization above this: it stores its samples, not a little
LIKE_PCA = 0.02       # intervals within this of PCA's memorization gap (and twice it of its AUC): no more than PCA
BADLY = 2.0           # unseen clean error at least this many times PCA's at every bottleneck: a failed fit
STILL_FALLING = 0.05  # train loss fell by this share of its last value over the last quarter of the epochs
SCALE_RATIO = 100.0   # feature scales differing by more than this factor (as autoenc.data.scale_warning)


def _bounds(row, name):
    low, high = row.get(f"{name}_ci_low", np.nan), row.get(f"{name}_ci_high", np.nan)
    low, high = (np.nan if v is None else float(v) for v in (low, high))
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (np.nan, np.nan)


def stores(row):
    """True when both intervals exclude their null: membership AUC above 0.5, seen minus unseen noise
    memorization (``mem_gap``, paired by seed) above 0."""
    return bool(_bounds(row, "membership_auc")[0] > 0.5 and _bounds(row, "mem_gap")[0] > 0)


def like_pca(row, pca_row=None):
    """True when the intervals show no more storage than PCA's: the memorization gap's upper bound within
    ``LIKE_PCA`` of PCA's gap and the AUC's within ``2 * LIKE_PCA`` of PCA's AUC (0 and 0.5 without PCA)."""
    gap = 0.0 if pca_row is None else float(pca_row.get("mem_gap", 0.0))
    auc = 0.5 if pca_row is None else float(pca_row.get("membership_auc", 0.5))
    return bool(_bounds(row, "mem_gap")[1] <= max(gap, 0.0) + LIKE_PCA
                and _bounds(row, "membership_auc")[1] <= max(auc, 0.5) + 2 * LIKE_PCA)


def pca_comparison(row):
    """``"better"`` when the interval of the unseen clean error minus PCA's lies below 0, ``"worse"`` above 0,
    else ``"unclear"`` (no interval, or one that covers 0)."""
    low, high = _bounds(row, "clean_vs_pca")
    return "better" if high < 0 else "worse" if low > 0 else "unclear"


def settle(n_seeds):
    """What would settle an inconclusive comparison, in words."""
    return (f"more seeds (--seeds; {int(n_seeds)} now), --data-seeds (so the spread includes the sampling of the "
            "data), or more samples would settle it")


def assess(summary):
    """One decision per autoencoder family (hidden widths), narrowest first.

    Parameters
    ----------
    summary : DataFrame
        :func:`analysis.tables.summary_table`.

    Returns
    -------
    list of dict
        ``hidden``, ``status`` (``"fails"``, ``"stores"``, ``"stores_little"``, ``"like_pca"`` or
        ``"inconclusive"``), ``row`` (the bottleneck that shows it best), ``rows`` and ``pca`` (PCA's rows by
        bottleneck), ``ratios`` (unseen clean error over PCA's, for ``"fails"``).
    """
    table = summary.assign(mem_gap=summary["nm_seen"] - summary["nm_unseen"]) if "mem_gap" not in summary else summary
    pca = table[table["model"] == "pca"].set_index("bottleneck")
    ae = table[table["model"] == "autoencoder"]
    out = []
    for hidden in ae.groupby("hidden", sort=False)["n_params"].max().sort_values().index:
        rows = ae[ae["hidden"] == hidden]
        pca_of = {int(r["bottleneck"]): (pca.loc[int(r["bottleneck"])] if int(r["bottleneck"]) in pca.index else None)
                  for _, r in rows.iterrows()}
        entry = dict(hidden=hidden, rows=rows, pca=pca_of, ratios=_failed_fit(rows, pca))
        storing = rows[[stores(r) for _, r in rows.iterrows()]]
        if entry["ratios"]:
            entry.update(status="fails", row=rows.iloc[0])
        elif len(storing):
            best = storing.loc[storing["mem_gap"].idxmax()]
            entry.update(status="stores" if best["mem_gap"] > STORES else "stores_little", row=best)
        elif all(like_pca(r, pca_of[int(r["bottleneck"])]) for _, r in rows.iterrows()):
            entry.update(status="like_pca", row=rows.loc[rows["mem_gap"].idxmax()])
        else:
            entry.update(status="inconclusive", row=rows.loc[rows["mem_gap"].idxmax()])
        out.append(entry)
    return out


def _failed_fit(rows, pca):
    """(lowest, highest) ratio of unseen clean error to PCA's when every bottleneck's is at least ``BADLY`` and
    its interval of the difference lies above 0, else None."""
    if "test_mse_clean" not in rows.columns or pca.empty:
        return None
    ratios = []
    for _, row in rows.iterrows():
        k = int(row["bottleneck"])
        if k not in pca.index or not pca.loc[k, "test_mse_clean"] > 0:
            return None
        ratio = row["test_mse_clean"] / pca.loc[k, "test_mse_clean"]
        if not (ratio >= BADLY and pca_comparison(row) == "worse"):
            return None
        ratios.append(float(ratio))
    return (min(ratios), max(ratios)) if ratios else None


def still_falling(history, runs, *, threshold=STILL_FALLING):
    """Whether training stopped while the train loss was still falling, for most of ``runs``.

    Over the last quarter of the epochs (at least the last two) a run's train loss fell by more than
    ``threshold`` times its last value.

    Parameters
    ----------
    history : DataFrame
        ``history.csv``: ``run``, ``epoch``, ``train_loss``.
    runs : iterable of str
    threshold : float, default 0.05

    Returns
    -------
    (falling, drop) : (bool, float)
        ``drop``: the median relative fall over the last quarter; NaN when no run has two epochs.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
        raise ValueError(f"threshold must be a number > 0, got {threshold!r}")
    data = history[history["run"].isin(list(runs))].sort_values(["run", "epoch"])
    drops = []
    for _, curve in data.groupby("run"):
        loss = curve["train_loss"].to_numpy(dtype=float)
        if len(loss) < 2 or not np.isfinite(loss[-1]) or loss[-1] <= 0:
            continue
        back = max(1, len(loss) // 4)
        drops.append((loss[-1 - back] - loss[-1]) / loss[-1])
    if not drops:
        return False, np.nan
    drop = float(np.median(drops))
    return bool(drop > threshold), drop


def fit_causes(history=None, runs=(), scale_ratio=None):
    """The causes of a failed fit that the evidence points to, each as (cause, remedy) in words.

    Parameters
    ----------
    history : DataFrame, optional
        ``history.csv``.
    runs : iterable of str
        The family's runs.
    scale_ratio : float, optional
        Largest over smallest feature standard deviation of the data as the models saw it.

    Returns
    -------
    list of str
        Empty when neither cause is shown.
    """
    causes = []
    if history is not None and len(history) and {"run", "epoch", "train_loss"} <= set(history.columns):
        falling, drop = still_falling(history, runs)
        if falling:
            causes.append(f"its train loss was still falling when training stopped ({drop:.0%} over the last "
                          "quarter of the epochs): train longer, --epochs")
    if scale_ratio is not None and np.isfinite(scale_ratio) and scale_ratio > SCALE_RATIO:
        causes.append(f"its features' scales differ by a factor of {scale_ratio:,.0f}, so the largest dominate "
                      "the error: --scale standard")
    return causes


def family_runs(summary_row_hidden, history):
    """Run ids of an autoencoder family in ``history`` (matched on its hidden widths)."""
    if history is None or "hidden" not in history.columns:
        return []
    hidden = history["hidden"].map(lambda v: "" if pd.isna(v) else str(int(v)) if isinstance(v, float) else str(v))
    return list(history.loc[(hidden == str(summary_row_hidden)) & (history.get("model", "autoencoder")
                                                                    == "autoencoder"), "run"].unique())
