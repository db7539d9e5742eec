"""A study's last steps, after training: the selection, reconstructions of a few unseen samples, the latent map
and the latent measures.

Everything here reads the committed runs back from the study folder and writes derived files
(``selection.json``, ``reconstructions.npz``, ``embeddings.csv``, ``latent.json``, ``latent.csv``, ``paths.npz``).
"""
from __future__ import annotations

import contextlib
from functools import partial

import numpy as np
import pandas as pd

from autoenc import load
from autoenc._safe_read import regular_file

from ._parallel import Task, run_in_threads
from .runspec import Run, RunSpec, format_hidden
from .latent_table import LATENT_COLUMNS, latent_tasks, path_arrays
from .select import simplest_adequate
from .store import write_csv, write_json, write_npz
from .tables import summarize_runs

__all__ = ["finish", "finish_tasks", "run_in_threads", "select", "warm_up"]


def warm_up():
    """While the workers train, the study process is idle: compile UMAP's numba code (its first call in a process
    costs 10-20 s) on a throwaway map."""
    with contextlib.suppress(Exception):  # only a head start: the real calls report any problem themselves
        from ..measures.latent import embed_latents

        Z = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
        embed_latents(Z, Z[:8], method="umap", n_epochs=5)


def select(store, data, config, results):
    """The simplest adequate model overall and among the autoencoders, written to ``selection.json``."""
    ok = results[results["status"] == "ok"]
    if not (ok["model"] == "autoencoder").any():
        return None
    split_name = "val" if len(data.val) else "test"
    kwargs = {"split": split_name, "metric": config.selection_metric, "rule": config.selection_rule}
    selection = simplest_adequate(results, config.tolerance, **kwargs)
    selection["autoencoder"] = simplest_adequate(results, config.tolerance, models=("autoencoder",), **kwargs)
    write_json(store.path / "selection.json", selection)
    return selection


def finish(store, data, config, results, selection, *, n_jobs=None):
    """Reconstructions of a few unseen samples; the latent map of the selected autoencoder, the latent measures
    of every run and the decoded paths of the selected and the widest (unless ``config.latent`` is none).

    :func:`finish_tasks`'s tasks, computed on up to ``n_jobs`` threads of this process (default: every core; 1 runs
    them one after the other) and written here as each comes back. Every task computes on one thread
    (``one_thread``) and alone, so the numbers do not depend on ``n_jobs``.
    """
    run_in_threads(finish_tasks(store, data, config, results, selection), n_jobs)


def finish_tasks(store, data, config, results, selection):
    """:func:`finish`'s work as independent :class:`Task` objects, longest first: each ``fn`` reads the committed
    models from the study folder and computes; its ``on_done`` writes (in the study process).

    They run anywhere that folder can be read: threads of this process (:func:`run_in_threads`), or local worker
    processes through ``run_tasks(tasks, n_jobs, None, share)``.
    """
    if selection is None:
        return []
    folder = store.path
    ok = results[results["status"] == "ok"]
    chosen = selection["autoencoder"]
    chosen_run = _first_run(ok, chosen)
    largest_run = _first_run(ok, summarize_runs(ok[ok["model"] == "autoencoder"], split="test").iloc[-1])
    pca_run = _first_run(ok, {"model": "pca", "bottleneck": chosen["bottleneck"], "hidden": ""})
    shown = {"pca": pca_run, "selected": chosen_run, "largest": largest_run}
    tasks = []
    if config.double_descent and not _readable_csv(folder / "double_descent.csv", ["width", "mse_clean"]):
        tasks.append(Task(_double_descent, (data, config), lambda f: write_csv(folder / "double_descent.csv", f)))
    if config.landscape:
        tasks += _landscape_tasks(folder, data, config, list(dict.fromkeys([chosen_run, largest_run])))
    if config.latent != "none" and not _readable_csv(folder / "latent.csv", LATENT_COLUMNS, set(ok["run"])):
        tasks += latent_tasks(folder, data, results, lambda frame: write_csv(folder / "latent.csv", frame))[0]
    if config.latent != "none" and not _readable_csv(folder / "embeddings.csv", ["run", "x", "y"],
                                                     {chosen_run, pca_run}):
        tasks.append(Task(_embeddings, (folder, data, config, chosen_run, pca_run), partial(_write_embeddings, folder),
                          here=True))
    tasks.append(Task(_reconstructions, (folder, data, shown),
                      lambda arrays: write_npz(folder / "reconstructions.npz", **arrays)))
    if config.latent != "none":
        tasks.append(Task(path_arrays, (folder, data, config, shown),
                          lambda arrays: write_npz(folder / "paths.npz", **arrays)))
    return tasks


def _landscape_tasks(folder, data, config, runs, n_samples=50):
    """Loss slices (seen and unseen, one filter-normalized direction) and attractors of the given runs, one task
    each; ``landscape.csv`` and ``attractors.csv`` are written once both are back, in the order of ``runs``."""
    rng = np.random.default_rng(config.seed)
    picks = {name: np.sort(rng.choice(idx, min(n_samples, len(idx)), replace=False))
             for name, idx in (("train", data.train), ("test", data.test))}
    parts = {}

    def done(run):
        def record(output):
            parts[run] = output
            if len(parts) == len(runs):
                write_csv(folder / "landscape.csv", pd.concat([parts[r][0] for r in runs], ignore_index=True))
                write_csv(folder / "attractors.csv", pd.concat([p for r in runs for p in parts[r][1]],
                                                               ignore_index=True))
        return record

    # the largest (the last) first: it takes longest
    return [Task(_landscape, (folder, data, config, run, picks), done(run)) for run in reversed(runs)]


def _landscape(folder, data, config, run, picks):
    """One run's loss slice and its attractors among the picked seen and unseen samples."""
    from ..measures.landscape import MARGIN, attractors, loss_slice

    model = load(folder / "models" / run)
    frame = loss_slice(model, data.X[data.train], data.X[data.test], steps=21, seed=config.seed).assign(run=run)
    points = []
    for split_name, rows in picks.items():
        found = attractors(model, data.X[rows], margin=MARGIN, seed=config.seed)
        found["sample"] = rows[found["sample"].to_numpy()]
        points.append(found.assign(run=run, split=split_name, margin=MARGIN))  # the plot draws 1 - margin
    return frame, points


# The width sweep past the interpolation threshold: few training samples, trained to (near) zero error.
DOUBLE_DESCENT = {"n_train": 100, "widths": (4, 8, 16, 32, 64, 128, 256, 512), "epochs": 2000, "lr": 1e-3}


def _double_descent(data, config):
    """``double_descent.csv``: train and test error over widths on a small training subset, epoch-wise too."""
    from autoenc import TrainConfig

    from ..measures.dynamics import double_descent, log_epochs

    settings = DOUBLE_DESCENT
    rng = np.random.default_rng(config.seed)
    rows = np.sort(rng.choice(data.train, min(settings["n_train"], len(data.train)), replace=False))
    train = TrainConfig(epochs=settings["epochs"], batch_size=len(rows), lr=settings["lr"])
    k = min(8, min(config.bottlenecks + (data.n_features,)))
    template = Run.of(RunSpec(k, (1,), 0, kind=config.architecture), config, data).model  # the widths are swept
    return double_descent(data.X[rows], data.X[data.test], settings["widths"], template, seeds=config.seeds[:2],
                          train_config=train, clean_train=data.clean[rows], clean_test=data.clean[data.test],
                          eval_epochs=log_epochs(settings["epochs"]))


def _readable_csv(path, columns, runs=None):
    """Whether a derived file is there (a regular file: a FIFO is never opened), intact, and (given ``runs``) made
    from exactly those runs; anything else is rebuilt, never trusted."""
    if not regular_file(path):
        return False
    try:
        if not set(columns) <= set(pd.read_csv(path, nrows=0).columns):
            return False
        return runs is None or set(pd.read_csv(path, usecols=["run"], dtype=str)["run"]) == set(runs)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return False


def _first_run(ok, row):
    """The first successful run (lowest seed) of the architecture a summary row describes."""
    same = ok[(ok["model"] == row["model"]) & (ok["bottleneck"] == row["bottleneck"])
              & (ok["hidden"].map(format_hidden) == format_hidden(row["hidden"]))]
    return same.sort_values("seed")["run"].iloc[0]


def _example_rows(data, n=8):
    """Up to ``n`` test samples, one per class first when there are labels."""
    test = data.test
    if data.labels is None:
        return test[:n]
    _, first = np.unique(data.y[test], return_index=True)
    rest = np.setdiff1d(np.arange(len(test)), first)
    return test[np.concatenate([first, rest])[:n]]


def _reconstructions(folder, data, models):
    """``reconstructions.npz``'s arrays: a few unseen samples, clean and noisy, and the given models' output."""
    from autoenc import reconstruct

    rows = _example_rows(data)
    arrays = {"clean": data.clean[rows], "noisy": data.X[rows], "sample": rows,
              "image_shape": np.asarray(data.image_shape or (1, data.n_features))}
    for label, run in models.items():
        arrays[f"{label}: {run}"] = reconstruct(load(folder / "models" / run), data.X[rows])
    return arrays


TRUST_SAMPLES = 2000  # unseen samples the trustworthiness of a latent map is measured on, at most


def _embeddings(folder, data, config, ae_run, pca_run):
    """The 2-D maps of the selected autoencoder's and PCA's codes (``embeddings.csv``) and their scores
    (``latent.json``)."""
    from autoenc import encode

    from ..measures.latent import embed_latents, knn_probe, trustworthiness

    frames, scores = [], {}
    # Trustworthiness compares all pairwise distances: on a bounded subsample, so memory stays bounded too.
    rng = np.random.default_rng(config.seed)
    picked = np.sort(rng.choice(len(data.test), TRUST_SAMPLES, replace=False)) if len(data.test) > TRUST_SAMPLES \
        else np.arange(len(data.test))
    for kind, run in (("autoencoder", ae_run), ("pca", pca_run)):
        model = load(folder / "models" / run)
        Z_train, Z_test = encode(model, data.X[data.train]), encode(model, data.X[data.test])
        E_train, E_test = embed_latents(Z_train, Z_test, method=config.latent, random_state=config.seed)
        for split_name, idx, E in (("train", data.train, E_train), ("test", data.test, E_test)):
            frames.append(pd.DataFrame({"run": run, "model": kind, "split": split_name, "sample": idx,
                                        "label": data.y[idx] if data.y is not None else np.nan,
                                        "x": E[:, 0], "y": E[:, 1]}))
        entry = {"run": run, "bottleneck": int(Z_train.shape[1]), "trustworthiness_samples": len(picked),
                 "trustworthiness": float(trustworthiness(data.X[data.test][picked], Z_test[picked]))}
        if data.labels is not None:
            entry["knn_accuracy"] = float(knn_probe(Z_train, data.y[data.train], Z_test, data.y[data.test]))
        scores[kind] = entry
    return pd.concat(frames, ignore_index=True), scores


def _write_embeddings(folder, output):
    frame, scores = output
    write_csv(folder / "embeddings.csv", frame)
    write_json(folder / "latent.json", scores)
