"""The remedy runs of a study: which architectures get which remedies, and their numbers beside PCA's.

After the grid and its selection, every remedy of ``StudyConfig.remedies`` trains each target architecture (the
widest and/or the selected autoencoder) with every seed of the study; the runs are committed and measured like the
grid's, into ``remedies.csv``. With ``remedy_audit``, each remedied architecture's first seed is audited against
reference models trained with the same remedy. :func:`remedy_summary` gathers one row per (target, remedy) with
intervals over seeds, the unremedied architecture and PCA at its bottleneck beside them, and for DP-SGD the
accountant's epsilon next to the audit's lower bound.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..measures.intervals import seed_interval
from .remedies import Remedy
from .runspec import RunSpec
from .tables import summary_table

__all__ = ["remedy_specs", "remedy_summary", "remedy_targets", "write_remedy_summary"]


def remedy_targets(config, selection):
    """The architectures (first seed) that get the remedies: the grid's widest and/or the selected autoencoder."""
    if not config.remedies:
        return []
    out = []
    if "widest" in config.remedy_targets:
        out.append(config.widest_run())
    among = (selection or {}).get("autoencoder")
    if "selected" in config.remedy_targets and isinstance(among, dict) and among.get("model") == "autoencoder":
        out.append(RunSpec(int(among["bottleneck"]), among["hidden"], config.seeds[0], kind=config.architecture))
    return list({s.architecture: s for s in out}.values())


def remedy_specs(config, selection):
    """Every remedy run: each target architecture x remedy x seed."""
    return [RunSpec(t.bottleneck, t.hidden, seed, kind=t.kind, remedy=Remedy.parse(text).tag)
            for t in remedy_targets(config, selection) for text in config.remedies for seed in config.seeds]


def _interval(values, scale):
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return seed_interval(values, scale) if len(values) else (np.nan,) * 4


def remedy_summary(remedies, results, config, *, selection=None, audit=None, n_train=None):
    """One row per target architecture and remedy (the unremedied architecture as remedy ``"none"``), with PCA's
    row at its bottleneck: the headline numbers with intervals over seeds, the selection criterion on the
    validation split, TPR at 1% FPR, and for DP-SGD the accountant's epsilon at delta = 1/n.

    Parameters
    ----------
    remedies, results : DataFrame
        ``remedies.csv`` and ``results.csv``.
    config : StudyConfig
    selection : dict, optional
        ``selection.json``: its metric and threshold (the best model's error plus one standard error) say whether a
        remedy keeps the error near the best model's (``adequate``).
    audit : DataFrame, optional
        ``audit_summary.csv``: each audited architecture's empirical lower bound on epsilon (``epsilon_lb``).
    n_train : int, optional
        Training samples, for the accountant's epsilon (DP-SGD rows).

    Returns
    -------
    DataFrame
        ``target, remedy, remedy_text, model, bottleneck, hidden, n_params, n_seeds``, then for ``test_mse_clean,
        membership_auc, mem_gap, nm_seen, nm_unseen, tpr_at_1pct_fpr`` the mean and ``_ci_low``/``_ci_high``,
        ``criterion`` (mean over seeds on the validation split), ``adequate``, ``epsilon``, ``epsilon_lb`` and
        ``best_test_mse_clean`` (the unseen clean error of the grid's model with the lowest criterion).
    """
    metric = (selection or {}).get("metric", "mse_clean")
    split = (selection or {}).get("split", "val")
    threshold = (selection or {}).get("threshold", np.nan)
    best = _best_test_error(results, split, metric)
    rows = []
    targets = sorted({RunSpec.from_run(r).base.architecture for r in remedies["run"]}) if len(remedies) else []
    for target in targets:
        base = RunSpec.from_run(target + "-s0")
        pca_rows = results[(results["model"] == "pca") & (results["bottleneck"] == base.bottleneck)]
        members = {"none": results[results["run"].map(lambda r, t=target: _architecture(r) == t)]}
        for tag, group in remedies.groupby("remedy", sort=False):
            mine = group[group["run"].map(lambda r, t=target: RunSpec.from_run(r).base.architecture == t)]
            if len(mine):
                members[tag] = mine
        for tag, mine in members.items():
            table = summary_table(pd.concat([pca_rows, mine.drop(columns="remedy", errors="ignore")]))
            ae = table[table["model"] == "autoencoder"]
            if ae.empty:
                continue
            row = ae.iloc[0].to_dict()
            ok = mine[(mine["status"] == "ok")]
            tpr = ok[ok["split"] == "test"]["tpr_at_1pct_fpr"] if "tpr_at_1pct_fpr" in ok else []
            mean, _, low, high = _interval(tpr, "logit")
            criterion = ok[ok["split"] == split][metric].astype(float).mean() if metric in ok else np.nan
            remedy = None if tag == "none" else Remedy.from_tag(tag)
            first = RunSpec(base.bottleneck, base.hidden, config.seeds[0], kind=base.kind,
                            remedy="" if remedy is None else remedy.tag)
            rows.append({"target": target, "remedy": tag, "remedy_text": "none" if remedy is None else remedy.words,
                         **row, "tpr_at_1pct_fpr": mean, "tpr_at_1pct_fpr_ci_low": low,
                         "tpr_at_1pct_fpr_ci_high": high, "criterion": criterion,
                         "adequate": bool(criterion <= threshold * (1 + 1e-12)) if np.isfinite(threshold) else None,
                         "epsilon": _epsilon(first, config, n_train), "epsilon_lb": _lower_bound(audit, first),
                         "best_test_mse_clean": best})
        pca = summary_table(pca_rows)
        if len(pca):
            tpr = pca_rows[pca_rows["split"] == "test"]["tpr_at_1pct_fpr"]
            rows.append({"target": target, "remedy": "pca", "remedy_text": f"PCA with {base.bottleneck} components",
                         **pca.iloc[0].to_dict(), "tpr_at_1pct_fpr": float(tpr.mean()) if len(tpr) else np.nan,
                         "criterion": float(pca_rows[pca_rows["split"] == split][metric].astype(float).mean())
                         if metric in pca_rows else np.nan})
    return pd.DataFrame(rows)


def _best_test_error(results, split, metric):
    """The unseen clean error of the model with the lowest selection criterion (mean over seeds), the grid's best."""
    from .tables import summarize_runs

    try:
        chosen = summarize_runs(results, split=split, metric=metric).sort_values(metric).iloc[0]
        test = summarize_runs(results, split="test", metric="mse_clean")
    except (ValueError, KeyError, IndexError):
        return np.nan
    same = (test["model"] == chosen["model"]) & (test["bottleneck"] == chosen["bottleneck"]) & (
        test["hidden"].astype(str) == str(chosen["hidden"]))
    return float(test.loc[same, "mse_clean"].iloc[0]) if same.any() else np.nan


def _architecture(run):
    try:
        return RunSpec.from_run(run).architecture
    except ValueError:
        return None


def _epsilon(spec, config, n_train):
    """The accountant's epsilon at delta = 1/n of a DP-SGD run (NaN for any other)."""
    if n_train is None or not spec.remedy or not spec.remedy.startswith("dp"):
        return np.nan
    from autoenc.privacy import config_epsilon  # the accountant's library loads only for DP runs

    return float(config_epsilon(spec.train_config(config.train, config.dp_clip), int(n_train)))


def _lower_bound(audit, spec):
    """The strongest attack's lower bound on epsilon for the audited architecture of ``spec`` (NaN unaudited)."""
    if audit is None or "epsilon_lb" not in audit:
        return np.nan
    mine = audit[audit["run"] == spec.run]["epsilon_lb"]
    return float(mine.max()) if len(mine) else np.nan


def write_remedy_summary(folder, remedies, results, config, selection, n_train):
    """``remedy_summary.csv`` (:func:`remedy_summary`), after the audit; nothing without remedy runs."""
    from .store import write_csv

    if remedies is None or remedies.empty:
        return None
    path = folder / "audit_summary.csv"
    audit = pd.read_csv(path, dtype={"run": str, "targets": str}) if path.is_file() else None
    summary = remedy_summary(remedies, results, config, selection=selection, audit=audit, n_train=n_train)
    write_csv(folder / "remedy_summary.csv", summary)
    return summary
