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

__all__ = ["grow_proposals", "grow_start", "grow_update", "simplest_adequate"]


def _describe(row):
    if row["model"] == "pca":
        return f"PCA with {int(row['bottleneck'])} components ({int(row['n_params']):,} parameters)"
    hidden = str(row["hidden"]).replace("-", ", ")
    return (f"the autoencoder with bottleneck {int(row['bottleneck'])} and hidden widths ({hidden}) "
            f"({int(row['n_params']):,} parameters)")


def simplest_adequate(results, tolerance=0.05, *, split="val", metric="mse", models=("autoencoder", "pca")):
    """The model with the fewest parameters whose held-out error is within ``tolerance`` of the best.

    Errors are averaged over seeds first. The held-out split defaults to validation, so that the test error of
    the chosen model stays an unbiased estimate; the returned dict carries the test error too when present.

    Parameters
    ----------
    results : DataFrame
        Rows like ``results.csv``.
    tolerance : float
        Relative slack: adequate means ``error <= best * (1 + tolerance)``.
    split : str
        Split whose error decides (``"val"`` by default; ``"test"`` when there is no validation split).
    metric : str
        Error column.
    models : sequence of str
        Which model kinds compete.

    Returns
    -------
    dict
        ``model, bottleneck, hidden, depth, width, n_params, error, best_error, best_description, test_error,
        tolerance, split, metric, sentence``.

    Examples
    --------
    >>> choice = simplest_adequate(pd.read_csv("runs/digits/results.csv"))  # doctest: +SKIP
    >>> print(choice["sentence"])  # doctest: +SKIP
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    table = summarize_runs(results, split=split, metric=metric)
    table = table[table["model"].isin(list(models))]
    if table.empty:
        raise ValueError(f"results has no finished runs of models {list(models)} on split={split!r}")
    best = table.loc[table[metric].idxmin()]
    adequate = table[table[metric] <= best[metric] * (1 + tolerance)]
    choice = adequate.sort_values(["n_params", metric]).iloc[0]
    test_error = np.nan
    if split != "test" and (results["split"] == "test").any():
        test = summarize_runs(results, split="test", metric=metric)
        same = [test[c].eq(choice[c]) | (test[c].isna() & pd.isna(choice[c])) for c in _CONFIG_COLUMNS]
        match = test[np.logical_and.reduce(same)]
        if len(match):
            test_error = float(match[metric].iloc[0])
    name = {"val": "validation", "test": "test", "train": "training"}.get(split, split)
    if _describe(choice) == _describe(best):
        sentence = (f"The simplest adequate model is {_describe(choice)}, which also has the lowest {name} {metric}, "
                    f"{choice[metric]:.4g}")
    else:
        sentence = (f"The simplest adequate model is {_describe(choice)}: its {name} {metric} {choice[metric]:.4g} "
                    f"is within {tolerance:.0%} of the best, {best[metric]:.4g} ({_describe(best)})")
    sentence += f"; its test {metric} is {test_error:.4g}." if np.isfinite(test_error) else "."
    out = {c: choice[c] for c in _CONFIG_COLUMNS}
    out = {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}
    out.update(error=float(choice[metric]), best_error=float(best[metric]), best_description=_describe(best),
               test_error=test_error, tolerance=float(tolerance), split=split, metric=metric, sentence=sentence)
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
