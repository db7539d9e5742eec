"""What a study folder says in words: the answer, the verdict and the key numbers, as the report and the command
line show them.

Reads ``results.csv``, ``selection.json`` and what :func:`~analysis.report.evidence.verdict_inputs` reads; imports
neither matplotlib nor torch, so the command line prints its verdict without loading the drawing code.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..study.runspec import format_hidden
from ..study.tables import summary_table
from .evidence import _verdict_evidence
from .verdict import answer, key_numbers, verdict

__all__ = ["markdown_table", "study_summary"]


def _read_csv(path, dtype=None, nrows=None):
    # hidden widths are text ("16", "16-16"): a guess per chunk mixes types and warns (DtypeWarning)
    return pd.read_csv(path, dtype={"hidden": str, **(dtype or {})}, nrows=nrows) if path.exists() else None


def _read_results(folder):
    path = folder / "results.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {folder} a study folder?")
    results = pd.read_csv(path, dtype={"run": str, "hidden": str, "reason": str, "status": str})
    for col in ("hidden", "reason"):
        if col in results.columns:
            results[col] = results[col].fillna("")
    return results


def _read_json(path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _selection(folder):
    """The study's own choice (``selection.json``), or None: the report formats what it is given, never selects."""
    return _read_json(folder / "selection.json")


def _selected_rows(table, selection):
    """Positions of the selected model's row(s) in a :func:`~analysis.study.tables.summary_table`."""
    if not selection or "bottleneck" not in selection:
        return set()
    hidden = format_hidden(selection.get("hidden"))
    match = (table["bottleneck"] == int(selection["bottleneck"])) & (table["hidden"] == hidden)
    if selection.get("model") in ("autoencoder", "pca"):
        match &= table["model"] == selection["model"]
    return set(np.flatnonzero(match.to_numpy()))


def markdown_table(heads, rows):
    """A Markdown table of strings."""
    def clean(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(clean, heads)) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(map(clean, row)) + " |" for row in rows]
    return "\n".join(lines)


def study_summary(study_dir, *, compact=False):
    """What a study folder's ``summary.md`` and ``report.html`` open with: the verdict and the key numbers.

    Parameters
    ----------
    study_dir : str or PathLike
        A study folder with at least ``results.csv``.
    compact : bool
        Key numbers narrow enough for a terminal (:func:`~analysis.report.verdict.key_numbers`'s ``compact``).

    Returns
    -------
    dict
        ``results`` (``results.csv``), ``table`` (:func:`~analysis.study.tables.summary_table` of it),
        ``heads`` and ``rows`` (:func:`~analysis.report.verdict.key_numbers`: the table as text), ``selection``
        (``selection.json`` or None), ``answer`` (:func:`~analysis.report.verdict.answer`: one sentence) and
        ``lines`` (the verdict, one sentence per item).

    Examples
    --------
    >>> markdown_table(*(study_summary("runs/digits")[k] for k in ("heads", "rows")))  # doctest: +SKIP
    """
    folder = Path(study_dir)
    results = _read_results(folder)
    table = summary_table(results)
    heads, rows = key_numbers(table, compact=compact)
    selection = _selection(folder)
    sentence = (selection or {}).get("sentence") or "No model was selected (no selection.json, or no run succeeded)."
    inputs = _verdict_evidence(folder)  # the table is at hand: summary_table is the slow part of verdict_inputs
    lines = ((verdict(table, selection, inputs["audit"], inputs["agreement"], history=inputs["history"],
                      scale_ratio=inputs["scale_ratio"], remedies=inputs["remedies"]) if len(table) else []) + ([] if selection else [sentence]))
    return {"results": results, "table": table, "heads": heads, "rows": rows, "selection": selection,
            "answer": answer(table, selection) if len(table) else sentence, "lines": lines}
