"""Model selection: the simplest model whose held-out error is within a tolerance of the best."""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

__all__ = ["simplest_adequate", "summarize_runs"]

_CONFIG_COLUMNS = ["model", "bottleneck", "hidden", "depth", "width", "n_params"]


def _require(results, columns):
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    missing = [c for c in columns if c not in results.columns]
    if missing:
        raise ValueError(f"results is missing column(s) {missing}; expected a frame like results.csv")


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
    _require(results, [*_CONFIG_COLUMNS, "split", metric])
    rows = results[results["split"] == split]
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    rows = rows[np.isfinite(rows[metric].astype(float))]
    if rows.empty:
        have = sorted(results["split"].dropna().unique())
        raise ValueError(f"results has no finished rows for split={split!r} (splits present: {have})")
    grouped = rows.groupby(_CONFIG_COLUMNS, dropna=False, sort=False)[metric]
    out = grouped.agg(["mean", "std", "size"]).reset_index()
    out.columns = [*_CONFIG_COLUMNS, metric, f"{metric}_std", "n_seeds"]
    out[f"{metric}_std"] = out[f"{metric}_std"].fillna(0.0)
    return out.sort_values(["n_params", metric]).reset_index(drop=True)


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
