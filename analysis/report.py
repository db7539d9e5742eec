"""A study folder's figures, one self-contained ``report.html`` (figures inlined) and a ``summary.md``.

Everything is read from the files the study runner wrote (``study.json``, ``results.csv`` and the optional
``samples.csv``, ``history.csv``, ``reconstructions.npz``, ``embeddings.csv``, ``memorization.csv``,
``selection.json``); nothing is retrained and torch is not imported.
"""
from __future__ import annotations

import base64
import html
import json
import re
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from autoenc.io import atomic_write

from . import plots
from .evidence import verdict_inputs
from .tables import INTERVAL_METHOD, summary_table
from .verdict import key_numbers, verdict

__all__ = ["draw_figures", "markdown_table", "study_summary", "write_report", "summary_table"]

FIGURES_DIR = "figures"
# reconstructions.npz: these keys are data about the samples; every other (n, d) array is one model's row.
_NPZ_RESERVED = ("clean", "noisy", "image_shape", "titles", "sample")
_CAPTIONS = {
    "capacity": "Seen (dashed) and unseen (solid) reconstruction error against model size; bands: ±1 sd over seeds; "
                "dotted lines: PCA with the same bottleneck.",
    "capacity_clean": "The same against the clean signal: a model that denoises beats its own input here.",
    "gap": "Generalization gap (unseen minus seen error). Above zero the model does better on what it saw.",
    "gap_heatmap": "Mean gap over seeds for each bottleneck and hidden width.",
    "memorization": "Share of the injected training noise each model reproduces, seen vs unseen. Dash-dotted: what "
                    "the rank-k PCA projection keeps of the noise (k/d for isotropic noise); 1 = the identity map.",
    "membership": "How well the reconstruction error tells training samples from unseen ones (0.5 = not at all).",
    "learning_curves": "Training (dashed) and validation (solid) loss per epoch.",
    "error_distributions": "Per-sample error distributions of the run with the largest gap, and of PCA.",
    "reconstructions": "Unseen samples, their noisy inputs, and each model's reconstruction.",
    "latent": "2-D embedding of the latent codes: colour = label, dots = seen, crosses = unseen.",
    "memorization_scores": "Per-sample memorization scores (error when left out minus error when trained on).",
    "memorization_curves": "Noise memorization of seen (dashed) and validation (solid) samples over training, per "
                           "width; the star marks the epoch of lowest clean validation error, what early stopping "
                           "on the clean signal would keep.",
    "landscape": "Reconstruction loss of seen and unseen samples along a filter-normalized random direction in "
                 "weight space around the trained weights (Li et al. 2018), for the selected and the widest model.",
    "attractors": "Spectral radius of the reconstruction map's Jacobian at seen and unseen samples; an attractor "
                  "(radius < 1, and iterating the map from a perturbed sample returns to it) is a stored sample.",
    "double_descent": "Test error against the clean signal over hidden width on 100 training samples trained to "
                      "near zero error; the dashed line is the interpolation threshold (parameters = n x d), dotted "
                      "PCA. A peak near the threshold is double descent.",
    "memorized_samples": "The most (top) and least (bottom) memorized samples of the widest autoencoder.",
    "audit": "Membership audit on log-log axes: true-positive rate of each attack against its false-positive rate "
             "(the diagonal is chance); LiRA and RMIA calibrate each sample with reference models trained with "
             "and without it, the loss threshold does not.",
}
_HOW_TO_READ = (
    "<p><b>Seen</b> samples are the training split the model was fitted on; <b>unseen</b> samples are the held-out "
    "test split. A model that learned the structure of the data reconstructs both about equally well; a model that "
    "stored its training samples reconstructs the seen ones much better (a positive <b>gap</b>).</p>"
    "<p><b>PCA</b> with the same number of components k is the baseline: the best linear k-dimensional code, "
    "fitted on the same training inputs. An autoencoder that does not beat it on unseen data has not earned its "
    "extra parameters.</p>"
    "<p><b>Noise memorization</b> measures how much of the noise injected into each input comes back in its "
    "reconstruction: 0 for a perfect denoiser, 1 for the identity map; the rank-k PCA projection keeps a share the "
    "table lists (k/d when the noise is the same on every feature). Seen well above unseen means the network "
    "stored its training samples' noise. A negative value means the reconstruction moves against the noise: the "
    "model's output is pulled away from the clean signal opposite to the noise, which happens when it fits the "
    "data badly (unscaled features of very different sizes are the usual cause: try <code>--scale standard</code>)."
    "</p>"
    "<p><b>Choosing a model.</b> Held-out error against the noisy input cannot penalize copying the noise (it keeps "
    "falling as a model reproduces more of it), so the simplest adequate model is chosen on the validation error "
    "against the clean signal when it is known, else on SURE (which needs the noise level), else on the error of "
    "denoising fresh noise; adequate means within one standard error over seeds of the best.</p>"
    "<p><b>Membership AUC</b> is the chance that a random training sample has a lower error than a random unseen "
    "one: 0.5 means the error leaks nothing about who was in the training set; 1 means it gives them all away.</p>"
)
def _read_csv(path, dtype=None):
    # hidden widths are text ("16", "16-16"): a guess per chunk mixes types and warns (DtypeWarning)
    return pd.read_csv(path, dtype={"hidden": str, **(dtype or {})}) if path.exists() else None


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


def _load_reconstructions(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    clean = arrays["clean"]
    models = {k: v for k, v in arrays.items() if k not in _NPZ_RESERVED and np.shape(v) == np.shape(clean)}
    titles = [str(t) for t in arrays["titles"]] if "titles" in arrays else None
    return clean, arrays.get("noisy"), models, tuple(int(s) for s in arrays["image_shape"]), titles


def _has_values(frame, column):
    return frame is not None and column in frame.columns and frame[column].notna().any()


def _single(draw, figsize=(8.0, 4.6)):
    def make():
        fig, ax = plt.subplots(figsize=figsize)
        draw(ax)
        return fig
    return make


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
        plan.append(("learning_curves", _single(lambda ax: plots.plot_learning_curves(history, ax=ax))))
    if _has_values(history, "noise_memorization_val"):
        k = history.dropna(subset=["noise_memorization_val"])["bottleneck"].max()
        plan.append(("memorization_curves", _single(lambda ax: _curves(history[history["bottleneck"] == k], k, ax))))
    landscape = _read_csv(folder / "landscape.csv", dtype={"run": str})
    if landscape is not None and len(landscape):
        plan.append(("landscape", lambda: _per_run(landscape, "plot_loss_slice", "Loss along a random direction")))
    sweep = _read_csv(folder / "double_descent.csv")
    if sweep is not None and len(sweep):
        plan.append(("double_descent", _single(lambda ax: _double_descent(sweep, ax))))
    found = _read_csv(folder / "attractors.csv", dtype={"run": str})
    if found is not None and len(found):
        plan.append(("attractors", lambda: _per_run(found, "plot_attractors", "Attractors")))
    samples = _read_csv(folder / "samples.csv", dtype={"run": str})
    if samples is not None and len(samples):
        plan.append(("error_distributions", lambda: plots.plot_error_distributions(samples)))
    if (folder / "reconstructions.npz").exists():
        clean, noisy, models, shape, titles = _load_reconstructions(folder / "reconstructions.npz")
        plan.append(("reconstructions",
                     lambda: plots.plot_reconstructions(clean, noisy, models, shape, titles=titles)))
    embeddings = _read_csv(folder / "embeddings.csv", dtype={"run": str})
    if embeddings is not None and len(embeddings):
        runs = list(dict.fromkeys(embeddings["run"])) if "run" in embeddings.columns else [None]
        for run in runs:
            name = "latent" if run is None else "latent_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run)
            plan.append((name, _single(lambda ax, run=run: plots.plot_latent(embeddings, run=run, ax=ax),
                                       (7.0, 5.5))))
    memorization = _read_csv(folder / "memorization.csv", dtype={"run": str})
    if memorization is not None and len(memorization):
        plan.append(("memorization_scores",
                     _single(lambda ax: plots.plot_memorization_scores(memorization, ax=ax), (7.0, 4.2))))
    if (folder / "memorized_samples.npz").exists():
        plan.append(("memorized_samples", lambda: _most_memorized(folder / "memorized_samples.npz")))
    roc, audit = _read_csv(folder / "audit.csv", dtype={"run": str}), _read_csv(folder / "audit_summary.csv",
                                                                               dtype={"run": str})
    if roc is not None and audit is not None and len(roc):
        for run in dict.fromkeys(roc["run"]):
            name = "audit_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run)
            plan.append((name, _single(lambda ax, run=run: _audit_roc(roc, audit, run, ax), (6.5, 5.0))))
    return plan


def _curves(history, k, ax):
    from .plots_dynamics import plot_memorization_curves

    plot_memorization_curves(history, ax=ax)
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


def _audit_roc(roc, audit, run, ax):
    from .plots_audit import plot_audit_roc

    plot_audit_roc(roc[roc["run"] == run], summary=audit[audit["run"] == run], ax=ax)
    targets = audit.loc[audit["run"] == run, "targets"].iloc[0]
    ax.set_title(f"Membership audit of {targets}", fontsize="small")
    return ax


def _write_text(path, text):
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def draw_figures(study_dir, *, dpi=110):
    """Draw every figure whose inputs the study folder holds into ``figures/<name>.png``.

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
    drawn = {}
    for name, make in _figure_plan(folder):
        before = set(plt.get_fignums())
        try:
            fig = make()
            path = folder / FIGURES_DIR / f"{name}.png"
            atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
            drawn[name] = path
        except (ValueError, KeyError) as exc:  # inputs present but unusable: report the rest
            warnings.warn(f"figure {name!r} skipped: {exc}", RuntimeWarning, stacklevel=2)
        finally:
            for num in set(plt.get_fignums()) - before:  # ours only, even when drawing failed halfway
                plt.close(num)
    return drawn


def _html_table(heads, rows, highlight=()):
    esc = html.escape
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr>"]
    for i, row in enumerate(rows):
        cls = ' class="selected"' if i in highlight else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def markdown_table(heads, rows):
    """A Markdown table of strings, as ``summary.md`` shows the key numbers (``|`` in a cell escaped)."""
    def clean(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(clean, heads)) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(map(clean, row)) + " |" for row in rows]
    return "\n".join(lines)


def _selection(folder):
    """The study's own choice (``selection.json``), or None: the report formats what it is given, never selects."""
    return _read_json(folder / "selection.json")


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


def _selected_rows(table, selection):
    if not selection or "bottleneck" not in selection:
        return set()
    hidden = str(selection.get("hidden", "") or "")
    hidden = "-".join(re.findall(r"\d+", hidden)) if hidden else hidden  # "(256, 128)" and "256-128" alike
    match = (table["bottleneck"] == int(selection["bottleneck"])) & (table["hidden"] == hidden)
    if selection.get("model") in ("autoencoder", "pca"):
        match &= table["model"] == selection["model"]
    return set(np.flatnonzero(match.to_numpy()))


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.scroll{overflow-x:auto}ul.verdict li{margin:0.4em 0}
table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}tr.selected{background:#fff3c4;
font-weight:bold}figure{margin:1.5em 0}figure img{max-width:100%}figcaption{color:#555;font-size:0.9em}
pre{background:#f6f6f6;padding:0.8em;overflow-x:auto;font-size:0.85em}.sentence{font-size:1.15em;background:#eef6ee;
padding:0.6em 0.9em;border-left:4px solid #4a4}"""


def study_summary(study_dir):
    """What a study folder's ``summary.md`` and ``report.html`` open with: the verdict and the key numbers.

    Parameters
    ----------
    study_dir : str or PathLike
        A study folder with at least ``results.csv``.

    Returns
    -------
    dict
        ``results`` (``results.csv``), ``table`` (:func:`analysis.tables.summary_table` of it), ``heads`` and
        ``rows`` (:func:`analysis.verdict.key_numbers`: the table as text), ``selection`` (``selection.json`` or
        None) and ``lines`` (the verdict, one sentence per item).

    Examples
    --------
    >>> markdown_table(*(study_summary("runs/digits")[k] for k in ("heads", "rows")))  # doctest: +SKIP
    """
    folder = Path(study_dir)
    results = _read_results(folder)
    table = summary_table(results)
    heads, rows = key_numbers(table)
    selection = _selection(folder)
    sentence = (selection or {}).get("sentence") or "No model was selected (no selection.json, or no run succeeded)."
    inputs = verdict_inputs(folder)  # the same inputs the command line's verdict reads
    lines = ((verdict(table, selection, inputs["audit"], inputs["agreement"], history=inputs["history"],
                      scale_ratio=inputs["scale_ratio"]) if len(table) else []) + ([] if selection else [sentence]))
    return {"results": results, "table": table, "heads": heads, "rows": rows, "selection": selection,
            "lines": lines}


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
    summary = study_summary(folder)
    results, table, heads, rows, selection, lines = (summary[k] for k in ("results", "table", "heads", "rows",
                                                                        "selection", "lines"))
    meta = _read_json(folder / "study.json") or {}
    figures = draw_figures(folder, dpi=dpi)
    failed = _failed(results)
    esc = html.escape
    config = meta.get("config", {})
    title = f"Autoencoder study: {config.get('dataset', folder.name)}"
    facts = [f"{meta[k]} {k.removeprefix('n_')}" for k in ("n_samples", "n_features") if k in meta]
    if "noise_std" in config:
        facts.append(f"noise std {config['noise_std']}")
    if "created" in meta:
        facts.append(f"created {meta['created']}")

    parts = [f"<h1>{esc(title)}</h1>", f"<p>{esc(', '.join(facts))}</p>" if facts else "",
             "<h2>Verdict</h2>", '<ul class="verdict">' + "".join(f"<li>{esc(line)}</li>" for line in lines)
             + "</ul>"]
    parts += ["<h2>Key numbers</h2>", f"<p>Means over the successful seeds with {esc(INTERVAL_METHOD)}; unseen = "
              "test split. PCA rows are the baseline for the autoencoders below them; the selected model is "
              "highlighted.</p>",
              '<div class="scroll">' + _html_table(heads, rows, _selected_rows(table, selection)) + "</div>",
              "<h2>How to read this</h2>", _HOW_TO_READ, "<h2>Figures</h2>"]
    for name, path in figures.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = _CAPTIONS.get(name.split("_")[0] if name.startswith(("latent", "audit")) else name, "")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(name)}">'
                     f"<figcaption>{esc(name)}: {esc(caption)}</figcaption></figure>")
    parts.append("<h2>Failed runs</h2>")
    if len(failed):
        parts.append(_html_table(*_plain_rows(failed)))
    else:
        parts.append("<p>none</p>")
    parts += ["<h2>Configuration</h2>", "<details><summary>the exact study config</summary>"
              f"<pre>{esc(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre></details>",
              "<h2>Versions</h2>", _html_table(["package", "version"],
                                               [[str(k), str(v)] for k, v in meta.get("versions", {}).items()])]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(p for p in parts if p) + "\n</body></html>\n")
    report = _write_text(folder / "report.html", page)

    md = [f"# {title}", "", "## Verdict", ""] + [f"- {line}" for line in lines] + [""]
    md += ["## Key numbers", "",
          f"Means over successful seeds with {INTERVAL_METHOD}; unseen = test split.", "", markdown_table(heads, rows),
          "", "## Failed runs", ""]
    md += [f"- `{r.run}`: {getattr(r, 'reason', '') or getattr(r, 'status', '')}" for r in failed.itertuples()] \
        or ["none"]
    md += ["", "## Figures", ""] + [f"- [{name}]({FIGURES_DIR}/{path.name})" for name, path in figures.items()]
    _write_text(folder / "summary.md", "\n".join(md) + "\n")
    return report
