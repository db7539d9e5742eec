"""Capacity studies end to end: data, the grid (or the grow search), training, measurements, files.

The tasks a worker runs (train a batched group of autoencoders, fit PCA) are in ``training``; ``run_study`` sends
them out (``_parallel``), commits each record the moment it comes back (``store``), and finishes with the selection,
the remedies, reconstructions and the latent map (a report only through the caller's hook). Only this process writes, one run at a time, atomically: a study killed at any moment loses nothing finished.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autoenc import training_flops
from autoenc.planning import plan_groups
from autoenc.data import feature_scale_ratio
from autoenc.io import versions
from autoenc.train import resolve_device
from autoenc.validation import check_int, check_positive_float

from ._parallel import Task, dask_client, default_jobs, one_thread, release_workers, run_tasks, warm_workers
from ._shared_data import DataShare
from .prepare import prepare_data
from ._preflight import check_names, check_sizes, claim
from .config import REMEDY_FIELDS, StudyConfig
from .runspec import Run, RunSpec
from .training import fit_pca, train_group, with_pairs
from .select import grow_proposals, grow_start, grow_update
from .finish import finish, finish_tasks, select, warm_up
from .remedy_plan import remedy_specs, write_remedy_summary
from .references import (early_references, kfold_memorization, late_references, plan_references, reference_flops,
                          reference_tasks, write_memorization_and_audit)
from .provenance import expectation
from .store import RunResult, StudyStore, write_csv, write_json, write_npz

__all__ = ["StudyResult", "run_study"]

WORKER_MODULES = ("analysis.study.training", "analysis.study.references")  # what a worker's first task imports
GROW_DEPTH = 3  # layers a side the grow search may reach once widening stops helping (unless depths say more)


@dataclass
class StudyResult:
    """What ``run_study`` returns: the folder, its tables, the selection, and how many runs were trained here."""

    path: object
    results: pd.DataFrame
    samples: pd.DataFrame
    history: pd.DataFrame
    selection: dict | None
    trained: int = 0
    reused: int = 0
    remedies: pd.DataFrame | None = None  # ``remedies.csv``: the remedy runs' rows, when the study has remedies


# -- the study ------------------------------------------------------------------------------------------------
class _Study:
    """One study folder being filled: sends out the tasks for what is missing and commits what comes back."""

    def __init__(self, store, data, config, runs, n_jobs, client, progress, on_progress, share=None):
        self.store, self.data, self.config, self.runs = store, data, config, runs
        self.share = share  # local workers read the data from one shared, memory-mapped copy
        self.n_jobs, self.client, self.progress, self.on_progress = n_jobs, client, progress, on_progress
        self.trained, self.flops = 0, 0  # models trained here, and their training FLOPs (autoenc.training_flops)
        # With data seeds every training seed has its own split and noise draw; otherwise all share one.
        self.draws = {config.data_seed(s): prepare_data(config, config.data_seed(s)) for s in config.seeds
                      if config.data_seeds and config.data_seed(s) != config.seed}
        # A run is reused only when it records what this study would make; ids outside the study are ignored.
        store.expect(expectation(config, self.data_for, GROW_DEPTH),
                     max_result_bytes=(4 << 20) + 1024 * (len(data.X) + config.train.epochs))
        self.finished = store.finished()

    def data_for(self, spec):
        """The data draw a run trains and is measured on."""
        return self.draws.get(self.config.data_seed(spec.seed), self.data)

    def run_of(self, spec):
        """The run with its configs, built once (the grid's before any work; a grow search's as it proposes)."""
        if spec not in self.runs:
            self.runs[spec] = Run.of(spec, self.config, self.data)
        return self.runs[spec]

    def commit(self, result: RunResult):
        if result.run not in self.finished:
            self.store.commit(with_pairs(result))  # the pair measures a worker left to this process
            self.finished.add(result.run)
            self.trained += 1
            if result.status == "ok" and result.spec.model == "autoencoder":  # PCA is fitted, not trained
                self.flops += training_flops(self.run_of(result.spec).model, len(self.data_for(result.spec).train),
                                             result.epochs)

    def train(self, specs, before=(), after=()):
        """Train every spec not yet in the folder, in batched groups (a group is retrained whole, so a resumed
        group equals an uninterrupted one); ``before``/``after`` hold more tasks for the same workers."""
        groups = []
        for draw in dict.fromkeys(self.config.data_seed(s.seed) for s in specs):  # a group shares its data
            mine = [self.run_of(s) for s in specs if self.config.data_seed(s.seed) == draw]
            groups += [[mine[i] for i in g] for g in plan_groups([r.model for r in mine], [r.train for r in mine])]
        todo = [g for g in groups if any(r.run not in self.finished for r in g)]
        # Widest groups first: they take longest, and the rest fill the gaps between them.
        todo.sort(key=lambda g: -sum(np.prod(r.spec.hidden or (1,)) * r.spec.depth for r in g))
        # Tasks that commit a run (PCA) count on the bar like the autoencoders, as in the final "N trained".
        counted = [t for t in (*before, *after) if t.on_done == self.commit]
        total = sum(len(g) for g in todo) + len(counted)
        bar = tqdm(total=total, desc="training", unit="model",
                   disable=None if self.progress is None else not self.progress)
        count = 0

        def done(results):
            nonlocal count
            for result in results:
                self.commit(result)
            count += len(results)
            bar.update(len(results))
            if self.on_progress is not None:  # the bar counts nothing when disabled: keep our own count
                self.on_progress(count, total, [r.run for r in results])

        # Epochs show under the bar where the group trains here; a worker process has no terminal to draw on.
        epochs = self.progress if self.n_jobs == 1 and self.client is None else False
        before, after = ([replace(t, on_done=lambda result: done([result])) if t.on_done == self.commit else t
                          for t in part] for part in (before, after))
        tasks = [*before, *[Task(train_group, (g, self.data_for(g[0].spec), self.config, epochs), done) for g in todo],
                 *after]
        try:
            run_tasks(tasks, self.n_jobs, self.client, self.share)
        finally:
            bar.close()

    def held_out_error(self, specs):
        """Mean validation (or, without one, test) mse over the given runs (their seeds)."""
        results = self.store.tables()[0]
        split_name = "val" if len(self.data.val) else "test"
        rows = results[results["run"].isin([s.run for s in specs]) & (results["split"] == split_name)]
        values = rows["mse"].astype(float)
        return float(values.mean()) if len(values) and np.isfinite(values).all() else np.inf

    def grow(self):
        """The grow search: the policy (``select.grow_*``) proposes, the study trains, until nothing is left."""
        config = self.config
        state = grow_start(config.bottlenecks, min(config.widths))
        while True:
            depth = max(config.depths) if max(config.depths) > 1 else GROW_DEPTH
            proposals = grow_proposals(state, max(config.widths), depth)
            if not proposals:
                return
            specs = {(k, h): [RunSpec(k, h, seed, kind=config.architecture) for seed in config.seeds]
                     for k, opts in proposals.items() for h in opts}
            self.train([s for group in specs.values() for s in group])
            state = grow_update(state, proposals, {key: self.held_out_error(group) for key, group in specs.items()},
                                config.tolerance)


def run_study(config: StudyConfig, out_dir, *, n_jobs=None, backend="loky", scheduler=None, progress=None,
              report=None, on_progress=None, timeout=30):
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
    report : callable or None
        Called as ``report(folder)`` once the folder is complete, e.g. :func:`analysis.report.write_report` (the
        figures, ``report.html`` and ``summary.md``); None writes no report. The study never draws itself.
    on_progress : callable, optional
        ``on_progress(done, total, runs)`` after each finished group (``runs``: its run ids), e.g. to print a
        line per group where there is no terminal for a bar.
    timeout : float
        Seconds to wait for a Dask scheduler to answer, for its first worker, and for a worker once all are lost.

    Raises
    ------
    StudyLockedError
        When another process holds the folder (its PID is named).

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
    n_jobs = check_int(default_jobs() if n_jobs is None else n_jobs, "n_jobs", minimum=1)
    timeout = check_positive_float(timeout, "timeout")
    if report is False:
        report = None
    if report is not None and not callable(report):
        raise TypeError(f"report must be a callable such as analysis.report.write_report, or None; got {report!r}")
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be a callable or None, got {type(on_progress).__name__}")
    if scheduler is None:  # a cluster's workers may have a GPU that this machine lacks: they check for themselves
        resolve_device(config.train.device)
    check_names(config, out_dir, GROW_DEPTH)
    start = time.perf_counter()
    with one_thread():  # the numbers do not depend on this process's thread settings (see one_thread)
        return _locked_study(config, out_dir, n_jobs, scheduler, progress, report, on_progress, timeout, start)


def _locked_study(config, out_dir, n_jobs, scheduler, progress, report, on_progress, timeout, start):
    """:func:`run_study` after its arguments are checked: the locked folder, the data, the cluster, the study.

    The lock first: a second study on the folder is refused before any data is read. Then every check that can
    fail, and the cluster: a refused study leaves nothing behind (``claim`` removes what it created).
    """
    with claim(out_dir):
        data = prepare_data(config)
        check_sizes(config, data, GROW_DEPTH)
        # Every run's configs, built once; an architecture the data cannot hold is refused before any work.
        runs = {spec: Run.of(spec, config, data) for spec in (*config.runs(), *config.pca_runs())}
        local = scheduler is None and n_jobs > 1
        # The local workers start and import the training code while this process sets up the folder.
        with warm_workers(n_jobs if local else 1, WORKER_MODULES) as warm, dask_client(scheduler, timeout) as client, \
                DataShare(local) as share:
            store = StudyStore(out_dir)
            store.remove_orphans()  # a killed study's half-written files
            store.open(config.to_dict(), mutable=REMEDY_FIELDS, facts={
                "versions": versions(), "dataset": data.name, "n_samples": int(len(data.X)),
                "n_features": int(data.n_features), "image_shape": list(data.image_shape) if data.image_shape else None,
                "data_fingerprint": data.fingerprint,
                # the report names unequal feature scales as a cause of a bad fit without loading the data again
                "feature_scale_ratio": feature_scale_ratio(data.clean) if config.scale == "none" else None,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            })
            if not (store.path / "splits.npz").exists():
                write_npz(store.path / "splits.npz", train=data.train, val=data.val, test=data.test)
            if config.latent == "umap" and not (store.path / "embeddings.csv").exists():
                threading.Thread(target=warm_up, daemon=True).start()
            study = _Study(store, data, config, runs, n_jobs, client, progress, on_progress, share)
            warm.wait()
            try:
                return _run(study, report, start, local_workers=local)
            finally:
                store.wait_tables()  # the tables' files, written on a thread, are whole before the folder unlocks


def _run(study, report, start, local_workers):
    """The body of :func:`run_study`, with the folder locked and the cluster (if any) connected."""
    store, data, config, timings = study.store, study.data, study.config, {}
    reused = len(study.finished)
    try:
        pca = [Task(fit_pca, (study.run_of(spec), study.data_for(spec), config), study.commit, here=True)
               for spec in config.pca_runs() if spec.run not in study.finished]
        # The widest model's reference models are known before anything trains: long tasks go first.
        plans = [plan_references(s, data, config, store.path, audited="widest" in config.audit)
                 for s in early_references(config)]
        before = [t for plan in plans for t in reference_tasks(plan, data, config)]
        study.flops += reference_flops(before)
        if config.memorization and config.memorization_method == "kfold":
            memo_file = store.path / "memorization.csv"
            before.append(Task(kfold_memorization, (data, config), lambda f: write_csv(memo_file, f)))
        study.train(config.runs() if config.search == "grid" else [], before=before, after=pca)
        if config.search == "grow":
            study.grow()
    except BaseException:
        store.write_tables()  # an interrupted study's tables still hold every run it finished
        raise
    # The frames now; their files on a thread, written while the late references train (waited for below).
    results, samples, history = store.write_tables(wait=False)
    timings["training"], flops = time.perf_counter() - start, {"training": study.flops}
    selection = select(store, data, config, results)
    remedied, remedies, audit_samples = remedy_specs(config, selection), None, samples
    if remedied:  # the remedies of the widest and selected architectures, once the selection is known
        study.train(remedied)
        results, samples, history = store.write_tables()
        remedies, remedy_samples, _ = store.tables(remedies=True)
        audit_samples = pd.concat([samples, remedy_samples], ignore_index=True)
        timings["remedies"] = time.perf_counter() - start - timings["training"]
        flops["remedies"] = study.flops - flops["training"]
    audited = [s for s in remedied if s.seed == config.seeds[0]] if config.remedy_audit else []
    plans += [plan_references(s, data, config, store.path, audited=True)
              for s in [*late_references(config, results, selection), *audited]
              if s.architecture not in {p.spec.architecture for p in plans}]
    tasks = [t for plan in plans for t in reference_tasks(plan, data, config)]
    flops["references_and_audit"] = reference_flops(tasks)
    # The reconstructions and latent measures read only committed runs: with local workers, they are computed while
    # the workers train the late references, the ones that need scikit-learn (the latent measures, the embeddings:
    # ``here``) in this process, which has imported it (and UMAP's compiled code is warm only here, ``warm_up``).
    # On Dask, after the audit, here: a Dask worker may not see the folder.
    beside = local_workers
    finishing = finish_tasks(store, data, config, results, selection) if beside else []
    if tasks or finishing:
        run_tasks(tasks + finishing, study.n_jobs, study.client, study.share)
    store.wait_tables()
    write_memorization_and_audit(store.path, plans, data, audit_samples, config)
    write_remedy_summary(store.path, remedies, results, config, selection, len(data.train))
    if beside:
        timings["references_audit_and_latent"] = time.perf_counter() - start - sum(timings.values())
    else:
        timings["references_and_audit"] = time.perf_counter() - start - sum(timings.values())
        finish(store, data, config, results, selection, n_jobs=study.n_jobs)
        timings["reconstructions_and_latent"] = time.perf_counter() - start - sum(timings.values())
    if local_workers:  # the report needs no workers: their memory back first (waited for, not raced by drawing).
        release_workers(kill=True)  # idle, holding nothing: killed, they skip their interpreter's teardown (0.5 s)
    if report is not None:
        report(store.path)
        timings["report"] = time.perf_counter() - start - sum(timings.values())
    write_json(store.path / "timings.json", {**{k: round(v, 2) for k, v in timings.items()},  # seconds, and the
                                             **{f"{k}_flops": int(v) for k, v in flops.items()}})  # FLOPs trained
    return StudyResult(store.path, results, samples, history, selection, trained=study.trained, reused=reused,
                       remedies=remedies)
