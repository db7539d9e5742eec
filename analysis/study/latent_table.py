"""The study's latent measures: ``latent.csv`` (codes against PCA and across seeds, latent membership, intrinsic
dimension, one row per run) and ``paths.npz`` (decoded straight lines in the code between unseen samples).

Everything is read back from the committed models in the study folder; measured on the unseen (test) split.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from autoenc import encode, load

from ._parallel import Task
from .runspec import format_hidden
from .store import write_csv, write_npz

__all__ = ["LATENT_COLUMNS", "latent_table", "latent_tasks", "path_arrays", "write_latent", "write_paths"]

# latent.csv, one row per successful run (autoencoders and PCA), every measure on the unseen (test) split.
LATENT_COLUMNS = {
    "run": "the run id (results.csv)",
    "model": "autoencoder or pca",
    "bottleneck": "k, the code's dimension",
    "hidden": "hidden widths ('' for PCA)",
    "seed": "the run's seed (empty for PCA)",
    "n_params": "parameters",
    "n_samples": "unseen samples the measures use",
    "cka_pca": "linear CKA between the codes and PCA's scores at the same k (1 = the same up to a rotation)",
    "cca_pca": "mean squared canonical correlation with PCA's scores (1 = an invertible linear map of them)",
    "cka_null": "cka_pca expected with PCA's scores in random sample order (exact mean over permutations): the level "
                "of a code unrelated to PCA's",
    "cca_null": "cca_pca expected with the samples in random order (max(rank) / (n - 1)): an unrelated code's level",
    "cka_seeds": "mean linear CKA with the other seeds of the same architecture (empty with one seed)",
    "cca_seeds": "mean squared canonical correlation with the other seeds of the same architecture",
    "max_angle_pca": "largest principal angle (degrees) between a linear decoder's column space and PCA's "
                     "components; empty for nonlinear decoders",
    "latent_auc": "membership AUC of minus the distance to the nearest training code (itself left out), seen vs "
                  "unseen",
    "latent_auc_low": "its 95% interval (DeLong, logit scale), low end",
    "latent_auc_high": "its 95% interval, high end",
    "membership_auc": "the reconstruction-error membership AUC of the same run (results.csv)",
    "intrinsic_dim": "TwoNN intrinsic dimension of the unseen codes (of at most 2,000 of them, a fixed random set)",
    "data_intrinsic_dim": "TwoNN intrinsic dimension of the data's unseen samples, the same set (the same on every "
                          "row)",
    "data_intrinsic_dim_mle": "MLE intrinsic dimension of the same samples (the same on every row)",
    "data_signal": "what the data's dimension is of: 'clean' (the signal before the injected noise) or 'inputs' "
                   "(the inputs as given: the study knows no clean signal)",
}
ARCHITECTURE = ("model", "bottleneck", "hidden", "depth", "kind", "architecture", "remedy")  # all but the seed


def _safe(measure, *args, **kwargs):
    """A measure that is undefined for these codes (constant, too few distinct) is NaN, not a failed study."""
    try:
        return measure(*args, **kwargs)
    except ValueError:
        return np.nan


def _decoder_matrix(model):
    """The decoder's weight matrix (features x k) when it is linear (``linear=True`` or no hidden layer), else
    None; read off as decode(e_i) - decode(0), so it holds for any stack of linear layers."""
    config = model.config
    if not (config.linear or (config.kind == "mlp" and not config.hidden)):
        return None
    p = next(model.parameters())
    with torch.no_grad():
        out = model.decode(torch.cat([torch.zeros(1, config.bottleneck), torch.eye(config.bottleneck)])
                           .to(dtype=p.dtype, device=p.device)).double().cpu().numpy()
    return (out[1:] - out[:1]).T


def _runs(results):
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    return ok.drop_duplicates("run").reset_index(drop=True)


def _pca_runs(runs):
    """``(run, bottleneck, seed)`` of every PCA run, for :func:`_pca_partner`."""
    pca = runs[runs["model"] == "pca"]
    seeds = pca["seed"] if "seed" in runs.columns else [np.nan] * len(pca)
    return list(zip(pca["run"], pca["bottleneck"], seeds))


def _pca_partner(pcas, row):
    """The first PCA run (of :func:`_pca_runs`) at the row's bottleneck, of the row's seed where PCA runs have
    seeds and one matches."""
    same = [p for p in pcas if p[1] == row["bottleneck"]]
    if any(pd.notna(p[2]) for p in same) and pd.notna(row.get("seed")):
        same = [p for p in same if p[2] == row["seed"]] or same
    return same[0][0] if same else None


ID_SAMPLES = 2000  # unseen samples the intrinsic dimensions use at most (MLE's neighbour search grows as n^2)


def _subset(n, seed=0):
    """All ``n`` rows, or a fixed random :data:`ID_SAMPLES` of them (sorted)."""
    return np.arange(n) if n <= ID_SAMPLES else np.sort(np.random.default_rng(seed).choice(n, ID_SAMPLES, False))


def latent_table(folder, data, results):
    """The latent measures of every successful run in ``folder``, as :data:`LATENT_COLUMNS` describes.

    Parameters
    ----------
    folder : Path
        The study folder (its ``models/<run>/``).
    data : StudyData
        The study's data and split.
    results : DataFrame
        ``results.csv``.

    Returns
    -------
    DataFrame
        One row per run, columns :data:`LATENT_COLUMNS`.
    """
    tasks, table = latent_tasks(folder, data, results, lambda frame: None)
    for task in tasks:
        task.on_done(task.fn(*task.args))
    return table()


def latent_tasks(folder, data, results, on_table):
    """:func:`latent_table` in independent parts: one :class:`Task` per bottleneck (its runs, PCA's among them, are
    all a row compares with) and one for the data's own intrinsic dimensions.

    Each part computes alone (anywhere: it reads the models from ``folder``); ``on_table(frame)`` is called with
    the whole table once the last part is back, whatever their order. Also returns a function giving that table.
    """
    runs = _runs(results)
    results = results[results["run"].isin(runs["run"])]
    parts = {}

    def done(key):
        def record(output):
            parts[key] = output
            if len(parts) == len(tasks):
                on_table(table())
        return record

    def table():
        ids = parts["data"]
        rows = {run: entry for key, rows in parts.items() if key != "data" for run, entry in rows.items()}
        return pd.DataFrame([{**rows[run], "data_intrinsic_dim": ids[0], "data_intrinsic_dim_mle": ids[1]}
                             for run in runs["run"]], columns=list(LATENT_COLUMNS))

    # the widest bottlenecks first: their neighbour searches take longest
    tasks = [Task(_latent_rows, (folder, data, results[results["run"].isin(group["run"])], group), done(k), here=True)
             for k, group in sorted(runs.groupby("bottleneck", sort=False), key=lambda kv: -kv[0])]
    tasks.append(Task(_data_dimensions, (data,), done("data"), here=True))  # scikit-learn: see Task
    return tasks, table


def _data_dimensions(data):
    """TwoNN and MLE intrinsic dimensions of the unseen samples' signal (a fixed subset of them)."""
    from ..measures.similarity import intrinsic_dimension  # scikit-learn, imported where it is used (see Task)

    with threadpool_limits(1):
        signal = data.clean[data.test] if data.noisy else data.inputs(data.test)
        few = signal[_subset(len(signal))]
        return _safe(intrinsic_dimension, few), _safe(intrinsic_dimension, few, method="mle")


def _latent_rows(folder, data, results, runs):
    """{run: its row of the table but the data's dimensions} for ``runs``, which hold every run their rows compare
    with (PCA at the same bottleneck, the other seeds of the same architecture)."""
    with threadpool_limits(1):  # many small problems: extra BLAS and OpenMP threads only fight on a busy machine
        return _rows(folder, data, results, runs)


def _rows(folder, data, results, runs):
    from ..measures.similarity import (CenteredCodes, cca_similarity, intrinsic_dimension, latent_membership,
                                       linear_cka, null_level, principal_angles)

    X_train, X_test = data.inputs(data.train), data.inputs(data.test)
    few = _subset(len(X_test))  # the intrinsic dimensions: TwoNN and MLE on a few thousand samples at most
    codes, decoders, centered = {}, {}, {}
    for run in runs["run"]:
        model = load(folder / "models" / run).eval()
        codes[run] = (encode(model, X_train), encode(model, X_test))
        decoders[run] = _decoder_matrix(model)

    def unseen(run):  # the unseen codes, prepared once for every comparison they are in
        if run not in centered:
            centered[run] = CenteredCodes(codes[run][1])
        return centered[run]

    keys = [c for c in ARCHITECTURE if c in runs.columns]
    groups = runs.assign(hidden=runs["hidden"].map(format_hidden)).groupby(keys, dropna=False)
    partners = {run: [r for r in group["run"] if r != run] for _, group in groups for run in group["run"]}
    test_rows = results[results["split"] == "test"].drop_duplicates("run").set_index("run")
    pcas, rows = _pca_runs(runs), {}
    for _, row in runs.iterrows():
        run, (Z_train, Z_test) = row["run"], codes[row["run"]]
        entry = {c: row.get(c) for c in ("run", "model", "bottleneck", "hidden", "seed", "n_params")}
        entry["hidden"] = format_hidden(entry["hidden"])
        entry["n_samples"] = len(Z_test)
        pca = _pca_partner(pcas, row) if row["model"] != "pca" else None
        if pca is not None:
            mine, scores = unseen(run), unseen(pca)
            entry.update(cka_pca=linear_cka(mine, scores), cca_pca=cca_similarity(mine, scores),
                         cka_null=null_level(mine, scores), cca_null=null_level(mine, scores, measure="cca"))
            if decoders[run] is not None and decoders[pca] is not None:
                entry["max_angle_pca"] = float(principal_angles(decoders[run], decoders[pca]).max())
        others = partners.get(run, [])
        if others and row["model"] != "pca":
            entry["cka_seeds"] = float(np.mean([linear_cka(unseen(run), unseen(o)) for o in others]))
            entry["cca_seeds"] = float(np.mean([cca_similarity(unseen(run), unseen(o)) for o in others]))
        auc = _safe(latent_membership, Z_train, Z_test)
        if not np.isscalar(auc):
            entry.update(latent_auc=auc[0], latent_auc_low=auc[1], latent_auc_high=auc[2])
        entry["membership_auc"] = test_rows["membership_auc"].get(run, np.nan) \
            if "membership_auc" in test_rows.columns else np.nan
        entry.update(intrinsic_dim=_safe(intrinsic_dimension, Z_test[few]),
                     data_signal="clean" if data.noisy else "inputs")
        rows[run] = entry
    return rows


def write_latent(store, data, config, results):
    """``latent.csv`` (:func:`latent_table`), written atomically."""
    frame = latent_table(store.path, data, results)
    write_csv(store.path / "latent.csv", frame)
    return frame


PATH_STEPS = 7  # points along each decoded line, both ends included


def _path_pairs(data, n_pairs=3, seed=0):
    """Pairs of unseen samples, of different labels where there are labels."""
    rng = np.random.default_rng(seed)
    test = data.test
    if data.labels is not None:
        classes = rng.permutation(np.unique(data.y[test]))
        firsts = [test[data.y[test] == c][0] for c in classes]
        ends = np.asarray(firsts[: 2 * n_pairs]) if len(firsts) >= 2 * n_pairs else None
    else:
        ends = None
    if ends is None:
        ends = rng.choice(test, min(2 * n_pairs, len(test) - len(test) % 2), replace=False)
    return ends.reshape(-1, 2)


def write_paths(store, data, config, models):
    """``paths.npz`` (:func:`path_arrays`), written atomically."""
    write_npz(store.path / "paths.npz", **path_arrays(store.path, data, config, models))


def path_arrays(folder, data, config, models):
    """``paths.npz``'s arrays: for each model (label -> run), the decoded straight line in its code between the codes
    of pairs of unseen samples; PCA's line is the straight line between the two projections."""
    pairs = _path_pairs(data, seed=config.seed)
    alpha = np.linspace(0, 1, PATH_STEPS)
    arrays = {"pairs": pairs, "alpha": alpha, "image_shape": np.asarray(data.image_shape or (1, data.n_features)),
              "clean": data.clean[pairs]}
    for label, run in models.items():
        model = load(folder / "models" / run).eval()
        Z = encode(model, data.X[pairs.ravel()]).reshape(len(pairs), 2, -1)
        line = (1 - alpha)[None, :, None] * Z[:, :1] + alpha[None, :, None] * Z[:, 1:]  # (pairs, steps, k)
        p = next(model.parameters())
        with torch.no_grad():
            decoded = model.decode(torch.as_tensor(line.reshape(-1, Z.shape[2]), dtype=p.dtype, device=p.device))
        arrays[f"{label}: {run}"] = decoded.cpu().numpy().reshape(len(pairs), PATH_STEPS, -1)
    return arrays
