"""A study's reference models, per-sample memorization and membership audit (see ``reference`` and ``audit``).

For each audited architecture the study trains ``n_references`` models on balanced random halves of the pool (the
training and test samples, whose membership in the study's own runs is known), in batched groups sent out like any
other task; each finished group is committed to ``references/<architecture>/`` at once, so an interrupted study
keeps it. From the assembled errors come the per-sample memorization scores (``memorization.csv``: error when out
minus error when in) and the audit of the study's runs of that architecture, every seed pooled as targets
(``audit_summary.csv``, ``audit.csv``). The scores' reproducibility is measured by splitting the references in two
halves and correlating the halves' scores.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from autoenc import training_flops
from autoenc._safe_read import check_npz

from ._parallel import Task, run_tasks
from ..measures.audit import attack_scores, membership_audit
from .integrity import array_fingerprint
from .runspec import Run, RunSpec
from ..measures.memorization import memorization_scores
from ..measures.privacy import epsilon_lower_bound
from .provenance import split_fingerprint
from ..measures.reconstruction import unfitted_pca
from ..measures.reference import memorization_from_references, plan_reference_tasks, reference_masks, train_references
from .store import write_npz

__all__ = ["ReferencePlan", "audit_runs", "audit_tasks", "early_references", "kfold_memorization", "late_references",
           "memorization_and_audit", "plan_references", "reference_tasks",
           "write_memorization_and_audit"]

FOLDER = "references"


@dataclass
class ReferencePlan:
    """The reference models of one architecture: the pool, the halves, the training tasks, where they go."""

    spec: RunSpec
    pool: np.ndarray       # dataset rows: the training and test samples
    masks: np.ndarray      # (n_references, n_pool) bool
    tasks: list            # lists of reference indices, one batched group each
    folder: Path
    audited: bool = False  # the study's runs of this architecture get a membership audit
    provenance: str = ""   # hash of what the groups are made from: a group made otherwise is not reused
    model: object = None   # ModelConfig, or a PCA factory; built once, by plan_references
    train: object = None   # TrainConfig (None for PCA)
    written: set = field(default_factory=set, repr=False)  # groups committed by this process (first index)

    def group_file(self, task):
        return self.folder / f"group-{task[0]:03d}-{task[-1]:03d}.npz"

    def digest(self, task, errors):
        """The checksum a group file records: of its errors, its indices and the plan's provenance."""
        body = f"{self.provenance}|{array_fingerprint(np.asarray(task), np.asarray(errors, dtype=float))}"
        return hashlib.sha256(body.encode()).hexdigest()

    def read(self, task):
        """``(errors, problem)`` of a committed group: ``(array, None)`` when intact, ``(None, "")`` when not
        there, else ``(None, what is wrong)``: a damaged or foreign group is never used."""
        file = self.group_file(task)
        if not os.path.lexists(file):
            return None, ""
        try:
            check_npz(file, 16 * len(task) * len(self.pool) + (1 << 16))
            with np.load(file, allow_pickle=False) as npz:
                errors = np.asarray(npz["errors"], dtype=float)
                if list(npz["indices"]) != list(task) or errors.shape != (len(task), len(self.pool)):
                    return None, "its indices or shape are not the group's"
                if str(npz["provenance"]) != self.provenance:
                    return None, "it was made by another study (another model, training, data or split)"
                if str(npz["sha256"]) != self.digest(task, errors):
                    return None, "its errors changed since they were written (the SHA-256 differs)"
        except (OSError, ValueError, KeyError, EOFError) as exc:
            return None, f"unreadable: {exc}"
        return errors, None

    def load(self):
        """``(n_references, n_pool)`` errors, or None while a group is missing or damaged."""
        errors = np.full(self.masks.shape, np.nan)
        for task in self.tasks:
            group, _ = self.read(task)
            if group is None:
                return None
            errors[task] = group
        return errors


def early_references(config):
    """Reference models that can train beside the grid: the widest autoencoder's, and PCA's at its bottleneck."""
    if config.search != "grid":
        return []
    widest = config.widest_run()
    scores = config.memorization and config.memorization_method == "references"
    pca = RunSpec.pca(widest.bottleneck, config.seeds[0] if config.data_seeds else None)
    return ([widest] if scores or "widest" in config.audit else []) + ([pca] if scores else [])


def late_references(config, results, selection):
    """Reference models that need the finished runs: the selected autoencoder's (and, after a grow search, the
    widest one's and PCA's)."""
    selected = None
    among = (selection or {}).get("autoencoder")
    if isinstance(among, dict) and among.get("model") == "autoencoder":
        selected = RunSpec(int(among["bottleneck"]), among["hidden"], config.seeds[0], kind=config.architecture)
    specs = audit_runs(config, results, selected)
    if config.search != "grid" and config.memorization and config.memorization_method == "references" and specs:
        specs.append(RunSpec.pca(specs[0].bottleneck, config.seeds[0] if config.data_seeds else None))
    return specs


def write_memorization_and_audit(folder, plans, data, samples, config):
    """``memorization.csv`` (+ ``.json``: the scores' agreement), ``audit_summary.csv`` and ``audit.csv`` from every
    complete plan, rebuilt from the committed groups on every run (:func:`audit_tasks`, here, one after another)."""
    run_tasks(audit_tasks(folder, plans, data, samples, config), 1)


def audit_tasks(folder, plans, data, samples, config):
    """:func:`write_memorization_and_audit`'s work as one :class:`Task` per plan (read its committed groups, score,
    audit); the files are written once the last is back, in the order of ``plans``.

    The targets' errors are taken from ``samples`` here, so the tasks share no table and may run anywhere, at the
    same time (threads of this process: ``finish.run_in_threads(audit_tasks(...) + finish_tasks(...))``).
    """
    folder, outputs = Path(folder), {}

    def done(i):
        def record(output):
            outputs[i] = output
            if len(outputs) == len(tasks):
                _write_audit(folder, [outputs[j] for j in range(len(tasks))], data, config)
        return record

    tasks = []
    for plan in plans:
        seeds = [plan.spec.seed] if config.data_seeds else None
        tasks.append(Task(_plan_outputs, (plan, data, _target_errors(plan, samples, seeds)), done(len(tasks))))
    return tasks


def _plan_outputs(plan, data, targets):
    """:func:`memorization_and_audit`'s frames for a complete plan, None for an incomplete one, the message of the
    ValueError that stopped it otherwise."""
    errors = plan.load()
    if errors is None:
        return None
    try:
        return plan, _memorization_and_audit(plan, data, errors, targets)
    except ValueError as exc:  # e.g. every reference model diverged: the rest of the study stands
        return plan, f"no memorization scores or audit for {plan.spec.architecture}: {exc}"


def _write_audit(folder, outputs, data, config):
    from .store import write_csv, write_json

    scores, summaries, rocs, agreements = [], [], [], []
    for output in filter(None, outputs):
        plan, frames = output
        if isinstance(frames, str):
            warnings.warn(frames, RuntimeWarning, stacklevel=2)
            continue
        memo, summary, roc, agreement = frames
        scores.append(memo)
        agreements.append(agreement)
        if summary is not None and plan.audited:
            summaries.append(summary)
            rocs.append(roc)
    if scores and config.memorization_method == "references":
        write_csv(folder / "memorization.csv", pd.concat(scores, ignore_index=True))
        write_json(folder / "memorization.json", agreements)
        if data.image_shape is not None:  # the most and least memorized samples of the first autoencoder, drawn
            _write_extremes(folder / "memorized_samples.npz", scores[0], data)
    if summaries:
        write_csv(folder / "audit_summary.csv", pd.concat(summaries, ignore_index=True))
        write_csv(folder / "audit.csv", pd.concat(rocs, ignore_index=True))


def _write_extremes(path, scores, data, n=8):
    from .store import write_npz

    ranked = scores.dropna(subset=["score"]).sort_values("score", ascending=False, kind="stable")
    chosen = pd.concat([ranked.head(n), ranked.tail(n)])
    write_npz(path, X=data.clean[chosen["sample"].to_numpy()], sample=chosen["sample"].to_numpy(),
              score=chosen["score"].to_numpy(), image_shape=np.asarray(data.image_shape[-2:]),
              run=np.asarray(str(scores["run"].iloc[0])))


def audit_runs(config, results, selected=None):
    """The architectures to audit (first seed each): the widest autoencoder and/or the selected one.

    The widest is :meth:`StudyConfig.widest_run`'s for a grid; a grow search has no grid, so there it is the
    largest run it trained (most parameters)."""
    ok = results[(results["status"] == "ok") & (results["model"] == "autoencoder")]
    specs = [RunSpec.from_run(r) for r in ok["run"].unique()]
    if not specs:
        return []
    chosen = []
    if "widest" in config.audit and config.search == "grid":
        widest = config.widest_run()
        if any(s.architecture == widest.architecture for s in specs):
            chosen.append(widest)
    elif "widest" in config.audit:
        widest = ok.sort_values(["n_params", "bottleneck"]).iloc[-1]["run"]
        chosen.append(RunSpec.from_run(widest))
    if "selected" in config.audit and selected is not None:
        chosen.append(selected)
    out = {}
    for spec in chosen:
        seeds = sorted(s.seed for s in specs if s.architecture == spec.architecture)
        out.setdefault(spec.architecture, RunSpec(spec.bottleneck, spec.hidden, seeds[0], kind=spec.kind))
    return list(out.values())


def plan_references(spec, data, config, store_path, audited=False):
    """The reference models of ``spec``'s architecture (its ``ModelConfig``, the study's ``TrainConfig``)."""
    pool = data.pool
    masks = reference_masks(len(pool), config.n_references, seed=config.seed)
    run = Run.of(spec, config, data)
    model = partial(unfitted_pca, spec.bottleneck) if spec.model == "pca" else run.model
    train = run.train
    tasks = plan_reference_tasks(masks, model, train)
    made_of = {"run": spec.run, "model": model.to_dict() if spec.model != "pca" else "pca",
               "train": train.to_dict() if train is not None else None, "noise_std": config.noise_std,
               "data": data.fingerprint, "split": split_fingerprint(data), "masks": array_fingerprint(masks)}
    provenance = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()
    return ReferencePlan(spec, pool, masks, tasks, Path(store_path) / FOLDER / spec.architecture,
                         audited and spec.model == "autoencoder", provenance, model, train)


def _train_task(model, train, data, masks, pool, task):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a diverged reference is a NaN row, skipped when scoring
        early = train is not None and train.restore_best  # the remedy: stopped where the study's runs stop
        val = dict(zip(("X_val", "clean_val"), data.split_arrays("val")[:2])) if early else {}
        errors = train_references(data.inputs(pool), masks, model, train, indices=task, progress=False, **val)
    return task, errors


def reference_tasks(plan, data, config):
    """One :class:`Task` per group not yet committed; each commits its errors as soon as it is back."""
    def commit(output):
        task, errors = output
        write_npz(plan.group_file(task), indices=np.asarray(task), errors=errors,
                  provenance=np.asarray(plan.provenance), sha256=np.asarray(plan.digest(task, errors)))
        plan.written.add(task[0])

    # groups written here are not read back (0.2 s for 12): ReferencePlan.load checks each before the audit uses it
    missing = [t for t in plan.tasks if t[0] not in plan.written and not _committed(plan, t)]
    return [Task(_train_task, (plan.model, plan.train, data, plan.masks, plan.pool, t), commit,
                 here=plan.spec.model == "pca") for t in missing]  # PCA: scikit-learn (see Task)


def reference_flops(tasks):
    """Training FLOPs (:func:`autoenc.training_flops`) of the reference models that ``tasks`` train, each on its
    half of the pool; PCA references and other tasks count 0."""
    return sum(training_flops(t.args[0], int(t.args[3][i].sum()), t.args[1].epochs)
               for t in tasks if t.fn is _train_task and t.args[1] is not None for i in t.args[5])


def _committed(plan, task):
    """Whether a group is committed and intact; a damaged or foreign one is removed with a warning naming it."""
    errors, problem = plan.read(task)
    if problem:
        file = plan.group_file(task)
        warnings.warn(f"reference group {file.parent.name}/{file.name} in {file.parent.parent} is damaged "
                      f"({problem}); it will be recomputed", RuntimeWarning, stacklevel=3)
        with contextlib.suppress(OSError):
            os.unlink(file)
    return errors is not None


def _split_half_agreement(errors, masks):
    """Spearman between the scores of the first and second half of the references, and the Spearman-Brown
    prediction for two independent sets of the full size."""
    from scipy.stats import spearmanr

    half = len(masks) // 2
    if half < 2 or half % 2:
        return np.nan, np.nan
    a = memorization_from_references(errors[:half], masks[:half])["score"]
    b = memorization_from_references(errors[half:], masks[half:])["score"]
    r = float(spearmanr(a, b, nan_policy="omit").statistic)
    return r, 2 * r / (1 + r) if r > -1 else np.nan


def memorization_and_audit(plan, data, samples, seeds=None, errors=None):
    """Per-sample memorization of the plan's architecture and the audit of the study's runs of it (``errors``:
    the plan's reference errors, :meth:`ReferencePlan.load`'s, when already read).

    Returns
    -------
    memorization : DataFrame
        ``run, model, sample, label, split, error_in, error_out, score, score_se, n_in, n_out``.
    summary, roc : DataFrame
        :func:`analysis.measures.audit.membership_audit`'s frames with ``run`` (the architecture's first run) first.
    agreement : dict
        ``run, n_references, split_half_spearman, predicted_spearman`` (two independent full sets).
    """
    errors = plan.load() if errors is None else errors
    return _memorization_and_audit(plan, data, errors, _target_errors(plan, samples, seeds))


def _memorization_and_audit(plan, data, errors, targets):
    run = plan.spec.run
    scores = memorization_from_references(errors, plan.masks)
    in_train = np.isin(plan.pool, data.train)
    scores.insert(0, "run", run)
    scores.insert(1, "model", plan.spec.model)
    scores["sample"] = plan.pool[scores["sample"].to_numpy()]
    scores["label"] = data.y[scores["sample"].to_numpy()] if data.y is not None else np.nan
    scores["split"] = np.where(in_train, "train", "test")
    r, predicted = _split_half_agreement(errors, plan.masks)
    agreement = {"run": run, "n_references": int(len(plan.masks)), "split_half_spearman": r,
                 "predicted_spearman": predicted}
    summary = roc = None
    if targets is not None:
        target_errors, runs = targets
        is_member = np.broadcast_to(in_train, target_errors.shape)
        # unresolvable FPRs are flagged in the frame itself; no catch_warnings: tasks may run on threads
        summary, roc = membership_audit(target_errors, is_member, errors, plan.masks, warn_unresolved=False)
        summary["epsilon_lb"] = summary["attack"].map(_epsilon_bounds(target_errors[0], in_train, errors, plan.masks,
                                                                      delta=1 / len(data.train)))
        summary.insert(0, "run", run)
        summary.insert(1, "targets", " ".join(runs))
        roc.insert(0, "run", run)
    return scores, summary, roc, agreement


def _epsilon_bounds(target_errors, in_train, ref_errors, masks, delta):
    """{attack: the epsilon lower bound its scores prove for the first target} (one training run, so that the
    audited samples are independent experiments; :mod:`analysis.measures.privacy`). Each holds at
    ``1 - 0.05 / n_attacks``, so the largest of them holds at 95%."""
    scores = attack_scores(target_errors, ref_errors, masks, population=~in_train[None])
    confidence = 1 - 0.05 / scores["attack"].nunique()
    return {attack: epsilon_lower_bound(group["score"].to_numpy(), in_train, delta=delta,
                                        confidence=confidence)["epsilon_lb"]
            for attack, group in scores.groupby("attack", sort=False)}


def _target_errors(plan, samples, seeds=None):
    """Per-sample errors on the pool of every successful run of the architecture (the targets), or None."""
    if samples is None or samples.empty or plan.spec.model == "pca":
        return None
    runs = sorted(r for r in samples["run"].unique() if RunSpec.from_run(r).architecture == plan.spec.architecture
                  and (seeds is None or RunSpec.from_run(r).seed in seeds))
    ours = samples[samples["run"].isin(runs) & samples["split"].isin(["train", "test"])]  # the big table, once
    by_run = dict(tuple(ours.groupby("run", sort=False)))
    rows = []
    for run in runs:
        mine = by_run.get(run, ours.iloc[:0])
        errors = pd.Series(mine["error"].to_numpy(), index=mine["sample"].to_numpy())
        if not np.isin(plan.pool, errors.index).all():
            continue
        rows.append(errors.loc[plan.pool].to_numpy(dtype=float))
    return (np.vstack(rows), runs) if rows else None


def _kfold_runs(config):
    """The widest autoencoder of the grid (the one the audit describes) and PCA at its bottleneck."""
    widest = config.widest_run()
    return widest, RunSpec.pca(widest.bottleneck)


def kfold_memorization(data, config):
    """Per-sample memorization scores (K-fold cross-fitting) of the runs :func:`_kfold_runs` names."""
    from sklearn.decomposition import PCA

    from autoenc import AutoencoderTransformer

    ae, pca = _kfold_runs(config)
    m, t = (run := Run.of(ae, config, data)).model, run.train
    makers = {
        ae: lambda: AutoencoderTransformer(
            n_components=m.bottleneck, hidden=m.hidden, activation=m.activation, epochs=t.epochs,
            batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay, patience=t.patience, threads=t.threads,
            device=t.device, random_state=t.seed, kind=m.kind, input_shape=m.input_shape if m.kind == "conv" else None,
            kernel_size=config.kernel_size),
        pca: lambda: PCA(n_components=pca.bottleneck, random_state=0),
    }
    frames = []
    for spec, make in makers.items():
        scores = memorization_scores(data.inputs(data.train), make, n_folds=config.n_folds, seed=config.seed,
                                     progress=False)
        scores.insert(0, "run", spec.run)
        scores.insert(1, "model", spec.model)
        scores["sample"] = data.train[scores["sample"].to_numpy()]
        scores["label"] = data.y[scores["sample"].to_numpy()] if data.y is not None else np.nan
        frames.append(scores)
    return pd.concat(frames, ignore_index=True)
