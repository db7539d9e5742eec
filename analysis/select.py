"""Model selection: the simplest model whose held-out error is within a tolerance of the best; the grow search.

The grow search is a pure policy ("start small, grow width, then depth"): :func:`grow_proposals` says which
architectures to try next from a state, :func:`grow_update` moves the state on given their held-out errors. The
study trains what is proposed; nothing here trains or reads files.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .tables import CONFIG_COLUMNS as _CONFIG_COLUMNS, summarize_runs

__all__ = ["grow_proposals", "grow_start", "grow_update", "selection_metric", "simplest_adequate"]


def _describe(row):
    if row["model"] == "pca":
        return f"PCA with {int(row['bottleneck'])} components ({int(row['n_params']):,} parameters)"
    hidden = str(row["hidden"])
    widths = f"hidden width {hidden}" if "-" not in hidden else f"hidden widths ({hidden.replace('-', ', ')})"
    return f"the autoencoder with bottleneck {int(row['bottleneck'])} and {widths} ({int(row['n_params']):,} parameters)"


METRIC_WORDS = {
    "mse_clean": "error against the clean signal",
    "sure": "SURE estimate of the clean error",
    "mse_denoise": "denoising error (fresh noise on the validation inputs)",
    "mse": "error against the noisy input",
}


def selection_metric(results, split="val"):
    """The error that copying the noise cannot win, from what ``results`` knows (see :func:`simplest_adequate`)."""
    rows = results[results["split"] == split] if "split" in results.columns else results

    def known(column):
        return column in rows.columns and np.isfinite(rows[column].astype(float)).any()

    injected = "noise_std" in rows.columns and (rows["noise_std"].astype(float) > 0).any()
    if known("mse_clean") and (injected or not np.allclose(rows["mse_clean"].astype(float),
                                                           rows["mse"].astype(float), equal_nan=True)):
        return "mse_clean"
    for column in ("sure", "mse_denoise"):
        if known(column):
            return column
    return "mse"


def simplest_adequate(results, tolerance=0.05, *, split="val", metric="auto", rule="one_se",
                      models=("autoencoder", "pca")):
    """The model with the fewest parameters whose held-out error is adequate: near the best, by a rule.

    Errors are averaged over seeds first. The held-out split defaults to validation, so that the test error of
    the chosen model stays an unbiased estimate; the returned dict carries the test error too when present.

    The error is one that copying the noise cannot win. Against the noisy input a model's held-out error keeps
    falling as it reproduces more noise (``mse = mse_clean + sigma^2 (1 - 2 NM)``), so the identity map would win;
    ``metric="auto"`` takes the error against the clean signal when it is known (the study injected the noise),
    else SURE (the noise level is known), else the denoising error (fresh noise on validation inputs), and only
    without any of them the noisy error, and then never a model with as many components as features.

    Parameters
    ----------
    results : DataFrame
        Rows like ``results.csv``.
    tolerance : float
        Relative slack for ``rule="tolerance"``: adequate means ``error <= best * (1 + tolerance)``; also used by
        ``"one_se"`` when the best model has a single seed (no spread to judge by).
    split : str
        Split whose error decides (``"val"`` by default; ``"test"`` when there is no validation split).
    metric : str
        ``"auto"`` or an error column (``mse_clean``, ``sure``, ``mse_denoise``, ``mse``).
    rule : {"one_se", "tolerance"}
        ``"one_se"``: adequate means a mean error over seeds at most the best's mean plus its standard error
        (sd over seeds / sqrt(seeds)), the usual one-standard-error rule.
    models : sequence of str
        Which model kinds compete.

    Returns
    -------
    dict
        ``model, bottleneck, hidden, depth, width, n_params, error, error_sd, n_seeds, best_error,
        best_description, threshold, test_error, tolerance, rule, split, metric, sentence``.

    Examples
    --------
    >>> choice = simplest_adequate(pd.read_csv("runs/digits/results.csv"))  # doctest: +SKIP
    >>> print(choice["sentence"])  # doctest: +SKIP
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if rule not in ("one_se", "tolerance"):
        raise ValueError(f"unknown rule {rule!r}; valid values are ['one_se', 'tolerance']")
    metric = selection_metric(results, split) if metric == "auto" else metric
    table = summarize_runs(results, split=split, metric=metric)
    table = table[table["model"].isin(list(models))]
    note = ""
    if metric == "mse" and "n_features" in results.columns:  # the identity map wins the noisy error by copying
        d = results["n_features"].max()
        copying = table["bottleneck"] >= d
        if copying.any():
            table, note = table[~copying], f" (models with k >= {int(d)} features left out: they copy their input)"
    if table.empty:
        raise ValueError(f"results has no finished runs of models {list(models)} on split={split!r}")
    best = table.loc[table[metric].idxmin()]
    sd, n = float(best[f"{metric}_std"]), int(best["n_seeds"])
    if rule == "one_se" and n > 1:
        threshold, how = best[metric] + sd / np.sqrt(n), "within one standard error over seeds of"
    else:
        threshold, how = best[metric] * (1 + tolerance), f"within {tolerance:.0%} of"
    adequate = table[table[metric] <= threshold]
    choice = adequate.sort_values(["n_params", metric]).iloc[0]
    test_error = np.nan
    if split != "test" and (results["split"] == "test").any() and metric in results.columns:
        test = summarize_runs(results, split="test", metric=metric) if results.loc[
            results["split"] == "test", metric].notna().any() else pd.DataFrame(columns=table.columns)
        same = [test[c].eq(choice[c]) | (test[c].isna() & pd.isna(choice[c])) for c in _CONFIG_COLUMNS]
        match = test[np.logical_and.reduce(same)] if len(test) else test
        if len(match):
            test_error = float(match[metric].iloc[0])
    name = {"val": "validation", "test": "test", "train": "training"}.get(split, split)
    words = METRIC_WORDS.get(metric, metric)
    spread = f" ± {choice[f'{metric}_std']:.2g}" if choice["n_seeds"] > 1 else ""
    if _describe(choice) == _describe(best):
        sentence = (f"The simplest adequate model is {_describe(choice)}, which also has the lowest {name} {words}, "
                    f"{choice[metric]:.4g}{spread}")
    else:
        sentence = (f"The simplest adequate model is {_describe(choice)}: its {name} {words}, "
                    f"{choice[metric]:.4g}{spread}, is {how} the best, {best[metric]:.4g} ({_describe(best)})")
    sentence += f"; its test {words} is {test_error:.4g}" if np.isfinite(test_error) else ""
    sentence += note + "."
    if metric == "mse":
        sentence += (" No clean signal and no noise level are known, so the choice rests on the error against the "
                     "noisy input, which rewards copying the noise.")
    out = {c: choice[c] for c in _CONFIG_COLUMNS}
    out = {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}
    out.update(error=float(choice[metric]), error_sd=float(choice[f"{metric}_std"]), n_seeds=int(choice["n_seeds"]),
               best_error=float(best[metric]), best_description=_describe(best), threshold=float(threshold),
               test_error=test_error, tolerance=float(tolerance), rule=rule, split=split, metric=metric,
               sentence=sentence)
    return out


# -- the grow search ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GrowState:
    """Where the search stands at one bottleneck: the current architecture, its held-out error, whether done."""

    hidden: tuple
    error: float | None = None
    done: bool = False


def grow_start(bottlenecks, width):
    """One narrow layer of ``width`` units at every bottleneck."""
    return {int(k): GrowState((int(width),)) for k in bottlenecks}


def grow_proposals(state, max_width, max_depth):
    """Architectures to train next, per bottleneck: the start; then twice as wide and one layer deeper.

    Returns
    -------
    dict of int to list of tuple
        Bottleneck -> hidden widths to try, the preferred first (widening before deepening). Empty when done.
    """
    out = {}
    for k, s in state.items():
        if s.done:
            continue
        if s.error is None:
            out[k] = [s.hidden]
            continue
        width, depth = s.hidden[0], len(s.hidden)
        options = [(width * 2,) * depth] if width * 2 <= max_width else []
        options += [(width,) * (depth + 1)] if depth + 1 <= max_depth else []
        if options:
            out[k] = options
    return out


def grow_update(state, proposals, errors, tolerance):
    """The next state given the held-out ``errors[(k, hidden)]`` of the proposed architectures.

    A step is taken when it lowers the error by more than ``tolerance`` (relative); the first such option in the
    proposal's order wins (wider before deeper). A bottleneck with no helpful option, or none left, is done.
    """
    new = dict(state)
    for k, s in state.items():
        options = proposals.get(k)
        if s.done:
            continue
        if not options:
            new[k] = replace(s, done=True)
        elif s.error is None:
            new[k] = replace(s, error=errors[(k, s.hidden)])
        else:
            better = [h for h in options if errors[(k, h)] < s.error * (1 - tolerance)]
            new[k] = replace(s, hidden=better[0], error=errors[(k, better[0])]) if better else replace(s, done=True)
    return new
