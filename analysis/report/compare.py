"""Several study folders side by side: their capacity curves, verdicts, selected models and latent similarity.

Reads what each folder's own report reads (``results.csv``, ``study.json``, ``selection.json`` and, when present,
``latent.csv``) and writes one page, ``report.html``, with its figures and a tidy ``compare.csv``. Studies are
grouped by their data (the content hash ``data_fingerprint`` in ``study.json``, and the scaling): studies on the
same data share axes, studies on different data are drawn in figures of their own and the page says so.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from autoenc.io import atomic_write

from ..study.runspec import format_hidden
from ..study.store import write_csv
from ..study.tables import INTERVAL_METHOD, ok_rows, summary_table
from .summary import _read_json, _read_results, _selected_rows, _selection
from .verdict import answer, key_numbers

__all__ = ["compare_studies"]

FIGURES_DIR = "figures"
# Per-run means of latent.csv shown when present (any other numeric column is kept in compare.csv).
LATENT_COLUMNS = ("cka_pca", "cca_pca", "cka_seeds", "cca_seeds", "latent_auc", "intrinsic_dim")


@dataclass(frozen=True)
class _Study:
    name: str
    folder: Path
    meta: dict
    results: pd.DataFrame
    table: pd.DataFrame
    selection: dict | None
    answer: str
    latent: pd.DataFrame | None

    @property
    def config(self):
        return self.meta.get("config", {})

    @property
    def data_key(self):
        """What makes two studies' numbers comparable: the same data (by content) scaled the same way."""
        ident = self.meta.get("data_fingerprint") or (self.meta.get("dataset", self.config.get("dataset")),
                                                      self.meta.get("n_samples"), self.meta.get("n_features"))
        return str(ident), self.config.get("scale", "none")

    def describe_data(self):
        meta, config = self.meta, self.config
        shape = " x ".join(str(meta[k]) for k in ("n_samples", "n_features") if k in meta)
        text = f"{meta.get('dataset', config.get('dataset', '?'))}" + (f" ({shape})" if shape else "")
        fingerprint = meta.get("data_fingerprint")
        text += f", data {fingerprint[:8]}" if fingerprint else ", no data fingerprint"
        return text + (f", scaled {config['scale']}" if config.get("scale", "none") != "none" else "")


def _check_folders(folders):
    if isinstance(folders, (str, os.PathLike)) or not hasattr(folders, "__iter__"):
        raise ValueError(f"folders must be a list of at least two study folders, got {folders!r}")
    paths = [Path(f) for f in folders]
    if len(paths) < 2:
        raise ValueError(f"folders must name at least two study folders to compare, got {len(paths)}")
    for path in paths:
        if not (path / "results.csv").is_file() or not (path / "study.json").is_file():
            raise ValueError(f"folders: {path} is not a study folder (no results.csv and study.json); "
                             "write one with autoenc-study")
    resolved = [p.resolve() for p in paths]
    twice = sorted({str(p) for p in paths if resolved.count(p.resolve()) > 1})
    if twice:
        raise ValueError(f"folders names the same study more than once: {', '.join(twice)}")
    return paths


def _check_out(out_dir, folders):
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    if any(out.resolve() == f.resolve() for f in folders):
        raise ValueError(f"out_dir {out} is one of the study folders: its report.html would be overwritten")
    existing = next(p for p in [out, *out.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"out_dir {out} cannot be written ({existing} is not a writable folder)")
    return out


def _names(folders):
    """Folder names, with as many parent folders as it takes to tell them apart."""
    for depth in range(1, max(len(f.resolve().parts) for f in folders) + 1):
        names = [str(Path(*f.resolve().parts[-depth:])) for f in folders]
        if len(set(names)) == len(names):
            return names
    return [str(f) for f in folders]


def _read_latent(folder, results):
    """``latent.csv`` as per-run means on unseen samples, with the run's model, bottleneck and hidden widths."""
    path = folder / "latent.csv"
    if not path.is_file():
        return None
    latent = pd.read_csv(path, dtype={"run": str, "hidden": str, "model": str})
    if "run" not in latent.columns:
        return None
    if "split" in latent.columns and (latent["split"] == "test").any():
        latent = latent[latent["split"] == "test"]
    ids = ("run", "model", "seed", "bottleneck", "hidden", "width", "depth", "n_params", "n_samples")
    numeric = [c for c in latent.columns if c not in ids and pd.api.types.is_numeric_dtype(latent[c])]
    if not numeric:
        return None
    means = latent.groupby("run", sort=False)[numeric].mean().reset_index()
    runs = results.drop_duplicates("run")[["run", "model", "bottleneck", "hidden", "n_params"]]
    return means.merge(runs, on="run", how="inner")


def _load(folder, name):
    results = _read_results(folder)
    table = summary_table(results)
    selection = _selection(folder)
    sentence = answer(table, selection) if len(table) else "No run succeeded."
    return _Study(name, folder, _read_json(folder / "study.json") or {}, results, table, selection, sentence,
                  _read_latent(folder, results))


def _groups(studies):
    """Studies by data, in the order first met: one list per distinct data."""
    groups = {}
    for study in studies:
        groups.setdefault(study.data_key, []).append(study)
    return list(groups.values())


def _curves(study, label):
    """The study's successful runs, one row per run and split (seen = train, unseen = test)."""
    data = ok_rows(study.results).copy()
    data["hidden"] = data["hidden"].map(format_hidden)
    keep = [c for c in ("run", "model", "bottleneck", "hidden", "depth", "seed", "n_params", "split", "mse",
                        "mse_clean", "noise_memorization", "membership_auc") if c in data.columns]
    out = data[keep].assign(study=study.name, data=label)
    if study.latent is not None:
        extra = [c for c in study.latent.columns if c not in ("model", "bottleneck", "hidden", "n_params")]
        out = out.merge(study.latent[extra], on="run", how="left")
    return out


def _tidy(curves):
    """``compare.csv``: means over seeds, one row per study x model x bottleneck x hidden widths x split."""
    keys = ["study", "data", "model", "bottleneck", "hidden", "n_params", "split"]
    values = [c for c in curves.columns if c not in (*keys, "run", "seed", "depth")
              and pd.api.types.is_numeric_dtype(curves[c])]
    grouped = curves.groupby(keys, sort=False, dropna=False)
    return grouped[values].mean().join(grouped.size().rename("n_seeds")).reset_index()


def _selected_row(study):
    """The study's key numbers of its selected model, as a dict from heading to text (its report's table row)."""
    table, selection = study.table, study.selection
    if not len(table):
        return {"model": "no successful run"}
    heads, rows = key_numbers(table)
    picked = sorted(_selected_rows(table, selection))
    return dict(zip(heads, rows[picked[0]])) if picked else {"model": "no model selected"}


def _selected_table(studies, labels):
    """One row per study; headings are the union of the studies' own (a study without noise has fewer)."""
    cells = [_selected_row(s) for s in studies]
    heads = list(dict.fromkeys(h for row in cells for h in row))
    return ["study", "data", *heads], [[s.name, labels[s.name], *(row.get(h, "") for h in heads)]
                                       for s, row in zip(studies, cells)]


def _latent_rows(study):
    """Latent similarity of the selected model and of the widest autoencoder at its bottleneck."""
    latent, selection = study.latent, study.selection or {}
    if latent is None or "bottleneck" not in selection:
        return []
    cols = [c for c in LATENT_COLUMNS if c in latent.columns] or \
        [c for c in latent.columns if c not in ("run", "model", "bottleneck", "hidden", "n_params")]
    same_k = latent[latent["bottleneck"] == int(selection["bottleneck"])]
    chosen = same_k[(same_k["model"] == selection.get("model", "autoencoder"))
                    & (same_k["hidden"].map(format_hidden) == format_hidden(selection.get("hidden")))]
    ae = same_k[same_k["model"] == "autoencoder"]
    widest = ae[ae["n_params"] == ae["n_params"].max()] if len(ae) else ae
    rows = []
    for what, runs in (("selected", chosen), ("widest", widest)):
        if len(runs):
            hidden = format_hidden(runs["hidden"].iloc[0]) or "-"
            rows.append((what, f"k={int(selection['bottleneck'])}, hidden {hidden}",
                         {c: runs[c].mean() for c in cols}))
    return rows


def compare_studies(folders, out_dir, *, dpi=100):
    """Put several study folders side by side in one report.

    Studies on the same data (equal ``data_fingerprint`` and scaling) share one figure, a colour per study;
    studies on different data get figures of their own, and the page says that their numbers are not comparable.

    Parameters
    ----------
    folders : sequence of str or PathLike
        At least two study folders written by ``autoenc-study`` (each with ``results.csv`` and ``study.json``).
    out_dir : str or PathLike
        Folder for ``report.html``, ``compare.csv`` and ``figures/``; created if missing; not one of ``folders``.
    dpi : int
        Resolution of the figures.

    Returns
    -------
    Path
        ``report.html`` in ``out_dir``.

    Examples
    --------
    >>> compare_studies(["runs/laptop", "runs/cluster"], "runs/compare")  # doctest: +SKIP
    PosixPath('runs/compare/report.html')
    """
    paths = _check_folders(folders)
    out = _check_out(out_dir, paths)
    from . import plots_compare  # matplotlib and seaborn load here, once the arguments are sound

    studies = [_load(path, name) for path, name in zip(paths, _names(paths))]
    groups = _groups(studies)
    labels = {s.name: (chr(ord("A") + i) if i < 26 else str(i + 1)) for i, g in enumerate(groups) for s in g}
    curves = pd.concat([_curves(s, labels[s.name]) for s in studies], ignore_index=True)
    write_csv(out / "compare.csv", _tidy(curves))
    palette = plots_compare.study_palette([s.name for s in studies])
    figures = []
    for i, group in enumerate(groups):
        names = [s.name for s in group]
        title = f"data {labels[names[0]]}: {group[0].describe_data()}"
        fig = plots_compare.plot_compared(curves[curves["study"].isin(names)], palette=palette, title=title)
        name = f"capacity-{labels[names[0]]}"
        figures.append((name, plots_compare.save(fig, out / FIGURES_DIR / f"{name}.png", dpi=dpi), names))
    return _write_page(out, studies, groups, labels, figures)


def _write_page(out, studies, groups, labels, figures):
    from ._report_text import figure_html, html_table, page

    esc = html.escape
    title = "Autoencoder studies compared"
    parts = [f"<h1>{esc(title)}</h1>"]
    if len(groups) > 1:
        parts.append('<p class="sentence">These studies ran on different data (' + "; ".join(
            f"data {labels[g[0].name]}: {esc(g[0].describe_data())}" for g in groups) + "). Each data set has its "
            "own figure, and errors, noise memorization and membership AUCs are comparable only within one.</p>")
    else:
        parts.append(f'<p class="sentence">All {len(studies)} studies ran on the same data '
                     f"({esc(studies[0].describe_data())}): their curves share the axes.</p>")
    heads = ["study", "data", "folder", "noise std", "seed", "grid", "runs", "created"]
    rows = [[s.name, labels[s.name], str(s.folder), str(s.config.get("noise_std", "")), str(s.config.get("seed", "")),
             _grid_words(s.config), str(s.results["run"].nunique()), str(s.meta.get("created", ""))[:19]]
            for s in studies]
    parts += ["<h2>The studies</h2>", '<div class="scroll">' + html_table(heads, rows) + "</div>",
              "<h2>Verdicts</h2>", '<ul class="verdict">' + "".join(
                  f"<li><b>{esc(s.name)}</b> (data {labels[s.name]}): {esc(s.answer)}</li>" for s in studies)
              + "</ul>"]
    parts += ["<h2>Selected models</h2>", f"<p>The simplest adequate model of each study, as its own report "
              f"chose it; means over seeds with {esc(INTERVAL_METHOD)}. Unseen = test split.</p>",
              '<div class="scroll">' + html_table(*_selected_table(studies, labels)) + "</div>"]
    parts += ["<h2>Capacity curves</h2>"]
    parts += [figure_html(name, path, _caption(names)) for name, path, names in figures]
    parts += ["<h2>Latent similarity</h2>", _latent_html(studies, labels)]
    text = page(title, parts)
    return atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _grid_words(config):
    parts = [f"{key} {','.join(map(str, config[key]))}" for key in ("bottlenecks", "widths", "depths", "seeds")
             if config.get(key)]
    if config.get("architecture", "mlp") != "mlp":
        parts.append(config["architecture"])
    return "; ".join(parts)


def _caption(names):
    from ._plotstyle import split_key

    return (f"{', '.join(names)}: one colour per study, one panel per bottleneck k; {split_key()}; band = spread "
            "(sd) over seeds; PCA with the same k as a dotted line in the study's colour, at its unseen value.")


def _latent_html(studies, labels):
    from ._report_text import html_table

    rows = [(s, *row) for s in studies for row in _latent_rows(s)]
    missing = [s.name for s in studies if s.latent is None]
    note = (f"<p>No latent.csv in {', '.join(map(html.escape, missing))}.</p>" if missing else "")
    if not rows:
        return note or "<p>No latent similarity to show.</p>"
    cols = list(dict.fromkeys(c for *_, values in rows for c in values))
    table = html_table(["study", "data", "model", "architecture", *cols],
                       [[s.name, labels[s.name], what, arch, *(_num(values.get(c)) for c in cols)]
                        for s, what, arch, values in rows])
    return ("<p>From each study's latent.csv, on unseen samples, mean over seeds: the selected model and the widest "
            "autoencoder at its bottleneck.</p>" + '<div class="scroll">' + table + "</div>" + note)


def _num(value):
    return "" if value is None or not np.isfinite(value) else f"{value:.3f}"
