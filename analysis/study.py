"""Capacity studies end to end: data, the grid (or the grow search), training in parallel, measurements, files.

Workers train and measure; only the main process writes, one run at a time, atomically (see ``store.py``),
so a study killed at any moment loses nothing that finished and a rerun trains only what is missing.
"""
from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

import autoenc
from autoenc import Autoencoder, ModelConfig, add_noise, load, load_dataset, split
from autoenc.batched import fit_group, plan_groups
from autoenc.data import Scaler

from .config import RunSpec, StudyConfig
from .errors import reconstruct_with, seen_unseen
from .memorization import memorization_scores, noise_memorization
from .select import simplest_adequate, summarize_runs
from .store import StudyStore, write_csv, write_json, write_npz

__all__ = ["StudyData", "StudyResult", "prepare_data", "run_study", "pca_as_autoencoder", "versions"]


@dataclass
class StudyData:
    """Everything a worker needs: inputs as the models see them, the clean signal, the injected noise, the split."""

    X: np.ndarray          # (n_samples, n_features) float32, noisy and scaled
    clean: np.ndarray      # the same samples without noise (scaled the same way)
    noise: np.ndarray | None  # X - clean, None when no noise was injected
    y: np.ndarray | None
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str
    image_shape: tuple | None

    @property
    def n_features(self):
        return self.X.shape[1]


@dataclass
class StudyResult:
    """What ``run_study`` returns: the folder and its tables."""

    path: object
    results: pd.DataFrame
    samples: pd.DataFrame
    history: pd.DataFrame
    selection: dict | None


def prepare_data(config: StudyConfig) -> StudyData:
    """Load ``config.dataset``, split it, inject static noise, scale on the training inputs; check the grid fits."""
    data = load_dataset(config.dataset, seed=config.seed)
    n, d = data.X.shape
    labels = data.y if data.y is not None and np.issubdtype(np.asarray(data.y).dtype, np.integer) else None
    parts = split(n, config.fractions, seed=config.seed, stratify=labels)
    too_big = [k for k in config.bottlenecks if k > d]
    if too_big:
        raise ValueError(f"bottlenecks {too_big} are larger than the number of features ({d}) of {data.name}")
    if max(config.bottlenecks) > len(parts.train):
        raise ValueError(f"bottlenecks go up to {max(config.bottlenecks)} but there are only {len(parts.train)} "
                         "training samples")
    clean = data.X.astype(np.float32)
    noisy, noise = add_noise(clean, config.noise_std, seed=config.seed) if config.noise_std > 0 else (clean, None)
    scaler = Scaler(config.scale).fit(noisy[parts.train])
    X, clean = scaler.transform(noisy), scaler.transform(clean)
    noise = None if noise is None else X - clean
    return StudyData(X, clean, noise, data.y, parts.train, parts.val, parts.test, data.name, data.image_shape)


def pca_as_autoencoder(pca: PCA) -> Autoencoder:
    """PCA as the linear autoencoder it is: code = W (x - mean), reconstruction = W^T code + mean."""
    k, d = pca.components_.shape
    model = Autoencoder(ModelConfig(d, k, hidden=(), linear=True))
    W, mean = torch.as_tensor(pca.components_, dtype=torch.float32), torch.as_tensor(pca.mean_, dtype=torch.float32)
    enc, dec = model.linear_layers()
    with torch.no_grad():
        enc.weight.copy_(W)
        enc.bias.copy_(-W @ mean)
        dec.weight.copy_(W.T)
        dec.bias.copy_(mean)
    return model


# -- measuring one model --------------------------------------------------------------------------------------
def _measure(model, data: StudyData):
    """Result rows (train, val, test) and per-sample errors of one fitted model."""
    tr, va, te = data.train, data.val, data.test
    noise = data.noise
    frame, per_sample = seen_unseen(model, data.X[tr], data.X[te], clean_train=data.clean[tr],
                                    clean_test=data.clean[te], noise_train=None if noise is None else noise[tr],
                                    noise_test=None if noise is None else noise[te], return_samples=True)
    rows = frame.to_dict("records")
    position, seen = per_sample["sample"].to_numpy(), (per_sample["split"] == "train").to_numpy()
    index = np.empty(len(position), dtype=np.int64)  # row within its split -> row of the dataset
    index[seen], index[~seen] = tr[position[seen]], te[position[~seen]]
    parts = [per_sample.assign(sample=index)]
    if len(va):
        recon = reconstruct_with(model, data.X[va])
        err = np.mean((recon - data.X[va]) ** 2, axis=1, dtype=np.float64)
        err_clean = np.mean((recon - data.clean[va]) ** 2, axis=1, dtype=np.float64)
        nm = np.nan if noise is None else noise_memorization(recon, data.clean[va], noise[va])
        rows.insert(1, {"split": "val", "n_samples": len(va), "mse": float(err.mean()),
                        "mse_clean": float(err_clean.mean()), "noise_memorization": nm})
        parts.append(pd.DataFrame({"split": "val", "sample": va, "error": err, "error_clean": err_clean}))
    samples = pd.concat(parts, ignore_index=True)
    samples["label"] = data.y[samples["sample"].to_numpy()] if data.y is not None else np.nan
    columns = ["split", "sample", "label", "error", "error_clean"]
    return rows, {c: samples[c].tolist() for c in columns}


def _record(run, model_kind, spec, model_config, n_params, data, noise_std):
    return {"run": run, "model": model_kind, "bottleneck": spec["bottleneck"], "hidden": spec["hidden"],
            "width": spec["width"], "depth": spec["depth"], "seed": spec["seed"], "n_params": n_params,
            "n_features": data.n_features, "noise_std": noise_std, "model_config": model_config,
            "status": "ok", "reason": "", "epochs": 0, "rows": [], "samples": None, "history": None}


def _spec_fields(spec: RunSpec):
    return {"bottleneck": spec.bottleneck, "hidden": "-".join(map(str, spec.hidden)), "width": spec.width,
            "depth": spec.depth, "seed": spec.seed}


def _model_configs(specs, config, d):
    return [ModelConfig(d, s.bottleneck, hidden=s.hidden, activation=config.activation) for s in specs]


def _train_group(specs, data: StudyData, config: StudyConfig):
    """Train ``specs`` (one batched group, or one model alone) and measure each; returns one record per run."""
    configs = _model_configs(specs, config, data.n_features)
    train_configs = [config.train.replace(seed=s.seed) for s in specs]
    X_train, X_val = data.X[data.train], (data.X[data.val] if len(data.val) else None)
    start = time.perf_counter()
    # fit_group is exact to solo fit, and faster even for a group of one (no autograd, one fused Adam buffer).
    members = fit_group(configs, X_train, X_val, train_configs, progress=False)
    seconds = (time.perf_counter() - start) / len(specs)
    records = []
    for spec, mc, tc, member in zip(specs, configs, train_configs, members):
        model, history, error = member.model, member.history, member.error
        rec = _record(spec.run, "autoencoder", _spec_fields(spec), mc.to_dict(), Autoencoder(mc).n_parameters,
                      data, config.noise_std)
        rec.update(train_config=tc.to_dict(), train_seconds=seconds)
        if model is None:
            rec.update(status="diverged", reason=error,
                       rows=[{"split": s, "n_samples": len(getattr(data, s))} for s in ("train", "val", "test")])
        else:
            rec["rows"], rec["samples"] = _measure(model, data)
            rec["history"] = history.to_dict()
            rec["epochs"] = history.epochs
            rec["state"] = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        records.append(rec)
    return records


def _fit_pca(k, data: StudyData, config: StudyConfig):
    pca = PCA(n_components=k, random_state=0).fit(data.X[data.train])
    model = pca_as_autoencoder(pca)
    spec = {"bottleneck": k, "hidden": "", "width": None, "depth": 0, "seed": None}
    rec = _record(f"pca-k{k}", "pca", spec, model.config.to_dict(), k * data.n_features + data.n_features, data,
                  config.noise_std)
    rec["rows"], rec["samples"] = _measure(pca, data)  # the sklearn object itself: the same code path
    rec["state"] = {k_: v.detach().numpy() for k_, v in model.state_dict().items()}
    return rec


def _memorization_task(data: StudyData, config: StudyConfig):
    """Per-sample memorization scores of the largest autoencoder and of PCA at its bottleneck."""
    from autoenc import AutoencoderTransformer

    k, width, depth = max(config.bottlenecks), max(config.widths), min(config.depths)
    t = config.train
    makers = {
        "autoencoder": lambda: AutoencoderTransformer(
            n_components=k, hidden=(width,) * depth, activation=config.activation, epochs=t.epochs,
            batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay, random_state=config.seeds[0]),
        "pca": lambda: PCA(n_components=k, random_state=0),
    }
    X = data.X[data.train]
    frames = []
    for name, make in makers.items():
        scores = memorization_scores(X, make, n_folds=config.n_folds, seed=config.seed, progress=False)
        scores.insert(0, "model", name)
        scores.insert(1, "run", f"ae-k{k}-h{'-'.join([str(width)] * depth) or 'none'}" if name == "autoencoder"
                      else f"pca-k{k}")
        scores["sample"] = data.train[scores["sample"].to_numpy()]
        scores["label"] = data.y[scores["sample"].to_numpy()] if data.y is not None else np.nan
        frames.append(scores)
    return pd.concat(frames, ignore_index=True)


# -- running tasks --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _dask_client(scheduler):
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError("a Dask scheduler needs the 'distributed' package: pip install 'autoenc[distributed]'")
    if isinstance(scheduler, str):
        with Client(scheduler) as client:
            yield client
    else:
        yield scheduler


def _exit_with_parent():
    """Exit this worker when the study process that started it dies (even by SIGKILL): it would train for nobody."""
    if any(t.name == "autoenc-parent-watch" for t in threading.enumerate()):
        return
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="autoenc-parent-watch", daemon=True).start()


def _tagged(tag, fn, *args):
    _exit_with_parent()
    return tag, fn(*args)


def _run_tasks(tasks, n_jobs, client):
    """Yield ``(tag, output)`` for each ``(function, args, tag)`` task as it completes, in completion order."""
    if client is None and n_jobs == 1:
        for fn, args, tag in tasks:
            yield tag, fn(*args)
        return
    from joblib import Parallel, delayed, parallel_config

    backend = parallel_config(backend="dask") if client is not None else contextlib.nullcontext()
    with backend:
        parallel = Parallel(n_jobs=-1 if client is not None else n_jobs, return_as="generator_unordered")
        yield from parallel(delayed(_tagged)(tag, fn, *args) for fn, args, tag in tasks)


def _warm_up(report, umap):
    """While the workers train, this process is idle: import the drawing code and compile UMAP's numba code
    (its first call in a process costs 10-20 s) on a throwaway map."""
    with contextlib.suppress(Exception):  # only a head start: the real calls report any problem themselves
        if report:
            from . import report as _  # noqa: F401  (matplotlib and seaborn: seconds)
        if umap:
            from .latent import embed_latents

            Z = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
            embed_latents(Z, Z[:8], method="umap", n_epochs=5)


def _release_workers():
    """Stop joblib's idle local workers: each holds its own torch, and the study is done with them."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)


class _Runner:
    def __init__(self, store, data, config, n_jobs, client, progress):
        self.store, self.data, self.config = store, data, config
        self.n_jobs, self.client, self.progress = n_jobs, client, progress

    def execute(self, specs, before=(), after=()):
        """Train every spec not yet in the folder (whole groups, so a resumed group equals an uninterrupted one).

        ``before`` and ``after`` hold more ``(function, args, on_done)`` tasks for the same workers: long ones go
        first, short ones fill the gaps at the end.
        """
        finished = self.store.finished()
        configs = _model_configs(specs, self.config, self.data.n_features)
        train_configs = [self.config.train.replace(seed=s.seed) for s in specs]
        groups = [[specs[i] for i in g] for g in plan_groups(configs, train_configs)] if specs else []
        todo = [g for g in groups if any(s.run not in finished for s in g)]
        # Widest groups first: they take longest, and the rest fill the gaps between them.
        todo.sort(key=lambda g: -sum(np.prod(s.hidden or (1,)) * s.depth for s in g))

        def commit(records):
            for rec in records:
                if rec["run"] not in finished:
                    self.store.commit(rec)
                    finished.add(rec["run"])
            bar.update(len(records))

        tasks = [*before, *[(_train_group, (g, self.data, self.config), commit) for g in todo], *after]
        if not tasks:
            return
        bar = tqdm(total=sum(len(g) for g in todo), desc="training", unit="model",
                   disable=None if self.progress is None else not self.progress)
        try:  # the workers get an index, not the handler: handlers write files and stay in this process
            for i, out in _run_tasks([(fn, args, i) for i, (fn, args, _) in enumerate(tasks)], self.n_jobs,
                                     self.client):
                tasks[i][2](out)
        finally:
            bar.close()

    def val_error(self, specs):
        """Mean validation (or, without one, test) mse over the given runs' seeds."""
        results = self.store.tables()[0]
        split_name = "val" if len(self.data.val) else "test"
        rows = results[results["run"].isin([s.run for s in specs]) & (results["split"] == split_name)]
        values = rows["mse"].astype(float)
        return float(values.mean()) if len(values) and np.isfinite(values).all() else np.inf


def _grow(runner: _Runner, config: StudyConfig):
    """Per bottleneck: widen (doubling) while the held-out error improves by more than ``tolerance``, then add a
    layer; stop when neither helps. Every step is an ordinary run in the folder."""
    widths = sorted(config.widths)
    start, max_width, max_depth = widths[0], widths[-1], max(max(config.depths), 1)
    state = {k: {"hidden": (start,), "error": None, "done": False} for k in config.bottlenecks}
    while not all(s["done"] for s in state.values()):
        proposals = {}
        for k, s in state.items():
            if s["done"]:
                continue
            if s["error"] is None:
                proposals[k] = [s["hidden"]]
                continue
            width, depth = s["hidden"][0], len(s["hidden"])
            options = []
            if width * 2 <= max_width:
                options.append((width * 2,) * depth)
            if depth + 1 <= max_depth:
                options.append((width,) * (depth + 1))
            if not options:
                s["done"] = True
            else:
                proposals[k] = options
        specs = [RunSpec(k, h, seed) for k, opts in proposals.items() for h in opts for seed in config.seeds]
        runner.execute(specs)
        for k, opts in proposals.items():
            s = state[k]
            errors = {h: runner.val_error([RunSpec(k, h, seed) for seed in config.seeds]) for h in opts}
            if s["error"] is None:
                s["error"] = errors[s["hidden"]]
                continue
            # Prefer widening; deepen only when widening does not help (start small, grow width, then depth).
            for h in opts:
                if errors[h] < s["error"] * (1 - config.tolerance):
                    s["hidden"], s["error"] = h, errors[h]
                    break
            else:
                s["done"] = True


def versions():
    """Versions of the packages that decide the numbers, recorded next to every result."""
    import sklearn

    return {"autoenc": autoenc.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "pandas": pd.__version__,
            "platform": platform.platform()}


def run_study(config: StudyConfig, out_dir, *, n_jobs=None, backend="loky", scheduler=None, progress=None,
              report=True):
    """Run (or resume) the study ``config`` into the folder ``out_dir``.

    Parameters
    ----------
    config : StudyConfig
    out_dir : str or PathLike
        The study folder. A folder made with another config is refused, naming the differing fields.
    n_jobs : int, optional
        Local worker processes (joblib), one torch thread each; default: every core. 1 runs in this process.
    backend : {"loky", "dask"}
        ``"loky"``: local processes. ``"dask"``: the workers of ``scheduler``, or of the current
        ``distributed.Client`` when no scheduler is given.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``"tcp://host:8786"``) or client; implies ``backend="dask"``.
    progress : bool or None
        Progress bars; None shows them on a terminal only.
    report : bool
        Draw the figures and write ``report.html`` and ``summary.md`` at the end.

    Returns
    -------
    StudyResult

    Examples
    --------
    >>> result = run_study(StudyConfig(widths=(16, 64), seeds=(0,)), "runs/small")  # doctest: +SKIP
    >>> result.results.query("split == 'test'")[["run", "mse"]]  # doctest: +SKIP
    """
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(config).__name__}")
    if backend not in ("loky", "dask"):
        raise ValueError(f"unknown backend {backend!r}; valid values are ['loky', 'dask']")
    if backend == "dask" and scheduler is None:
        from distributed import get_client

        scheduler = get_client()  # raises ValueError when there is none
    if n_jobs is None:
        n_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    autoenc.validation.check_int(n_jobs, "n_jobs", minimum=1)
    start, timings = time.perf_counter(), {}
    data = prepare_data(config)
    store = StudyStore(out_dir)
    store.open(config.to_dict(), {
        "versions": versions(), "dataset": data.name, "n_samples": int(len(data.X)),
        "n_features": int(data.n_features), "image_shape": list(data.image_shape) if data.image_shape else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    splits_file = store.path / "splits.npz"
    if not splits_file.exists():
        write_npz(splits_file, train=data.train, val=data.val, test=data.test)
    umap = config.latent == "umap" and not (store.path / "embeddings.csv").exists()
    if report or umap:
        threading.Thread(target=_warm_up, args=(report, umap), daemon=True).start()
    with _dask_client(scheduler) as client:
        runner = _Runner(store, data, config, n_jobs, client, progress)
        try:
            finished = store.finished()
            pca = [(_fit_pca, (k, data, config), store.commit) for k in config.bottlenecks
                   if f"pca-k{k}" not in finished]
            memo, memo_file = [], store.path / "memorization.csv"
            if config.memorization and not memo_file.exists():
                memo.append((_memorization_task, (data, config), lambda frame: write_csv(memo_file, frame)))
            runner.execute(config.runs() if config.search == "grid" else [], before=memo, after=pca)
            if config.search == "grow":
                _grow(runner, config)
        finally:
            results, samples, history = store.write_tables()
    if scheduler is None and n_jobs > 1:
        _release_workers()
    timings["training"] = time.perf_counter() - start
    selection = _finish(store, data, config, results)
    timings["selection_and_latent"] = time.perf_counter() - start - timings["training"]
    if report:
        from .report import write_report

        write_report(store.path)
        timings["report"] = time.perf_counter() - start - sum(timings.values())
    write_json(store.path / "timings.json", {k: round(v, 2) for k, v in timings.items()})
    return StudyResult(store.path, results, samples, history, selection)


def _finish(store, data, config, results):
    """Selection, reconstructions of a few unseen samples, and the latent map of the selected autoencoder."""
    ok = results[results["status"] == "ok"]
    if not (ok["model"] == "autoencoder").any():
        return None
    split_name = "val" if len(data.val) else "test"
    selection = simplest_adequate(results, config.tolerance, split=split_name)
    chosen = simplest_adequate(results, config.tolerance, split=split_name, models=("autoencoder",))
    selection = {**selection, "autoencoder": chosen}
    write_json(store.path / "selection.json", selection)
    chosen_run = ok[(ok["model"] == "autoencoder") & (ok["bottleneck"] == chosen["bottleneck"])
                    & (ok["hidden"].astype(str) == str(chosen["hidden"]))]["run"].iloc[0]
    largest = summarize_runs(ok[ok["model"] == "autoencoder"], split="test").iloc[-1]
    largest_run = ok[(ok["model"] == "autoencoder") & (ok["bottleneck"] == largest["bottleneck"])
                     & (ok["hidden"].astype(str) == str(largest["hidden"]))]["run"].iloc[0]
    models = {"pca": f"pca-k{chosen['bottleneck']}", "selected": chosen_run, "largest": largest_run}
    _write_reconstructions(store, data, models)
    if config.latent != "none" and not (store.path / "embeddings.csv").exists():
        _write_embeddings(store, data, config, chosen_run, f"pca-k{chosen['bottleneck']}")
    return selection


def _example_rows(data, n=8):
    """Up to ``n`` test samples, one per class first when there are labels."""
    test = data.test
    if data.y is None or not np.issubdtype(np.asarray(data.y).dtype, np.integer):
        return test[:n]
    _, first = np.unique(data.y[test], return_index=True)
    rest = np.setdiff1d(np.arange(len(test)), first)
    return test[np.concatenate([first, rest])[:n]]


def _write_reconstructions(store, data, models):
    from autoenc import reconstruct

    rows = _example_rows(data)
    arrays = {"clean": data.clean[rows], "noisy": data.X[rows], "sample": rows,
              "image_shape": np.asarray(data.image_shape or (1, data.n_features))}
    for label, run in models.items():
        arrays[f"{label}: {run}"] = reconstruct(load(store.path / "models" / run), data.X[rows])
    write_npz(store.path / "reconstructions.npz", **arrays)


def _write_embeddings(store, data, config, ae_run, pca_run):
    from autoenc import encode

    from .latent import embed_latents, knn_probe, trustworthiness

    frames, scores = [], {}
    for kind, run in (("autoencoder", ae_run), ("pca", pca_run)):
        model = load(store.path / "models" / run)
        Z_train, Z_test = encode(model, data.X[data.train]), encode(model, data.X[data.test])
        E_train, E_test = embed_latents(Z_train, Z_test, method=config.latent, random_state=config.seed)
        for split_name, idx, E in (("train", data.train, E_train), ("test", data.test, E_test)):
            frames.append(pd.DataFrame({"run": run, "model": kind, "split": split_name, "sample": idx,
                                        "label": data.y[idx] if data.y is not None else np.nan,
                                        "x": E[:, 0], "y": E[:, 1]}))
        entry = {"run": run, "bottleneck": int(Z_train.shape[1]),
                 "trustworthiness": float(trustworthiness(data.X[data.test], Z_test))}
        if data.y is not None and np.issubdtype(np.asarray(data.y).dtype, np.integer):
            entry["knn_accuracy"] = float(knn_probe(Z_train, data.y[data.train], Z_test, data.y[data.test]))
        scores[kind] = entry
    write_csv(store.path / "embeddings.csv", pd.concat(frames, ignore_index=True))
    write_json(store.path / "latent.json", scores)
