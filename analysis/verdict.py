"""The answer first: a few plain sentences per model family, computed from the summary table and the selection.

Nothing here measures; it reads :func:`analysis.tables.summary_table` (means and intervals over seeds) and the
selection dict, and says which widths store their training samples and how strongly, which learn no more than
PCA, and which model is the simplest adequate one.
"""
from __future__ import annotations

import numpy as np

__all__ = ["key_numbers", "verdict"]

STORES = 0.10   # seen minus unseen noise memorization above this: the network stores its training samples' noise
LIKE_PCA = 0.02  # within this of PCA's memorization gap and membership AUC: no more than PCA


def _fmt_interval(row, name, fmt="{:.2f}"):
    low, high = row.get(f"{name}_ci_low", np.nan), row.get(f"{name}_ci_high", np.nan)
    text = fmt.format(row[name])
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
    return text


def _family(hidden):
    return f"width {hidden}" if "-" not in str(hidden) else f"hidden widths ({str(hidden).replace('-', ', ')})"


def verdict(summary, selection=None, audit=None, agreement=None):
    """Plain-language findings, most important first.

    Parameters
    ----------
    summary : DataFrame
        :func:`analysis.tables.summary_table` of a study.
    selection : dict, optional
        :func:`analysis.select.simplest_adequate`'s choice (with an ``autoencoder`` entry for the choice among
        autoencoders, as the study writes it).
    audit : DataFrame, optional
        ``audit_summary.csv``: a line per audited architecture on its strongest attack at 1% false positives.
    agreement : list of dict, optional
        ``memorization.json``: how well the per-sample memorization scores reproduce.

    Returns
    -------
    list of str
        One sentence per autoencoder family (hidden widths), then the selection.

    Examples
    --------
    >>> lines = verdict(summary_table(results), selection)  # doctest: +SKIP
    """
    lines = []
    if summary is None or summary.empty or "nm_seen" not in summary.columns:
        lines.append("No noise was injected, so how much noise each network stores cannot be measured here.")
    else:
        lines += _families(summary)
    if audit is not None and len(audit):
        lines += _audit_lines(audit)
    for entry in agreement or []:
        if entry.get("run", "").startswith("ae-") and np.isfinite(entry.get("predicted_spearman") or np.nan):
            good = entry["predicted_spearman"] >= 0.9
            lines.append(f"Per-sample memorization scores of {entry['run'].rsplit('-s', 1)[0]} "
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


def _families(summary):
    table = summary.assign(mem_gap=summary["nm_seen"] - summary["nm_unseen"])
    pca = table[table["model"] == "pca"].set_index("bottleneck")
    ae = table[table["model"] == "autoencoder"]
    if not pca.empty:  # what each autoencoder shows beyond PCA at its own bottleneck
        ae = ae.assign(gap_excess=ae["mem_gap"] - ae["bottleneck"].map(pca["mem_gap"]).fillna(0.0),
                       auc_excess=ae["membership_auc"] - ae["bottleneck"].map(pca["membership_auc"]).fillna(0.5))
    else:
        ae = ae.assign(gap_excess=ae["mem_gap"], auc_excess=ae["membership_auc"] - 0.5)
    lines, plain = [], []
    order = ae.groupby("hidden", sort=False)["n_params"].max().sort_values().index
    for hidden in order:
        rows = ae[ae["hidden"] == hidden]
        worst = rows.loc[rows["mem_gap"].idxmax()]
        k = int(worst["bottleneck"])
        beats = _beats_pca(rows, pca)
        badly = _fits_badly(rows, pca)
        if badly:
            lines.append(f"{_family(hidden)[0].upper()}{_family(hidden)[1:]} fits the data badly: {badly}")
        elif worst["mem_gap"] > STORES:
            auc = _fmt_interval(worst, "membership_auc")
            line = (f"{_family(hidden)} stores its training samples: at k={k} it reproduces "
                    f"{worst['nm_seen']:.0%} of their noise against {worst['nm_unseen']:.0%} of unseen samples' "
                    f"(the rank-{k} PCA projection keeps {worst['nm_reference']:.0%}), and its error tells "
                    f"training samples apart (membership AUC {auc}; 0.5 = no leakage).")
            lines.append(line[0].upper() + line[1:] + beats)
        elif (rows["gap_excess"].max() <= LIKE_PCA or rows["mem_gap"].max() <= 0) and \
                rows["auc_excess"].max() <= 2 * LIKE_PCA:
            plain.append((hidden, _better_than_pca(rows, pca)))
        else:
            most = rows.loc[rows["auc_excess"].idxmax()]
            line = (f"{_family(hidden)} stores a little of its training samples' noise: at k={int(most['bottleneck'])} "
                    f"it reproduces {most['mem_gap']:.1%} more of it on seen than on unseen samples, and its "
                    f"membership AUC is {_fmt_interval(most, 'membership_auc')} where PCA's is "
                    f"{most['membership_auc'] - most['auc_excess']:.2f}.")
            lines.append(line[0].upper() + line[1:] + beats)
    if plain:
        names = ", ".join(str(h) for h, _ in plain)
        noun, verb = ("Width", "learns") if len(plain) == 1 else ("Widths", "learn")
        line = (f"{noun} {names} {verb} no more than PCA: at every bottleneck, seen and unseen noise memorization "
                f"stay as close as PCA's and membership AUC stays at PCA's level.")
        winners = [(h, ks) for h, ks in plain if ks]
        if "test_mse_clean" not in summary.columns or pca.empty:
            pass
        elif not winners:
            line += (" It never beats PCA on unseen samples' clean signal." if len(plain) == 1 else
                     " None of them beats PCA on unseen samples' clean signal.")
        else:
            line += " " + "; ".join(f"{h} beats PCA on unseen samples' clean signal at k = {', '.join(map(str, ks))}"
                                    for h, ks in winners) + "."
        lines.append(line)
    return lines


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
        line = (f"Membership audit of {run.rsplit('-s', 1)[0]} ({len(targets)} seed{'s' * (len(targets) > 1)} "
                f"pooled, {int(best['n_references'])} reference models): {ATTACK_NAMES.get(best['attack'])} finds "
                f"{best['tpr']:.1%} [{best['tpr_ci_low']:.1%}, {best['tpr_ci_high']:.1%}] of training samples at "
                f"{fpr:.0%} false positives")
        if len(loss):
            row = loss.iloc[0]
            line += f", {ATTACK_NAMES['loss']} {row['tpr']:.1%} [{row['tpr_ci_low']:.1%}, {row['tpr_ci_high']:.1%}]"
        if not bool(best.get("fpr_resolved", True)):
            line += f" (too few unseen samples to resolve {fpr:.0%}: read it as an upper bound)"
        lines.append(line + ".")
    return lines


BADLY = 2.0  # unseen clean error this many times PCA's at every bottleneck: the model did not fit


def _fits_badly(rows, pca):
    """A sentence when a family's unseen clean error is far above PCA's everywhere (its memorization numbers then
    describe a failed fit, not storage), else ""."""
    if "test_mse_clean" not in rows.columns or pca.empty:
        return ""
    ratios = [row["test_mse_clean"] / pca.loc[int(row["bottleneck"]), "test_mse_clean"] for _, row in rows.iterrows()
              if int(row["bottleneck"]) in pca.index and pca.loc[int(row["bottleneck"]), "test_mse_clean"] > 0]
    if not ratios or min(ratios) < BADLY:
        return ""
    negative = (rows[["nm_seen", "nm_unseen"]] < 0).any(axis=None)
    return (f"its unseen error against the clean signal is {min(ratios):.1f} to {max(ratios):.1f} times PCA's, so "
            "its memorization numbers describe a failed fit, not stored samples"
            + (" (a negative noise memorization means the reconstruction moves against the noise)" if negative else "")
            + "; features of very different scales are the usual cause: --scale standard.")


def _beats_pca(rows, pca):
    """Where the family beats PCA on the unseen error against the clean signal (intervals apart), in words."""
    if "test_mse_clean" not in rows.columns or pca.empty:
        return ""
    better = _better_than_pca(rows, pca)
    if not better:
        return " It never beats PCA on unseen samples' clean signal."
    return f" It beats PCA on unseen samples' clean signal at k = {', '.join(map(str, better))}."


def _better_than_pca(rows, pca):
    """The bottlenecks at which the family's unseen clean error (its interval's top) is below PCA's."""
    if "test_mse_clean" not in rows.columns or pca.empty:
        return []
    better = []
    for _, row in rows.iterrows():
        k = int(row["bottleneck"])
        if k not in pca.index or not np.isfinite(row["test_mse_clean"]):
            continue
        high = row.get("test_mse_clean_ci_high", np.nan)
        bound = high if np.isfinite(high) else row["test_mse_clean"]
        if bound < pca.loc[k, "test_mse_clean"]:
            better.append(k)
    return better


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


def key_numbers(table):
    """The key-number table as text: headings and rows of strings, one row per row of ``table``.

    ``table`` is :func:`analysis.tables.summary_table`'s frame; errors get 4 decimals, shares 3, intervals in
    brackets; columns with nothing to show are left out.
    """
    if table.empty:
        return [h for h, _ in _COLUMNS], []
    records = table.to_dict("records")
    columns = [(h, cell) for h, cell in _COLUMNS if any(cell(r) not in ("–", "") for r in records)]
    return [h for h, _ in columns], [[cell(r) for _, cell in columns] for r in records]
