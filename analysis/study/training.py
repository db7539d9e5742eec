"""The tasks a worker runs: train a batched group of autoencoders, or fit PCA, and measure each run.

Each returns plain :class:`~.store.RunResult` records; only the study's own process writes them.
"""
from __future__ import annotations

import os
import socket
import time
import warnings

import numpy as np
import pandas as pd

from autoenc import Autoencoder
from autoenc.batched import fit_group
from autoenc.io import float_kernels

from .prepare import StudyData
from .config import StudyConfig
from .runspec import Run
from ..measures.dynamics import clean_minimum, log_epochs, measure_curves
from ..measures.errors import pair_metrics, seen_unseen
from ..measures.intervals import FPRResolutionWarning
from ..measures.reconstruction import pca_as_autoencoder, pca_baseline, reconstruct_with, row_errors
from .provenance import split_fingerprint
from .store import RunResult

__all__ = ["CURVE_COLUMNS", "fit_pca", "train_group", "with_pairs"]

CURVE_COLUMNS = ["noise_memorization_train", "noise_memorization_val", "mse_clean_val", "membership_auc_val"]


def _split_inputs(data: StudyData):
    """Each non-empty split's (inputs, clean signal), gathered once per task for training and measuring alike."""
    return {name: data.split_arrays(name)[:2] for name in ("train", "val", "test") if len(getattr(data, name))}


def _measure(model, data: StudyData, bottleneck, splits=None, pairs=True):
    """Result rows (train, val, test) and per-sample errors (rows of the dataset) of one fitted model.

    The noise is not passed: the measures take it as inputs minus clean signal, chunk by chunk (data can be large).
    ``pairs=False`` leaves the train/test pair measures NaN, for :func:`with_pairs` in the study process.
    """
    arrays = {}
    for name, (X, clean) in (splits or _split_inputs(data)).items():
        arrays.update({f"X_{name}": X, f"clean_{name}": clean})
    with warnings.catch_warnings():  # a small unseen split cannot resolve 1% FPR: said once, by the study
        warnings.simplefilter("ignore", FPRResolutionWarning)
        summary, samples = seen_unseen(model, **arrays, sigma=data.sigma, return_samples=True, pairs=pairs)
    summary["nm_reference"] = data.nm_reference(bottleneck)
    if data.denoise_noise is not None:  # error against the clean validation input of its noisy version
        X_val = arrays["X_val"]
        denoised = row_errors(reconstruct_with(model, X_val + data.denoise_noise), X_val).mean()
        summary["mse_denoise"] = np.where(summary["split"] == "val", denoised, np.nan)
    rows = [{k: v for k, v in row.items() if k != "memorization"} for row in summary.to_dict("records")]
    for name in ("train", "val", "test"):  # row within its split -> row of the dataset
        mask = (samples["split"] == name).to_numpy()
        samples.loc[mask, "sample"] = getattr(data, name)[samples.loc[mask, "sample"].to_numpy()]
    samples["label"] = data.y[samples["sample"].to_numpy()] if data.y is not None else np.nan
    return rows, {c: samples[c].tolist() for c in ["split", "sample", "label", "error", "error_clean"]}


def with_pairs(result: RunResult):
    """``result`` with the pair measures of its train and test rows (:func:`~..measures.errors.pair_metrics`: gap,
    membership AUC, TPR at 1% FPR, KS test, with their intervals) computed from its per-sample errors, in place.

    A worker leaves them NaN (:func:`train_group`): they need scipy.stats, 0.44 s to import in each worker, which
    the study process has anyway. The same function on the same numbers gives the same values; computing them
    again (a PCA run measured whole) changes nothing.
    """
    rows = {row["split"]: row for row in result.rows}
    if result.status != "ok" or not result.samples or not all("gap" in rows.get(s, {}) for s in ("train", "test")):
        return result
    split, error = np.asarray(result.samples["split"]), np.asarray(result.samples["error"], dtype=np.float64)
    measured = [(rows[s], pd.DataFrame({"error": error[split == s]})) for s in ("train", "test")]
    with warnings.catch_warnings():  # a small unseen split cannot resolve 1% FPR: said once, by the study
        warnings.simplefilter("ignore", FPRResolutionWarning)
        pair = pair_metrics(*measured)
    for s in ("train", "test"):
        rows[s].update((k, v) for k, v in pair.items() if k in rows[s])  # "memorization" is not a result column
    return result


def _result(run: Run, data: StudyData, config: StudyConfig, **fields):
    spec, d, mc = run.spec, data.n_features, run.model
    n_params = Autoencoder(mc).n_parameters if spec.model == "autoencoder" else spec.n_params(d)
    return RunResult(spec=spec, n_params=n_params, n_features=d,
                     noise_std=config.noise_std, model_config=mc.to_dict(),
                     worker=f"{socket.gethostname()}:{os.getpid()}", kernels=float_kernels(),
                     data_fingerprint=data.fingerprint,
                     split_fingerprint=split_fingerprint(data), **fields)


def _early_stopping(recorder, val, curve_epochs):
    """The ``on_eval`` of an early-stopped group (``TrainConfig.restore_best``): every epoch, the criterion, each
    member's clean validation error (where the study knows a clean signal; else None, the validation loss); the
    other curve measures at the log-spaced epochs only, as for every run. The criterion joins the curves at every
    epoch, so that ``history.csv`` shows the minimum the weights are kept at."""
    X_v, clean_v = val
    wanted = set(curve_epochs)

    def on_eval(epoch, reconstruct):
        if epoch in wanted or recorder is None or not recorder._noisy:
            return None if recorder is None else recorder(epoch, reconstruct)
        R = np.asarray(reconstruct(X_v), dtype=np.float64)
        R = R[None] if R.ndim == 2 else R
        errors = np.mean(np.square(R - clean_v), axis=(1, 2))
        recorder.rows += [{"member": m, "epoch": int(epoch), "mse_clean_val": float(e)} for m, e in enumerate(errors)]
        return errors

    return on_eval


def train_group(runs, data: StudyData, config: StudyConfig, progress=False):
    """Train ``runs`` (one batched group, or one model alone) and measure each; one :class:`RunResult` per run.

    ``progress``: an epoch bar under the study's (only where the group trains in the study's own process).
    """
    configs, train_configs = [r.model for r in runs], [r.train for r in runs]
    splits = _split_inputs(data)
    X_val = splits["val"][0] if "val" in splits else None
    recorder = None
    if X_val is not None:  # the measures over training, at log-spaced epochs (a batched forward each)
        (X_t, clean_t), (X_v, clean_v) = splits["train"], splits["val"]
        noise = {} if not data.noisy else {"noise_train": data.noise_of(data.train),
                                           "noise_val": data.noise_of(data.val)}
        recorder = measure_curves(X_t, X_v, clean_train=clean_t, clean_val=clean_v, **noise)
        del noise
    start = time.perf_counter()
    # fit_group is exact to solo fit, and faster even for a group of one (no autograd, one fused Adam buffer).
    early = any(t.restore_best for t in train_configs)
    on_eval = (_early_stopping(recorder, splits["val"], log_epochs(config.train.epochs)) if early and recorder
               else recorder)
    members = fit_group(configs, splits["train"][0], X_val, train_configs, progress=progress, on_eval=on_eval,
                        eval_epochs=log_epochs(config.train.epochs) if recorder and not early else None)
    seconds = (time.perf_counter() - start) / len(runs)
    curves = recorder.frame() if recorder else None
    results = []
    for i, (run, member) in enumerate(zip(runs, members)):
        result = _result(run, data, config, train_config=run.train.to_dict(), train_seconds=seconds,
                         epochs=member.history.epochs)
        if member.model is None:
            result.status, result.reason = "diverged", member.error
            result.rows = [{"split": s, "n_samples": len(getattr(data, s))} for s in ("train", "val", "test")]
        else:
            result.rows, result.samples = _measure(member.model, data, run.spec.bottleneck, splits, pairs=False)
            result.history = _with_curves(member.history.to_dict(), None if curves is None else
                                          curves[curves["member"] == i])
            if curves is not None:
                best = clean_minimum(curves[curves["member"] == i]).iloc[0]
                for row in result.rows:  # what early stopping on the clean signal would keep
                    row.update(best_clean_epoch=int(best["epoch"]), memorization_gap_at_best=best["memorization_gap"])
            result.state = {k: v.detach().cpu().numpy() for k, v in member.model.state_dict().items()}
        results.append(result)
    return results


def _with_curves(history, curves):
    """The per-epoch losses with the curve measures beside them (NaN at epochs that were not measured)."""
    by_epoch = None if curves is None or curves.empty else curves.set_index("epoch")
    for column in CURVE_COLUMNS if by_epoch is not None else ():
        values = by_epoch[column].reindex(history["epoch"]) if column in by_epoch else [np.nan] * len(history["epoch"])
        history[column] = [float(v) if np.isfinite(v) else None for v in values]
    return history


def fit_pca(run: Run, data: StudyData, config: StudyConfig):
    """PCA at one bottleneck, measured through the same code path, saved as the linear network it is; a numerical
    failure is recorded with its reason, and the study goes on."""
    spec, result = run.spec, _result(run, data, config)
    try:
        pca = pca_baseline(data.inputs(data.train), spec.bottleneck, random_state=0)
    except FloatingPointError as exc:
        result.status, result.reason = "failed", str(exc)
        result.rows = [{"split": s, "n_samples": len(getattr(data, s))} for s in ("train", "val", "test")]
        return result
    result.rows, result.samples = _measure(pca, data, spec.bottleneck)
    result.state = {k: v.detach().numpy() for k, v in pca_as_autoencoder(pca).state_dict().items()}
    return result
