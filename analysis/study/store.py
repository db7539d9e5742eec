"""The study folder: each finished run committed atomically as it completes, tables rebuilt from the runs.

Layout (the README's "The study folder" lists every file a finished study holds)::

    study.json              exact config, seeds, package versions, data facts
    splits.npz              train / val / test indices
    models/<run>/           config.json + weights.safetensors (autoencoders and PCA as its linear network)
    models/<run>/result.json  the run's measurements, worker and kernels; written last: its presence means "finished"
    results.csv, samples.csv, history.csv   rebuilt from every result.json
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from autoenc import Autoencoder, ModelConfig, load, save
from autoenc._safe_read import read_bounded
from autoenc.io import CONFIG_FILE, WEIGHTS_FILE, atomic_write, read_config

from .runspec import RunSpec
from .integrity import folder_checksums, safe_child, verify_checksums
from .provenance import DIGEST_KEY, document_digest, mismatches, say_mixed_kernels
from ._write import write_csv, write_json, write_npz  # noqa: F401 (the study's writers, reached through here)

__all__ = ["RunResult", "StudyStore", "RESULT_COLUMNS"]

RESULT_COLUMNS = [
    "run", "model", "bottleneck", "hidden", "width", "depth", "seed", "n_params", "n_features", "noise_std",
    "split", "n_samples", "mse", "mse_clean", "noise_memorization", "nm_reference", "df", "sure", "mse_denoise",
    "gap", "ratio", "membership_auc", "membership_auc_ci_low", "membership_auc_ci_high", "tpr_at_1pct_fpr",
    "tpr_at_1pct_fpr_ci_low", "tpr_at_1pct_fpr_ci_high", "ks_statistic", "ks_pvalue", "status", "reason", "epochs",
    "best_clean_epoch", "memorization_gap_at_best"]
SAMPLE_COLUMNS = ["run", "model", "bottleneck", "hidden", "width", "depth", "seed", "split", "sample", "label",
                  "error", "error_clean"]
HISTORY_COLUMNS = ["run", "model", "bottleneck", "hidden", "width", "depth", "seed", "epoch", "train_loss",
                   "val_loss", "noise_memorization_train", "noise_memorization_val", "mse_clean_val",
                   "membership_auc_val"]
RESULT_FILE = "result.json"
MAX_RESULT_BYTES = 64 << 20  # without an expectation; a study sets a cap from its data's size
MAX_STUDY_BYTES = 1 << 20
_IGNORED = object()  # a folder that is no run of the study asking: neither reused nor removed


@dataclass
class RunResult:
    """What one finished run (autoencoder or PCA) gives the study: its measurements, its history, its weights.

    ``rows`` holds one dict per split (``split, n_samples, mse, ...``); ``samples`` the per-sample errors as column
    lists; ``history`` the per-epoch losses (autoencoders); ``state`` the weights (not written into
    ``result.json``: they go to ``weights.safetensors``).
    """

    spec: RunSpec
    n_params: int
    n_features: int
    noise_std: float
    model_config: dict
    train_config: dict | None = None
    status: str = "ok"
    reason: str = ""
    epochs: int = 0
    train_seconds: float = 0.0
    worker: str = ""  # host:pid of the process that computed it; kernels: its CPU and float kernels (io.float_kernels)
    kernels: str = ""
    data_fingerprint: str | None = None  # content hash of the data it was trained and measured on
    split_fingerprint: str | None = None  # content hash of the split it used
    rows: list = field(default_factory=list)
    samples: dict | None = None
    history: dict | None = None
    state: dict | None = field(default=None, repr=False)

    @property
    def run(self):
        return self.spec.run

    @property
    def state_expected(self):
        """A finished run that trained has weights on disk."""
        return self.status == "ok"

    def provenance(self):
        """What it records about how it was made, as :func:`analysis.provenance.run_provenance` gives it."""
        return {"model_config": self.model_config, "train_config": self.train_config, "noise_std": self.noise_std,
                "data_fingerprint": self.data_fingerprint, "split_fingerprint": self.split_fingerprint}

    def to_dict(self):
        """The JSON document of ``result.json``: the run's identifying columns first, no weights."""
        # the fields as they are: dataclasses.asdict would deep-copy every per-sample list only to serialize it
        return {**self.spec.fields(), **{f.name: getattr(self, f.name) for f in fields(self)
                                         if f.name not in ("spec", "state")}}

    @classmethod
    def from_dict(cls, doc):
        """Read a ``result.json`` document back (the run id is parsed, never trusted as a path)."""
        spec = RunSpec.from_run(doc["run"])
        names = [f for f in cls.__dataclass_fields__ if f not in ("spec", "state")]
        result = cls(spec=spec, **{k: doc[k] for k in names if k in doc})
        if not isinstance(result.rows, list) or not all(isinstance(r, dict) and "split" in r for r in result.rows):
            raise ValueError("rows must be a list of per-split records")
        return result


class StudyStore:
    """Reads and writes one study folder.

    :meth:`expect` tells the store which runs the study makes and what each must record; from then on a run folder
    is reused only when it matches (see :meth:`finished`).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._expected = None  # run id -> the provenance it must record, or None for a run of no concern
        self._max_result_bytes = MAX_RESULT_BYTES
        self._good = None  # the runs found intact (and matching), kept up to date by commit
        self._ignored = set()
        self._written = None  # the pending files of write_tables(wait=False)

    def expect(self, expected, max_result_bytes=MAX_RESULT_BYTES):
        """Reuse only runs for which ``expected(run)`` gives the provenance they record; ignore the others.

        Parameters
        ----------
        expected : callable
            ``expected(run_id) -> dict or None`` (:func:`analysis.provenance.run_provenance`); None: not a run of
            this study, neither reused nor removed.
        max_result_bytes : int
            A ``result.json`` larger than this is damaged, refused unread.
        """
        self._expected, self._max_result_bytes, self._good = expected, int(max_result_bytes), None

    # -- the config -------------------------------------------------------------------------------------------
    def open(self, config_dict, facts, mutable=()):
        """Create the folder for ``config_dict``, or check that an existing one was made with the same config
        and the same data.

        The data are identified by ``facts["data_fingerprint"]`` (a hash of their content), not by their path: the
        same file moved elsewhere resumes, a file changed in place is refused.

        Fields named in ``mutable`` may differ: they add runs without changing any (the remedies), and the folder's
        ``study.json`` takes their new values.

        Raises
        ------
        ValueError
            If the folder holds a study with a different config (naming the fields that differ) or other data.
        """
        file = self.path / "study.json"
        if os.path.lexists(file):
            try:
                old_doc = self.read_study()
                old = old_doc["config"]
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, ValueError, RecursionError):
                raise ValueError(f"{file} is not a study.json written by autoenc; choose another folder") from None
            fingerprint, old_fingerprint = facts.get("data_fingerprint"), old_doc.get("data_fingerprint")
            same_data = fingerprint is not None and fingerprint == old_fingerprint
            fixed = [k for k in {*old, *config_dict} if k not in mutable and not (same_data and k == "dataset")]
            differ = _differences({k: old[k] for k in fixed if k in old}, {k: config_dict[k] for k in fixed
                                                                           if k in config_dict})
            if differ:
                raise ValueError(
                    f"{self.path} holds a study with a different config ({'; '.join(differ)}); "
                    "use another output folder, or the same settings to resume it"
                )
            if fingerprint is not None and old_fingerprint is not None and not same_data:
                raise ValueError(f"the data of {old.get('dataset')!r} changed since {self.path} was made (content "
                                 "fingerprints differ); use another output folder for the new data")
            if any(old.get(k) != config_dict.get(k) for k in mutable):
                config = {k: v for k, v in old.items() if k not in mutable}
                write_json(file, {**old_doc, "config": {**config, **{k: config_dict[k] for k in mutable
                                                                     if k in config_dict}}})
            return False
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(file, {"config": config_dict, **facts})
        return True

    def remove_orphans(self):
        """Delete the temporary files a killed study left (``.<name>.<random>.tmp`` of an atomic write); only the
        lock's holder calls this, so no write of another study is under way. Returns how many were removed."""
        removed = 0
        for pattern in (".*.tmp", "models/*/.*.tmp", "references/*/.*.tmp", "figures/.*.tmp"):
            for file in self.path.glob(pattern):
                if file.is_file() and not file.is_symlink():
                    with contextlib.suppress(OSError):
                        file.unlink()
                        removed += 1
        return removed

    def read_study(self):
        doc = json.loads(read_bounded(self.path / "study.json", MAX_STUDY_BYTES, what="study.json").decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("study.json is not a JSON object")
        return doc

    # -- runs -------------------------------------------------------------------------------------------------
    def finished(self):
        """Names of the runs whose results are committed, intact and (after :meth:`expect`) this study's own.

        A run whose ``result.json`` cannot be read back, whose numbers or files do not match the checksums recorded
        at commit, whose weights do not load, or whose records (run id, configs, noise, data, split) differ from
        what the study expects, is removed with a warning naming it and why, so the study trains it again. A folder
        that is no run of the study is ignored (left in place, never reused). Nothing damaged is trusted, nothing
        damaged is fatal.
        """
        models = self.path / "models"
        if not models.is_dir():
            self._good = set()
            return set()
        good = set()
        for folder in sorted(p for p in models.iterdir() if p.is_dir() or p.is_symlink()):
            problem = self._check(folder)
            if problem is None:
                good.add(folder.name)
            elif problem is _IGNORED:
                if folder.name not in self._ignored:
                    self._ignored.add(folder.name)
                    warnings.warn(f"{folder.name!r} in {models} is not a run of this study; ignored (left in place, "
                                  "never reused)", RuntimeWarning, stacklevel=2)
            elif problem:
                warnings.warn(f"run {folder.name!r} in {models} {problem}; it will be trained again",
                              RuntimeWarning, stacklevel=2)
                _remove(folder)
        self._good = good
        return set(good)

    def _check(self, folder):
        """None for an intact run, "" for an unfinished one (no result.json), ``_IGNORED`` for a folder that is no
        run of the study, else what is wrong, in words."""
        if self._expected is not None:
            want = self._expected(folder.name)
            if want is None:
                return _IGNORED
        if folder.is_symlink():
            return "is damaged (a symbolic link, not a run folder)"
        file = folder / RESULT_FILE
        if not os.path.lexists(file):
            return ""
        try:
            doc = json.loads(read_bounded(file, self._max_result_bytes, what=RESULT_FILE).decode("utf-8"),
                             parse_constant=_refuse_constant)
            result = RunResult.from_dict(doc)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
            why = str(exc) if "refused unread" in str(exc) else type(exc).__name__
            return f"is damaged ({RESULT_FILE} unreadable: {why})"
        if result.run != folder.name:
            return f"is damaged ({RESULT_FILE} names run {result.run!r})"
        if DIGEST_KEY not in doc:
            return f"is damaged ({RESULT_FILE} records no checksum of its numbers)"
        if doc[DIGEST_KEY] != document_digest(doc):
            return f"is damaged (its numbers changed since they were written: {RESULT_FILE}'s SHA-256 differs)"
        if self._expected is not None and (differ := mismatches(result.provenance(), want)):
            return f"does not match this study ({'; '.join(differ)})"
        if not result.state_expected:  # a diverged or failed run has no files beside its result
            return None
        if not doc.get("checksums"):
            return "is damaged (no checksums recorded)"
        problems = verify_checksums(folder, doc["checksums"]) or _model_problems(folder, result)
        return f"is damaged ({'; '.join(problems)})" if problems else None

    def commit(self, result: RunResult):
        """Save one run: its weights (if any), then its ``result.json`` with their checksums and the checksum of
        its own numbers, which marks it finished."""
        folder = safe_child(self.path / "models", result.run)
        checksums = {}
        if result.state is not None:
            model = Autoencoder(ModelConfig.from_dict(result.model_config))
            model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in result.state.items()})
            save(model, folder, metadata={"run": result.run, "train": result.train_config})
            checksums = folder_checksums(folder, [CONFIG_FILE, WEIGHTS_FILE])
        write_json(folder / RESULT_FILE, {**result.to_dict(), "checksums": checksums}, digest=True)
        if self._good is not None:
            self._good.add(result.run)

    def records(self):
        """Every committed, intact :class:`RunResult` (of this study, after :meth:`expect`), in run-id order."""
        models = self.path / "models"
        runs = self._good if self._good is not None else self.finished()
        return [RunResult.from_dict(json.loads(read_bounded(models / run / RESULT_FILE, self._max_result_bytes)))
                for run in sorted(runs)]

    # -- tables -----------------------------------------------------------------------------------------------
    def tables(self, remedies=False, records=None):
        """``(results, samples, history)`` frames built from every committed run of the grid (``remedies``: of
        every remedy run, with the ``remedy`` column)."""
        records = [rec for rec in (self.records() if records is None else records)
                   if bool(rec.spec.remedy) == remedies]
        extra = ["remedy"] if remedies else []
        results, samples, history = [], [], []
        for rec in records:
            ids = rec.spec.fields()
            for row in rec.rows:
                results.append({**ids, "n_params": rec.n_params, "n_features": rec.n_features,
                                "noise_std": rec.noise_std, **row, "status": rec.status, "reason": rec.reason,
                                "epochs": rec.epochs})
            if rec.samples:
                samples.append(pd.DataFrame({**ids, **rec.samples}))
            if rec.history:
                history.append(pd.DataFrame({**{c: ids[c] for c in HISTORY_COLUMNS[:7] + extra}, **rec.history}))
        results = pd.DataFrame(results).reindex(columns=RESULT_COLUMNS + extra)
        order = {"train": 0, "val": 1, "test": 2}
        if len(results):
            results = results.sort_values(["model", "depth", "width", "bottleneck", "seed", "split"],
                                          key=lambda c: c.map(order) if c.name == "split" else c,
                                          na_position="first").reset_index(drop=True)
        samples = (pd.concat(samples, ignore_index=True).reindex(columns=SAMPLE_COLUMNS + extra) if samples
                   else pd.DataFrame(columns=SAMPLE_COLUMNS + extra))
        history = (pd.concat(history, ignore_index=True).reindex(columns=HISTORY_COLUMNS + extra) if history
                   else pd.DataFrame(columns=HISTORY_COLUMNS + extra))
        return results, samples, history

    def write_tables(self, wait=True):
        """Write ``results.csv``, ``samples.csv`` and ``history.csv`` (atomically), and the remedy runs' own
        ``remedies.csv``, ``remedy_samples.csv`` and ``remedy_history.csv`` where there are any; return the grid's
        frames.

        ``wait=False`` returns the frames at once and writes the files on a thread (a third of a second for the
        default study, spent while the workers train the late references); :meth:`wait_tables`, or the next
        ``write_tables``, waits for them and raises what writing them raised.
        """
        if not isinstance(wait, bool):
            raise TypeError(f"wait must be True or False, got {wait!r}")
        self.wait_tables()
        records = self.records()
        say_mixed_kernels(self.path, records)
        tables = [(names, remedies, self.tables(remedies, records))
                  for names, remedies in ((("results", "samples", "history"), False),
                                          (("remedies", "remedy_samples", "remedy_history"), True))]
        if wait:
            self._write_frames(tables)
        else:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="autoenc-tables")
            self._written = self._writer.submit(self._write_frames, tables)
            self._writer.shutdown(wait=False)
        return tables[0][2]

    def wait_tables(self):
        """Wait for the files of a ``write_tables(wait=False)``; raise what writing them raised."""
        written, self._written = self._written, None
        if written is not None:
            written.result()

    def _write_frames(self, tables):
        for names, remedies, frames in tables:
            for name, frame in zip(names, frames):
                if remedies and frames[0].empty:
                    with contextlib.suppress(FileNotFoundError):
                        (self.path / f"{name}.csv").unlink()  # remedies dropped from the config
                else:
                    write_csv(self.path / f"{name}.csv", frame)


def _refuse_constant(name):
    raise ValueError(f"{name} is not strict JSON")


def _model_problems(folder, result):
    """What is wrong with a run's saved model: config.json naming another run or describing another model than
    result.json, or weights that do not load (NaN included)."""
    try:
        doc = read_config(folder)
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        if meta.get("run") != folder.name:
            return [f"{CONFIG_FILE} names run {meta.get('run')!r}"]
        differ = mismatches({"model_config": doc["model"], "train_config": meta.get("train")},
                            {"model_config": result.model_config, "train_config": result.train_config})
        if differ:
            return [f"{CONFIG_FILE} disagrees with {RESULT_FILE} ({'; '.join(differ)})"]
        load(folder)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return [str(exc)]
    return []


def _remove(folder):
    """Delete a damaged run folder (a link is unlinked, never followed)."""
    if folder.is_symlink():
        folder.unlink()
    else:
        shutil.rmtree(folder, ignore_errors=True)


def _differences(old, new, prefix=""):
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b)):
            out.append(f"{prefix}{key}: {a!r} in the folder, {b!r} now")
    return out
