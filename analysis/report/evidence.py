"""The rules that decide what the verdict may claim: one per claim, each read off the intervals of a summary row.

A claim of an effect needs its interval to exclude the null value (AUC 0.5, a memorization gap of 0, no
difference from PCA); a claim of *no more than PCA* needs the interval inside a small margin of PCA's numbers.
Where neither holds the evidence is inconclusive, and the verdict says so and what would settle it. Nothing here
measures or writes: rows of :func:`analysis.study.tables.summary_table` and ``history.csv`` in, decisions out.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..measures.intervals import clopper_pearson
from ..study.runspec import RunSpec
from ..study.tables import summary_table

__all__ = ["assess", "audit_leaks", "fit_causes", "fit_evidence", "pca_comparison", "settle", "stores",
           "still_falling", "verdict_inputs"]

STORES = 0.10         # seen minus unseen noise memorization above this: it stores its samples, not a little
LIKE_PCA = 0.02       # intervals within this of PCA's memorization gap (and twice it of its AUC): no more than PCA
BADLY = 2.0           # unseen clean error at least this many times PCA's at every bottleneck: a failed fit
STILL_FALLING = 0.05  # train loss fell by this share of its last value over the last quarter of the epochs
SCALE_RATIO = 100.0   # feature scales differing by more than this factor (as autoenc.data.scale_warning)


def _bounds(row, name):
    low, high = row.get(f"{name}_ci_low", np.nan), row.get(f"{name}_ci_high", np.nan)
    low, high = (np.nan if v is None else float(v) for v in (low, high))
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (np.nan, np.nan)


def stores(row, pca_row=None):
    """True when both intervals exclude storage: the membership AUC's lies above 0.5 and the seen minus unseen
    noise memorization's (``mem_gap``, paired by seed) above 0, and each above PCA's at the same bottleneck
    (a rank-k projection fitted on the training samples shows a little of both; on the same split PCA is one
    number, so this is the paired difference's interval excluding 0)."""
    gap, auc = _pca_numbers(pca_row)
    return bool(_bounds(row, "membership_auc")[0] > auc and _bounds(row, "mem_gap")[0] > gap)


def _pca_numbers(pca_row):
    """PCA's memorization gap and AUC, at least the nulls 0 and 0.5 (those without PCA, or where it lacks them)."""
    gap = np.nan if pca_row is None else float(pca_row.get("mem_gap", np.nan))
    auc = np.nan if pca_row is None else float(pca_row.get("membership_auc", np.nan))
    return max(np.nan_to_num(gap), 0.0), max(np.nan_to_num(auc, nan=0.5), 0.5)


def like_pca(row, pca_row=None):
    """True when the intervals show no more storage than PCA's: the memorization gap's upper bound within
    ``LIKE_PCA`` of PCA's gap and the AUC's within ``2 * LIKE_PCA`` of PCA's AUC (0 and 0.5 without PCA)."""
    gap, auc = _pca_numbers(pca_row)
    return bool(_bounds(row, "mem_gap")[1] <= gap + LIKE_PCA
                and _bounds(row, "membership_auc")[1] <= auc + 2 * LIKE_PCA)


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
        :func:`analysis.study.tables.summary_table`.

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
        storing = rows[[stores(r, pca_of[int(r["bottleneck"])]) for _, r in rows.iterrows()]]
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


def audit_leaks(rows, fpr=0.01, confidence=0.95):
    """Whether the strongest attack of an audit flags more training samples than a guess at ``fpr`` would.

    The strongest of ``m`` attacks is chosen after seeing them, so its Clopper-Pearson lower bound is taken at
    ``1 - (1 - confidence) / m`` (Bonferroni); it must exceed the false-positive rate, or ``1 / (n_nonmembers + 1)``
    where too few unseen samples resolve ``fpr``.

    Parameters
    ----------
    rows : DataFrame
        ``audit_summary.csv`` rows of one audited run at one ``fpr``: ``attack, tpr, n_true_positives,
        n_members``, optionally ``n_nonmembers, fpr_resolved``.
    fpr : float, default 0.01
    confidence : float, default 0.95

    Returns
    -------
    (leaks, low, chance) : (bool, float, float)
        ``low``: the corrected lower bound of the strongest attack's TPR; ``chance``: the rate it must exceed.
    """
    best = rows.sort_values("tpr").iloc[-1]
    m = len(rows)
    low = clopper_pearson(int(best["n_true_positives"]), int(best["n_members"]), 1 - (1 - confidence) / m)[0]
    chance = float(fpr)
    if not bool(best.get("fpr_resolved", True)) and np.isfinite(best.get("n_nonmembers", np.nan)):
        chance = max(chance, 1 / (float(best["n_nonmembers"]) + 1))
    return bool(low > chance), float(low), chance


_TEXT = {"run": str, "hidden": str, "reason": str, "status": str, "targets": str}  # read as text, never guessed


def _folder(study_dir):
    folder = Path(study_dir)
    if not (folder / "results.csv").is_file():
        raise ValueError(f"study_dir must be a study folder with results.csv, got {str(study_dir)!r}")
    return folder


def _table(folder, name):
    path = folder / name
    return pd.read_csv(path, dtype=_TEXT) if path.is_file() else None


def _document(folder, name):
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def fit_evidence(study_dir):
    """What says why a fit failed, from a study folder: ``history`` (``history.csv``, None without it) and
    ``scale_ratio`` (``study.json``'s ``feature_scale_ratio``: the unscaled data's, recorded by the study for a
    ``scale="none"`` study, else None), as keyword arguments of :func:`analysis.report.verdict.verdict`."""
    folder = _folder(study_dir)
    ratio = (_document(folder, "study.json") or {}).get("feature_scale_ratio")
    return dict(history=_table(folder, "history.csv"), scale_ratio=None if ratio is None else float(ratio))


def verdict_inputs(study_dir):
    """What :func:`analysis.report.verdict.verdict` and :func:`analysis.report.verdict.answer` read from a study folder.

    Parameters
    ----------
    study_dir : str or PathLike
        A study folder with ``results.csv``.

    Returns
    -------
    dict
        ``summary`` (:func:`analysis.study.tables.summary_table`), ``selection``, ``audit`` (of the architectures
        as the grid trained them), ``agreement``, ``remedies`` (``remedy_summary.csv``; each None where the folder
        lacks the file), and :func:`fit_evidence`'s ``history`` and ``scale_ratio``.

    Examples
    --------
    >>> inputs = verdict_inputs("runs/digits")  # doctest: +SKIP
    >>> answer(inputs["summary"], inputs["selection"])  # doctest: +SKIP
    """
    folder = _folder(study_dir)
    return dict(summary=summary_table(_table(folder, "results.csv")), selection=_document(folder, "selection.json"),
                **_verdict_evidence(folder))


def _verdict_evidence(folder):
    """:func:`verdict_inputs` but the summary table and the selection, for a caller that has them already."""
    agreement = _document(folder, "memorization.json")
    audit = _table(folder, "audit_summary.csv")
    if audit is not None:  # the remedies' audits speak in the remedies' sentence
        audit = audit[audit["run"].map(lambda r: not RunSpec.from_run(r).remedy)]
    return dict(audit=audit, agreement=agreement if isinstance(agreement, list) else None,
                remedies=_table(folder, "remedy_summary.csv"), **fit_evidence(folder))
