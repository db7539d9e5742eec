"""A study folder's figures, one self-contained ``report.html`` (figures inlined) and a ``summary.md``.

Everything is read from the files the study runner wrote (``study.json``, ``results.csv`` and the optional
``samples.csv``, ``history.csv``, ``reconstructions.npz``, ``embeddings.csv``, ``memorization.csv``,
``selection.json``); nothing is retrained and torch is not imported.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from autoenc.io import atomic_write

from . import plots, plots_runs
from ._drawing import FIGURES_DIR, Drawing, default_processes
from .remedies import plot_remedies, recommend, remedy_rows
from ._latent_plan import latent_plan, latent_signal
from ._report_text import caption, figure_html, glossary_html, page
from ._report_text import html_table as _html_table
from ..study.runspec import RunSpec, format_hidden
from ..study.tables import INTERVAL_METHOD
from .summary import _read_csv, _read_json, _read_results, _selected_rows, markdown_table, study_summary
from ._plotstyle import single as _single

__all__ = ["draw_figures", "write_report"]

# reconstructions.npz: these keys are data about the samples; every other (n, d) array is one model's row.
_NPZ_RESERVED = ("clean", "noisy", "image_shape", "titles", "sample")
def _load_reconstructions(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    clean = arrays["clean"]
    models = {k: v for k, v in arrays.items() if k not in _NPZ_RESERVED and np.shape(v) == np.shape(clean)}
    titles = [str(t) for t in arrays["titles"]] if "titles" in arrays else None
    return clean, arrays.get("noisy"), models, tuple(int(s) for s in arrays["image_shape"]), titles


def _has_values(frame, column):
    return frame is not None and column in frame.columns and frame[column].notna().any()


def _grid_runs(frame):
    """The rows of the grid's runs (the remedies have their own section)."""
    if frame is None or "run" not in frame.columns:
        return frame
    remedy = {run: bool(RunSpec.from_run(run).remedy) for run in frame["run"].unique()}  # each id parsed once
    return frame[~frame["run"].map(remedy).astype(bool)]


def _figure_plan(folder):
    """(name, make_figure) for every figure whose inputs are in ``folder``."""
    results = _read_results(folder)
    plan = [("capacity", _single(lambda ax: plots.plot_capacity(results, ax=ax)))]
    if _has_values(results, "mse_clean") and not np.allclose(results["mse_clean"].fillna(0), results["mse"].fillna(0)):
        plan.append(("capacity_clean", _single(lambda ax: plots.plot_capacity(results, metric="mse_clean", ax=ax))))
    plan.append(("gap", _single(lambda ax: plots.plot_gap(results, ax=ax))))
    if _has_values(results, "width"):
        plan.append(("gap_heatmap", _single(lambda ax: plots.plot_gap(results, kind="heatmap", ax=ax), (6.5, 4.6))))
    if _has_values(results, "noise_memorization"):
        plan.append(("memorization", _single(lambda ax: plots.plot_memorization(results, ax=ax))))
    if _has_values(results, "membership_auc"):
        plan.append(("membership", _single(lambda ax: plots.plot_membership(results, ax=ax))))
    history = _read_csv(folder / "history.csv", dtype={"run": str})
    if history is not None and len(history):
        plan.append(("learning_curves", _single(lambda ax: plots_runs.plot_learning_curves(history, ax=ax))))
    if _has_values(history, "noise_memorization_val"):
        k = history.dropna(subset=["noise_memorization_val"])["bottleneck"].max()
        minima = _minima(results)
        plan.append(("memorization_curves", _single(lambda ax: _curves(history[history["bottleneck"] == k], minima, k,
                                                                        ax))))
    landscape = _read_csv(folder / "landscape.csv", dtype={"run": str})
    if landscape is not None and len(landscape):
        plan.append(("landscape", lambda: _per_run(landscape, "plot_loss_slice", "Loss along a random direction")))
    sweep = _read_csv(folder / "double_descent.csv")
    if sweep is not None and len(sweep):
        plan.append(("double_descent", _single(lambda ax: _double_descent(sweep, ax))))
    found = _read_csv(folder / "attractors.csv", dtype={"run": str})
    if found is not None and len(found):
        plan.append(("attractors", lambda: _per_run(found, "plot_attractors", "Attractors")))
    head = _read_csv(folder / "samples.csv", dtype={"run": str}, nrows=1)  # the whole file is read by its drawer
    if head is not None and len(head):
        plan.append(("error_distributions", lambda: plots_runs.plot_error_distributions(
            _read_csv(folder / "samples.csv", dtype={"run": str}))))
    if (folder / "reconstructions.npz").exists():
        clean, noisy, models, shape, titles = _load_reconstructions(folder / "reconstructions.npz")
        plan.append(("reconstructions",
                     lambda: plots_runs.plot_reconstructions(clean, noisy, models, shape, titles=titles)))
    embeddings = _read_csv(folder / "embeddings.csv", dtype={"run": str})
    if embeddings is not None and len(embeddings):
        method, scores = _latent_meta(folder)
        for name, run in _latent_figures(embeddings).items():
            plan.append((name, _single(lambda ax, run=run: _latent(embeddings, run, method, scores.get(run), ax),
                                       (7.0, 5.5))))
    plan += latent_plan(folder)
    remedies = _read_csv(folder / "remedy_summary.csv", dtype={"target": str, "remedy": str})
    if remedies is not None and len(remedies):
        plan.append(("remedies", _single(lambda ax: plot_remedies(remedies, ax=ax), (8.0, 5.5))))
    memorization = _grid_runs(_read_csv(folder / "memorization.csv", dtype={"run": str}))
    if memorization is not None and len(memorization):
        plan.append(("memorization_scores",
                     _single(lambda ax: plots_runs.plot_memorization_scores(memorization, ax=ax), (7.0, 4.2))))
    if (folder / "memorized_samples.npz").exists():
        plan.append(("memorized_samples", lambda: _most_memorized(folder / "memorized_samples.npz")))
    roc, audit = (_grid_runs(_read_csv(folder / name, dtype={"run": str})) for name in ("audit.csv",
                                                                                      "audit_summary.csv"))
    if roc is not None and audit is not None and len(roc):
        for run in dict.fromkeys(roc["run"]):
            name = "audit_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run)
            plan.append((name, _single(lambda ax, run=run: _audit_roc(roc, audit, results, run, ax), (9.0, 5.0))))
    return plan


def _latent_figures(embeddings):
    """Figure name -> run of each latent map."""
    runs = list(dict.fromkeys(embeddings["run"])) if "run" in embeddings.columns else [None]
    return {("latent" if run is None else "latent_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run)): run for run in runs}


def _latent_meta(folder):
    """The map's method (the study's ``latent`` setting) and ``latent.json``'s scores per run."""
    method = ((_read_json(folder / "study.json") or {}).get("config") or {}).get("latent")
    scores = _read_json(folder / "latent.json") or {}
    by_run = {entry["run"]: entry for entry in scores.values() if isinstance(entry, dict) and "run" in entry}
    return (method if method in ("pca", "umap") else None), by_run


def _latent(embeddings, run, method, scores, ax):
    plots_runs.plot_latent(embeddings, run=run, method=method, ax=ax)
    facts = [f"trustworthiness {scores['trustworthiness']:.3f}" if scores and "trustworthiness" in scores else "",
             f"kNN accuracy {scores['knn_accuracy']:.1%}" if scores and "knn_accuracy" in scores else ""]
    if any(facts):
        ax.set_title(ax.get_title() + "\n" + ", ".join(f for f in facts if f), fontsize="medium")
    return ax


def _minima(results):
    """Each run's epoch of lowest clean validation error, as the study recorded it in ``results.csv``."""
    if "best_clean_epoch" not in results.columns:
        return None
    rows = results.dropna(subset=["best_clean_epoch"]).drop_duplicates("run")
    return pd.DataFrame({"run": rows["run"], "epoch": rows["best_clean_epoch"].astype(int)})


def _curves(history, minima, k, ax):
    from .plots_dynamics import plot_memorization_curves

    plot_memorization_curves(history, minima=minima, ax=ax)
    ax.set_title(f"Noise memorization over training, autoencoders with k={int(k)}", fontsize="small")
    return ax


def _double_descent(sweep, ax):
    from .plots_dynamics import plot_double_descent

    plot_double_descent(sweep, metric="mse_clean", ax=ax)
    ax.set_title("Width sweep past the interpolation threshold (100 training samples)", fontsize="small")
    return ax


def _per_run(frame, function, title):
    """One panel per run (the selected and the widest autoencoder), each titled with its run id."""
    from . import plots_dynamics

    runs = list(dict.fromkeys(frame["run"]))
    fig, axes = plt.subplots(1, len(runs), figsize=(6.0 * len(runs), 4.4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        getattr(plots_dynamics, function)(frame[frame["run"] == run].drop(columns="run"), ax=ax)
        ax.set_title(f"{title}: {run}", fontsize="small")
    fig.tight_layout()
    return fig


def _most_memorized(path):
    from .plots_audit import plot_most_memorized

    with np.load(path, allow_pickle=False) as npz:
        X, samples, scores = npz["X"], npz["sample"], npz["score"]
        shape, run = tuple(npz["image_shape"]), str(npz["run"])
    frame = pd.DataFrame({"sample": np.arange(len(X)), "score": scores})
    fig = plot_most_memorized(X, frame, shape, n=len(X) // 2, sample_ids=samples)
    fig.suptitle(f"{run}: samples by memorization (error when out − error when in)", fontsize="small")
    return fig


def _audit_roc(roc, audit, results, run, ax):
    from .plots_audit import plot_audit_roc

    mine = audit[audit["run"] == run]
    plot_audit_roc(roc[roc["run"] == run], summary=mine, ax=ax)
    ax.set_title(f"Membership audit: {_describe(results, run)}\n{_pooled(mine)}", fontsize="small")
    return ax


def _describe(results, run):
    """``autoencoder k=16, hidden 256`` for a run id (the id itself when results does not know it)."""
    row = results[results["run"] == run].head(1)
    if row.empty or "bottleneck" not in row.columns:
        return str(run)
    row = row.iloc[0]
    model = str(row.get("model", "autoencoder"))
    hidden = format_hidden(row.get("hidden"))
    return f"{model} k={int(row['bottleneck'])}" + (f", hidden {hidden}" if hidden else "")


def _pooled(summary):
    """``3 seeds pooled, 24 reference models`` from an audit summary's counts."""
    first = summary.iloc[0] if len(summary) else {}
    parts = []
    if "n_targets" in summary.columns and pd.notna(first["n_targets"]):
        n = int(first["n_targets"])
        parts.append(f"{n} seeds pooled" if n > 1 else "1 seed")
    if "n_references" in summary.columns and pd.notna(first["n_references"]):
        parts.append(f"{int(first['n_references'])} reference models")
    return ", ".join(parts)


def _captions(folder, figures):
    """Figure name -> caption; the latent maps' name their method and carry latent.json's scores."""
    embeddings = _read_csv(folder / "embeddings.csv", dtype={"run": str})
    runs = _latent_figures(embeddings) if embeddings is not None and len(embeddings) else {}
    method, scores = _latent_meta(folder) if runs else (None, {})
    signal = latent_signal(folder)
    return {name: caption(name, method=method, scores=scores.get(runs.get(name)), run=runs.get(name), signal=signal)
            for name in figures}


def _write_text(path, text):
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def draw_figures(study_dir, *, dpi=110):
    """Draw every figure whose inputs the study folder holds into ``figures/<name>.png``.

    On Linux the figures are shared out to processes forked from this one, one per core (at most four); the files
    are the ones a single process draws, pixel for pixel.

    Parameters
    ----------
    study_dir : str or PathLike
        A study folder with at least ``results.csv``.
    dpi : int
        Resolution of the PNGs.

    Returns
    -------
    dict of str to Path
        Figure name -> PNG path, in report order. A figure that cannot be drawn from the data (say, every run
        diverged) is skipped with a warning.

    Examples
    --------
    >>> paths = draw_figures("runs/digits")  # doctest: +SKIP
    """
    folder = Path(study_dir)
    plan = _figure_plan(folder)
    with Drawing(plan, folder, dpi, default_processes(len(plan))) as drawing:
        return drawing.finish()


def _failed(results):
    if "status" not in results.columns:
        return pd.DataFrame(columns=["run", "reason"])
    bad = results[results["status"].fillna("ok") != "ok"].drop_duplicates("run")
    cols = [c for c in ("run", "model", "bottleneck", "hidden", "seed", "epochs", "status", "reason")
            if c in bad.columns]
    return bad[cols].reset_index(drop=True)


def _plain_rows(frame):
    def fmt(v):
        if isinstance(v, float) and np.isnan(v):
            return ""
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    return list(map(str, frame.columns)), [[fmt(v) for v in row] for row in frame.itertuples(index=False)]


def write_report(study_dir, *, dpi=110):
    """Draw the figures, then write ``report.html`` (self-contained) and ``summary.md`` into the study folder.

    Parameters
    ----------
    study_dir : str or PathLike
        A study folder with at least ``results.csv``.
    dpi : int
        Resolution of the figures.

    Returns
    -------
    Path
        ``report.html``.

    Examples
    --------
    >>> write_report("runs/digits")  # doctest: +SKIP
    PosixPath('runs/digits/report.html')
    """
    folder = Path(study_dir)
    plan = _figure_plan(folder)
    with Drawing(plan, folder, dpi, default_processes(len(plan))) as drawing:
        summary = study_summary(folder)  # the words, while the helpers draw
        figures = drawing.finish()
    results, table, heads, rows, selection, lines, the_answer = (
        summary[k] for k in ("results", "table", "heads", "rows", "selection", "lines", "answer"))
    meta = _read_json(folder / "study.json") or {}
    failed = _failed(results)
    esc = html.escape
    config = meta.get("config", {})
    title = f"Autoencoder study: {config.get('dataset', folder.name)}"
    facts = [f"{meta[k]} {k.removeprefix('n_')}" for k in ("n_samples", "n_features") if k in meta]
    if "noise_std" in config:
        facts.append(f"noise std {config['noise_std']}")
    if "created" in meta:
        facts.append(f"created {meta['created']}")

    captions = _captions(folder, figures)
    lead = next((name for name in ("memorization", "capacity") if name in figures), None)
    parts = [f"<h1>{esc(title)}</h1>", f"<p>{esc(', '.join(facts))}</p>" if facts else "",
             f'<p class="sentence">{esc(the_answer)}</p>',
             figure_html(lead, figures[lead], captions[lead]) if lead else "",
             "<h2>The evidence</h2>", '<ul class="verdict">' + "".join(f"<li>{esc(line)}</li>" for line in lines)
             + "</ul>", "<h2>How to read this</h2>", glossary_html()]
    parts += ["<h2>Key numbers</h2>", f"<p>Means over the successful seeds with {esc(INTERVAL_METHOD)}. Unseen = "
              "test split. PCA rows are the baseline for the autoencoders below them; the selected model is "
              "highlighted.</p>",
              '<div class="scroll">' + _html_table(heads, rows, _selected_rows(table, selection)) + "</div>",
              "<h2>Figures</h2>"]
    parts += [figure_html(name, path, captions[name]) for name, path in figures.items()
              if name not in (lead, "remedies")]
    remedies = _read_csv(folder / "remedy_summary.csv", dtype={"target": str, "remedy": str})
    if remedies is not None and len(remedies):
        parts[parts.index("<h2>Figures</h2>"):parts.index("<h2>Figures</h2>")] = [
            "<h2>What to do about it</h2>", '<ul class="verdict">' + "".join(
                f"<li>{esc(line)}</li>" for line in recommend(remedies)) + "</ul>",
            figure_html("remedies", figures["remedies"], captions["remedies"]) if "remedies" in figures else "",
            '<div class="scroll">' + _html_table(*remedy_rows(remedies)) + "</div>"]
    parts.append("<h2>Failed runs</h2>")
    if len(failed):
        parts.append(_html_table(*_plain_rows(failed)))
    else:
        parts.append("<p>none</p>")
    parts += ["<h2>Configuration</h2>", "<details><summary>the exact study config</summary>"
              f"<pre>{esc(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre></details>",
              "<h2>Versions</h2>", _html_table(["package", "version"],
                                               [[str(k), str(v)] for k, v in meta.get("versions", {}).items()])]
    report = _write_text(folder / "report.html", page(title, parts))

    md = [f"# {title}", "", the_answer, "", "## The evidence", ""] + [f"- {line}" for line in lines] + [""]
    if remedies is not None and len(remedies):
        md += ["## What to do about it", ""] + [f"- {line}" for line in recommend(remedies)] + [
            "", markdown_table(*remedy_rows(remedies)), ""]
    md += ["## Key numbers", "",
          f"Means over successful seeds with {INTERVAL_METHOD}; unseen = test split.", "", markdown_table(heads, rows),
          "", "## Failed runs", ""]
    md += [f"- `{r.run}`: {getattr(r, 'reason', '') or getattr(r, 'status', '')}" for r in failed.itertuples()] \
        or ["none"]
    md += ["", "## Figures", ""] + [f"- [{name}]({FIGURES_DIR}/{path.name})" for name, path in figures.items()]
    _write_text(folder / "summary.md", "\n".join(md) + "\n")
    return report
