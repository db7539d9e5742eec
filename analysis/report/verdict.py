"""The answer first: a few plain sentences per model family, computed from the summary table and the selection.

Nothing here measures; it reads :func:`analysis.study.tables.summary_table` (means and intervals over seeds) and the
selection dict, and says which widths store their training samples and how strongly, which learn no more than
PCA, and which model is the simplest adequate one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..study.runspec import RunSpec, hidden_words
from .remedies import recommend
from .evidence import assess, audit_leaks, family_runs, fit_causes, pca_comparison, settle, verdict_inputs

__all__ = ["answer", "key_numbers", "verdict", "verdict_inputs"]


def _fmt_interval(row, name, fmt="{:.2f}"):
    low, high = row.get(f"{name}_ci_low", np.nan), row.get(f"{name}_ci_high", np.nan)
    text = fmt.format(row[name])
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
    return text


def _family(hidden):
    return hidden_words(hidden, prefix="")


def verdict(summary, selection=None, audit=None, agreement=None, *, history=None, scale_ratio=None, remedies=None):
    """Plain-language findings, most important first.

    Parameters
    ----------
    summary : DataFrame
        :func:`analysis.study.tables.summary_table` of a study.
    selection : dict, optional
        :func:`analysis.study.select.simplest_adequate`'s choice (with an ``autoencoder`` entry for the choice among
        autoencoders, as the study writes it).
    audit : DataFrame, optional
        ``audit_summary.csv``: a line per audited architecture on its strongest attack at 1% false positives.
    agreement : list of dict, optional
        ``memorization.json``: how well the per-sample memorization scores reproduce.
    history : DataFrame, optional
        ``history.csv``: a family that fits badly while its train loss still falls is told to train longer.
    scale_ratio : float, optional
        Largest over smallest feature standard deviation as the models saw the data: above 100, a family that fits
        badly is told to scale the features.
    remedies : DataFrame, optional
        ``remedy_summary.csv``: what to do about it, one sentence per remedied architecture
        (:func:`~analysis.report.remedies.recommend`).

    Returns
    -------
    list of str
        One sentence per autoencoder family (hidden widths), then the selection.

    Examples
    --------
    >>> lines = verdict(summary_table(results), selection)  # doctest: +SKIP
    """
    if history is not None and not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a DataFrame like history.csv or None, got {type(history).__name__}")
    if scale_ratio is not None and (isinstance(scale_ratio, bool) or not isinstance(scale_ratio, (int, float))
                                    or not scale_ratio >= 1):
        raise ValueError(f"scale_ratio must be a number >= 1 or None, got {scale_ratio!r}")
    lines = []
    if summary is None or summary.empty or "nm_seen" not in summary.columns:
        lines.append("No noise was injected, so how much noise each network stores cannot be measured here.")
    else:
        lines += _families(summary, history, scale_ratio)
    if audit is not None and len(audit):
        lines += _audit_lines(audit)
    if remedies is not None and len(remedies):
        lines += recommend(remedies)
    for entry in agreement or []:
        if entry.get("run", "").startswith("ae-") and np.isfinite(entry.get("predicted_spearman") or np.nan):
            good = entry["predicted_spearman"] >= 0.9
            lines.append(f"Per-sample memorization scores of {RunSpec.from_run(entry['run']).architecture} "
                         f"({entry['n_references']} reference models) {'reproduce' if good else 'do not reproduce'}"
                         f": two independent sets would rank the samples alike at Spearman "
                         f"{entry['predicted_spearman']:.2f} (the two halves of this set agree at "
                         f"{entry['split_half_spearman']:.2f})" + ("." if good else "; where the model stores "
                         "little, the scores are mostly noise; more reference models (--n-references) sharpen "
                         "them."))
            break
    if selection:
        lines.append(selection["sentence"])
        among = selection.get("autoencoder")
        if isinstance(among, dict) and among.get("sentence") and among["sentence"] != selection["sentence"]:
            lines.append("Among the autoencoders, t" + among["sentence"][1:])
    return lines


def _cap(text):
    return text[0].upper() + text[1:]


def _ks(ks):
    return ", ".join(map(str, ks))


def _pca_words(entry, subject="it"):
    """How the family compares with PCA on the unseen clean error, bottleneck by bottleneck, as its intervals allow."""
    rows = entry["rows"]
    if "test_mse_clean" not in rows.columns or not any(p is not None for p in entry["pca"].values()):
        return ""
    found = {"better": [], "worse": [], "unclear": []}
    for _, row in rows.iterrows():
        if entry["pca"].get(int(row["bottleneck"])) is not None:
            found[pca_comparison(row)].append(int(row["bottleneck"]))
    if found["worse"] and not found["better"] and not found["unclear"]:
        return (f" {_cap(subject)} never beats PCA on unseen samples' clean signal: PCA's error is lower at every "
                "bottleneck.")
    parts = []
    if found["better"]:
        parts.append(f"{subject} beats PCA on unseen samples' clean signal at k = {_ks(found['better'])}")
    if found["worse"]:
        parts.append(f"PCA's clean error is the lower one at k = {_ks(found['worse'])}")
    if found["unclear"]:
        n = int(rows["n_seeds"].min())
        parts.append(f"at k = {_ks(found['unclear'])} the difference from PCA is not resolved with {n} "
                     f"seed{'s' * (n != 1)}")
    return " " + _cap("; ".join(parts)) + "."


def _memorized(row, fmt="{:.3f}"):
    return f"{_fmt_interval(row, 'mem_gap', fmt)}" if "mem_gap" in row else f"{row['nm_seen'] - row['nm_unseen']:.2f}"


def _families(summary, history=None, scale_ratio=None):
    lines, plain = [], []
    for entry in assess(summary):
        row, family = entry["row"], _family(entry["hidden"])
        k, status, beats = int(entry["row"]["bottleneck"]), entry["status"], _pca_words(entry)
        if status == "fails":
            lines.append(f"{_cap(family)} fits the data badly: {_fits_badly(entry, history, scale_ratio)}")
        elif status == "stores":
            lines.append(_cap(
                f"{family} stores its training samples: at k={k} it reproduces {row['nm_seen']:.0%} of their noise "
                f"against {row['nm_unseen']:.0%} of unseen samples' (seen minus unseen {_memorized(row)}; the "
                f"rank-{k} PCA projection keeps {row['nm_reference']:.0%}), and its error tells training samples "
                f"apart (membership AUC {_fmt_interval(row, 'membership_auc')}; 0.5 = no leakage).") + beats)
        elif status == "stores_little":
            pca = entry["pca"].get(k)
            than = f" where PCA's is {pca['membership_auc']:.2f}" if pca is not None else ""
            lines.append(_cap(
                f"{family} stores a little of its training samples' noise: at k={k} its seen minus unseen noise "
                f"memorization is {_memorized(row)}, and its membership AUC is "
                f"{_fmt_interval(row, 'membership_auc')}{than}.") + beats)
        elif status == "like_pca":
            plain.append(entry)
        else:
            lines.append(_cap(
                f"whether {family} stores its training samples is inconclusive: at k={k} seen minus unseen noise "
                f"memorization is {_memorized(row)} and membership AUC {_fmt_interval(row, 'membership_auc')} "
                f"(0.5 = no leakage): the intervals show neither storage nor that it stores no more than PCA; "
                f"{settle(entry['rows']['n_seeds'].min())}.") + beats)
    if plain:
        names = ", ".join(str(e["hidden"]) for e in plain)
        noun, verb = ("Width", "learns") if len(plain) == 1 else ("Widths", "learn")
        line = (f"{noun} {names} {verb} no more than PCA: at every bottleneck the intervals of the seen minus "
                "unseen noise memorization and of the membership AUC stay within a small margin of PCA's.")
        lines.append(line + "".join(_pca_words(e, "it" if len(plain) == 1 else f"width {e['hidden']}")
                                    for e in plain))
    return lines


def answer(summary, selection=None):
    """The study's answer in one sentence: does the autoencoder learn or memorize, from which width, which model to
    use; claims only what :func:`verdict`'s rules allow (intervals that exclude no storage, or show no more than
    PCA's).

    Parameters
    ----------
    summary : DataFrame
        :func:`analysis.study.tables.summary_table` of a study.
    selection : dict, optional
        :func:`analysis.study.select.simplest_adequate`'s choice, as ``selection.json`` holds it.

    Returns
    -------
    str

    Examples
    --------
    >>> answer(summary_table(results), selection)  # doctest: +SKIP
    'The autoencoders memorize from width 256 on ...; use PCA with 8 components (576 parameters).'
    """
    if summary is not None and not isinstance(summary, pd.DataFrame):
        raise TypeError(f"summary must be a DataFrame from summary_table, got {type(summary).__name__}")
    if selection is not None and not isinstance(selection, dict):
        raise TypeError(f"selection must be a dict from simplest_adequate, got {type(selection).__name__}")
    use = f"; use {_model_words(selection)}, the simplest adequate model" if selection and "model" in selection else ""
    if summary is None or summary.empty or not (summary["model"] == "autoencoder").any():
        return f"No autoencoder finished, so whether autoencoders memorize cannot be told here{use}."
    if "nm_seen" not in summary.columns or not summary["nm_seen"].notna().any():
        return f"No noise was injected, so whether the autoencoders memorize cannot be measured here{use}."
    entries = assess(summary)
    status = {str(e["hidden"]): e["status"] for e in entries}
    order = list(status)
    memorize = [h for h in order if status[h] in ("stores", "stores_little")]
    learn = [h for h in order if status[h] == "like_pca"]
    unclear = [h for h in order if status[h] == "inconclusive"]
    failed = [h for h in order if status[h] == "fails"]
    n = int(summary.loc[summary["model"] == "autoencoder", "n_seeds"].min())
    parts = []
    if memorize:
        first = order.index(memorize[0])
        if order[first:] == memorize:
            strength = "memorize" if status[memorize[0]] == "stores" else "start to memorize"
            parts.append(f"the autoencoders {strength} from {_widths([memorize[0]])} on (they reproduce their "
                         "training samples' noise, and their error reveals which samples they saw)")
        else:
            parts.append(f"{_widths(memorize)} memorizes (it reproduces its training samples' noise, and its error "
                         "reveals which samples it saw)" if len(memorize) == 1 else
                         f"{_widths(memorize)} memorize (they reproduce their training samples' noise, and their "
                         "error reveals which samples they saw)")
    if learn:
        parts.append(f"{_widths(learn)} learn{'s' * (len(learn) == 1)} no more than PCA"
                     if memorize or unclear or failed else "the autoencoders learn without memorizing at every width "
                     "tried: no more storage than PCA")
    if unclear:
        parts.append(f"for {_widths(unclear)} the evidence is inconclusive with {n} seed{'s' * (n != 1)} "
                     "(more seeds or --data-seeds would settle it)")
    if failed:
        parts.append(f"{_widths(failed)} fit{'s' * (len(failed) == 1)} the data badly")
    chosen = status.get(str(selection.get("hidden"))) if use and selection["model"] == "autoencoder" else None
    if chosen in ("stores", "stores_little"):  # the pick is adequate on the clean signal, not free of storage
        use += (" (though it stores a little of its training samples' noise)" if chosen == "stores_little" else
                " (though it stores its training samples)")
    return _cap("; ".join(parts)) + use + "."


def _widths(hiddens):
    """'width 16', 'widths 16 and 64', or each family in full where one has several layers."""
    names = [str(h) for h in hiddens]
    if any("-" in n for n in names):
        names, prefix = [_family(n) for n in names], ""
    else:
        prefix = "width " if len(names) == 1 else "widths "
    return prefix + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])


def _model_words(selection):
    if selection["model"] == "pca":
        return f"PCA with {int(selection['bottleneck'])} components"
    return f"the autoencoder with bottleneck {int(selection['bottleneck'])} and {hidden_words(selection.get('hidden'))}"


ATTACK_NAMES = {"loss": "the loss threshold", "lira_offline": "LiRA (offline)", "lira_online": "LiRA (online)",
                "lira_offline_fixed": "LiRA (offline, fixed variance)",
                "lira_online_fixed": "LiRA (online, fixed variance)", "rmia": "RMIA"}


def _audit_lines(audit, fpr=0.01):
    lines = []
    at = audit[np.isclose(audit["fpr"], fpr)]
    for run, rows in at.groupby("run", sort=False):
        best = rows[rows["attack"] != "loss"].sort_values("tpr").iloc[-1]
        loss = rows[rows["attack"] == "loss"]
        targets = str(best.get("targets", run)).split()
        name = RunSpec.from_run(run).architecture
        line = (f"Membership audit of {name} ({len(targets)} seed{'s' * (len(targets) > 1)} "
                f"pooled, {int(best['n_references'])} reference models): {ATTACK_NAMES.get(best['attack'])} finds "
                f"{best['tpr']:.1%} [{best['tpr_ci_low']:.1%}, {best['tpr_ci_high']:.1%}] of training samples at "
                f"{fpr:.0%} false positives")
        if len(loss):
            row = loss.iloc[0]
            line += f", {ATTACK_NAMES['loss']} {row['tpr']:.1%} [{row['tpr_ci_low']:.1%}, {row['tpr_ci_high']:.1%}]"
        if not bool(best.get("fpr_resolved", True)):
            line += f" (too few unseen samples to resolve {fpr:.0%}: read it as an upper bound)"
        leaks, low, chance = audit_leaks(rows, fpr)
        n_attacks = rows["attack"].nunique()
        if leaks:
            line += (f": above the {chance:.1%} a guess flags (lower bound {low:.1%}, corrected for picking the "
                     f"strongest of {n_attacks} attacks)")
        else:
            line += (f": inconclusive, its lower bound ({low:.1%}, corrected for picking the strongest of {n_attacks}"
                     f" attacks) does not exceed the {chance:.1%} a guess flags; more reference models "
                     "(--n-references) or more samples would settle it")
        if "epsilon_lb" in rows and (rows["epsilon_lb"] > 0).any():
            line += (f". Whatever trained it leaks at least epsilon = {rows['epsilon_lb'].max():.2f} (95% "
                     "confidence, delta = 1/n, the strongest attack on one seed: an empirical lower bound)")
        lines.append(line + ".")
    return lines


def _fits_badly(entry, history=None, scale_ratio=None):
    """Why a family's unseen clean error is far above PCA's everywhere, with the cause the evidence points to."""
    low, high = entry["ratios"]
    rows = entry["rows"]
    negative = (rows[["nm_seen", "nm_unseen"]] < 0).any(axis=None)
    causes = fit_causes(history, family_runs(entry["hidden"], history), scale_ratio)
    reason = ("; ".join(causes) if causes else
              "neither a train loss still falling at the last epoch nor features of very different scales is shown"
              " here (try --epochs, --lr or --scale standard)")
    return (f"its unseen error against the clean signal is {low:.1f} to {high:.1f} times PCA's, so its "
            "memorization numbers describe a failed fit, not stored samples"
            + (" (a negative noise memorization means the reconstruction moves against the noise)" if negative else "")
            + f"; {reason}.")


def _num(value, fmt):
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "–"
    return fmt.format(float(value))


def _with_interval(name, fmt):
    """``mean [low, high]`` where the interval exists (two seeds or more, or one run's own), else the mean."""
    def cell(row):
        low, high = row.get(f"{name}_ci_low", np.nan), row.get(f"{name}_ci_high", np.nan)
        text = _num(row.get(name, np.nan), fmt)
        if text != "–" and np.isfinite(low) and np.isfinite(high):
            text += f" [{fmt.format(low)}, {fmt.format(high)}]"
        return text
    return cell


# Key-number table: (heading, cell of a summary_table row). Errors with 4 decimals, shares with 3.
_COLUMNS = [
    ("model", lambda r: str(r["model"])),
    ("k", lambda r: f"{int(r['bottleneck'])}"),
    ("hidden", lambda r: str(r["hidden"]) or "–"),
    ("parameters", lambda r: f"{int(r['n_params']):,}"),
    ("runs", lambda r: f"{int(r['n_seeds'])}"),
    ("unseen clean MSE [95% CI]", _with_interval("test_mse_clean", "{:.4f}")),
    ("unseen MSE", lambda r: _num(r.get("test_mse", np.nan), "{:.4f}")),
    ("gap", lambda r: _num(r.get("gap", np.nan), "{:.4f}")),
    ("noise mem. seen", _with_interval("nm_seen", "{:.3f}")),
    ("noise mem. unseen", lambda r: _num(r.get("nm_unseen", np.nan), "{:.3f}")),
    ("PCA projection keeps", lambda r: _num(r.get("nm_reference", np.nan), "{:.3f}")),
    ("membership AUC [95% CI]", _with_interval("membership_auc", "{:.3f}")),
]


# The console's table: the claims' own numbers, narrow enough for 100 columns.
_COMPACT = [
    ("model", lambda r: "PCA" if r["model"] == "pca" else "AE"),
    *_COLUMNS[1:5],
    ("unseen clean MSE [CI]", _with_interval("test_mse_clean", "{:.4f}")),
    ("noise mem. gap [CI]", _with_interval("mem_gap", "{:.2f}")),
    ("membership AUC [CI]", _with_interval("membership_auc", "{:.3f}")),
]


def key_numbers(table, compact=False):
    """The key-number table as text: headings and rows of strings, one row per row of ``table``.

    ``table`` is :func:`analysis.study.tables.summary_table`'s frame; errors get 4 decimals, shares 3, intervals in
    brackets; columns with nothing to show are left out. ``compact=True`` keeps the columns the verdict's claims
    rest on (the unseen clean error, seen minus unseen noise memorization, the membership AUC), for a console.
    """
    if not isinstance(compact, bool):
        raise TypeError(f"compact must be True or False, got {compact!r}")
    chosen = _COMPACT if compact else _COLUMNS
    if table.empty:
        return [h for h, _ in chosen], []
    records = table.to_dict("records")
    columns = [(h, cell) for h, cell in chosen if any(cell(r) not in ("–", "") for r in records)]
    return [h for h, _ in columns], [[cell(r) for _, cell in columns] for r in records]
