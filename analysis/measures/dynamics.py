"""Memorization over training: when the noise gets in, and the width sweep past the interpolation threshold.

The end-of-training measures (noise memorization, clean error, membership AUC) at log-spaced epochs, for one
:func:`autoenc.fit` (its ``callback``) or a batched group (:func:`autoenc.batched.fit_group`'s ``on_eval`` hook).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from autoenc import Autoencoder, ModelConfig, TrainConfig, fit, reconstruct
from autoenc.batched import fit_group
from autoenc.planning import plan_groups
from autoenc.validation import check_array, check_columns, check_int, check_same_shape

from .memorization import membership_auc
from .reconstruction import pca_baseline, row_errors

__all__ = ["CurveRecorder", "clean_minimum", "double_descent", "log_epochs", "measure_curves", "training_curves"]

MEASURES = ("noise_memorization_train", "noise_memorization_val", "mse_clean_val", "membership_auc_val",
            "mse_train", "mse_val")


def log_epochs(n_epochs, n_points=12):
    """``n_points`` distinct epochs from 1 to ``n_epochs``, about evenly spaced on a log scale, the last included.

    Rounded from ``geomspace(1, n_epochs, n_points)``; where rounding would repeat an epoch (the dense start) the
    next integer is taken instead, so the count is exactly ``min(n_points, n_epochs)``.

    Parameters
    ----------
    n_epochs : int
        The training budget, >= 1.
    n_points : int, default 12
        >= 1; one point gives only the last epoch.

    Returns
    -------
    list of int
        Strictly increasing, starting at 1 (when ``n_points > 1``) and ending at ``n_epochs``.

    Examples
    --------
    >>> log_epochs(60)
    [1, 2, 3, 4, 5, 6, 9, 14, 20, 29, 41, 60]
    >>> log_epochs(3, 12)
    [1, 2, 3]
    """
    n_epochs = check_int(n_epochs, "n_epochs", minimum=1)
    n_points = min(check_int(n_points, "n_points", minimum=1), n_epochs)
    if n_points == 1:
        return [n_epochs]
    out = []
    for t in np.geomspace(1, n_epochs, n_points):
        out.append(max(int(round(t)), out[-1] + 1 if out else 1))
    out[-1] = n_epochs
    for i in range(n_points - 2, -1, -1):  # pushed-up early points may crowd the end: keep them strictly below
        out[i] = min(out[i], out[i + 1] - 1)
    return out


CHUNK_ROWS = 4096  # rows measured at once: bounds the float64 copies to a few tens of MB per member


class CurveRecorder:
    """The curve measures at evaluated epochs (:func:`measure_curves` builds it): call it as ``on_eval(epoch,
    reconstruct)`` (:func:`autoenc.batched.fit_group`'s hook), or pass ``fit_callback(model, epochs)`` to
    :func:`autoenc.fit`; :meth:`frame` returns what was recorded."""

    def __init__(self, X_train, X_val, clean_train, clean_val, noise_train, noise_val, chunk=CHUNK_ROWS):
        self.n_train, self.chunk = len(X_train), chunk
        # The callers' arrays, by reference and in their dtype (no copies: data can be large), measured in float64
        self._splits = [(X_train, clean_train, noise_train), (X_val, clean_val, noise_val)]
        self._noisy = noise_train is not None
        self._energy = None if not self._noisy else tuple(
            np.concatenate([np.square(e[rows], dtype=np.float64).sum(1) for rows in self._chunks(len(e))]).sum()
            for e in (noise_train, noise_val))
        self.rows = []

    def _chunks(self, n):
        return [slice(s, min(s + self.chunk, n)) for s in range(0, n, self.chunk)] or [slice(0, 0)]

    def _measure(self, reconstruct):
        """Per member and sample (training samples, then validation): error against the input, squared residual
        to the clean signal and its product with the noise, chunk by chunk."""
        n = sum(len(X) for X, _, _ in self._splits)
        errors = products = clean_sq = None
        offset = 0
        for X, clean, noise in self._splits:
            for rows in self._chunks(len(X)):
                R = np.asarray(reconstruct(X[rows]), dtype=np.float64)
                if R.ndim == 2:
                    R = R[None]
                if R.shape[1:] != X[rows].shape:
                    raise ValueError(f"reconstruct returned shape {R.shape}, expected (n_members, *{X[rows].shape})")
                if errors is None:
                    errors, products, clean_sq = (np.empty((len(R), n)) for _ in range(3))
                out = slice(offset + rows.start, offset + rows.stop)
                errors[:, out] = np.mean(np.square(R - X[rows]), axis=2)
                residual = R - clean[rows]
                clean_sq[:, out] = np.mean(np.square(residual), axis=2)
                products[:, out] = np.einsum("mnd,nd->mn", residual, noise[rows]) if self._noisy else np.nan
            offset += len(X)
        return errors, products, clean_sq

    def __call__(self, epoch, reconstruct):
        """Record every member at ``epoch``; return each member's clean validation error where the clean signal
        differs from the inputs (the criterion of early stopping, ``TrainConfig.restore_best``), else None."""
        errors, products, clean_sq = self._measure(reconstruct)
        t, M = self.n_train, len(errors)
        mse_clean_val = clean_sq[:, t:].mean(axis=1)
        nm = [np.full(M, math.nan)] * 2
        if self._noisy:
            nm = [products[:, sl].sum(1) / e if e > 0 else np.full(M, math.nan)
                  for sl, e in ((slice(None, t), self._energy[0]), (slice(t, None), self._energy[1]))]
        for m in range(M):
            finite = bool(np.all(np.isfinite(errors[m])))  # a diverged member's reconstructions are NaN
            self.rows.append({
                "member": m, "epoch": int(epoch),
                "noise_memorization_train": float(nm[0][m]), "noise_memorization_val": float(nm[1][m]),
                "mse_clean_val": float(mse_clean_val[m]),
                "membership_auc_val": membership_auc(errors[m, :t], errors[m, t:]) if finite else math.nan,
                "mse_train": float(errors[m, :t].mean()), "mse_val": float(errors[m, t:].mean()),
            })
        return mse_clean_val if self._noisy else None

    def fit_callback(self, model, epochs, last=None):
        """A ``callback(history)`` for :func:`autoenc.fit` that records ``model`` after each epoch in ``epochs``
        (and after ``last``, the budget, when given); it never stops training."""
        wanted = {int(e) for e in epochs} | ({int(last)} if last is not None else set())

        def callback(history):
            if history.epochs in wanted:
                self(history.epochs, lambda X: reconstruct(model, X)[None])
            return False

        return callback

    def frame(self, member=True):
        """The recorded rows: ``member`` (unless ``member=False``), ``epoch`` and the measures, in call order."""
        frame = pd.DataFrame(self.rows, columns=["member", "epoch", *MEASURES])
        return frame if member else frame.drop(columns="member")


def measure_curves(X_train, X_val, *, clean_train=None, clean_val=None, noise_train=None, noise_val=None):
    """A recorder of the curve measures, reusable as ``fit_group``'s ``on_eval`` or ``fit``'s ``callback``.

    At each call, with ``x = s + e`` (``s`` clean, ``e`` injected noise) and a member's reconstructions ``x_hat``:
    ``noise_memorization_train`` / ``_val`` (``sum <x_hat - s, e> / sum ||e||^2`` over the split, NaN without
    noise), ``mse_clean_val`` (mean squared error per feature against ``s``), ``membership_auc_val`` (ROC AUC of
    minus the per-sample error at telling train from validation samples), ``mse_train`` / ``mse_val`` (against the
    inputs, at the end of the epoch). A diverged member's row is NaN. Computed in float64.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        The training inputs (noisy where noise was injected), shared by all members.
    X_val : array-like of shape (n_val, n_features)
    clean_train, clean_val : array-like, optional
        The clean signal of each split; default ``X - noise`` (or ``X`` without noise).
    noise_train, noise_val : array-like, optional
        The injected noise of each split; both or neither.

    Returns
    -------
    CurveRecorder
        ``recorder(epoch, reconstruct)`` measures; ``recorder.frame()`` gives ``member``, ``epoch`` and the
        measures, one row per member and evaluated epoch.

    Examples
    --------
    >>> from autoenc.batched import fit_group
    >>> rng = np.random.default_rng(0)
    >>> clean, noise = rng.random((60, 8)), 0.1 * rng.standard_normal((60, 8))
    >>> rec = measure_curves((clean + noise)[:40], (clean + noise)[40:], clean_train=clean[:40],
    ...                      clean_val=clean[40:], noise_train=noise[:40], noise_val=noise[40:])
    >>> _ = fit_group([ModelConfig(8, 2, (16,))] * 2, (clean + noise)[:40], train_configs=TrainConfig(epochs=4),
    ...               eval_epochs=[1, 2], on_eval=rec, progress=False)
    >>> rec.frame()[["member", "epoch"]].values.tolist()
    [[0, 1], [1, 1], [0, 2], [1, 2], [0, 4], [1, 4]]
    """
    X_train, X_val = check_array(X_train, "X_train"), check_array(X_val, "X_val", n_features=X_train.shape[1])
    if (noise_train is None) != (noise_val is None):
        raise ValueError("pass both noise_train and noise_val or neither")
    if noise_train is not None:
        noise_train = check_same_shape(noise_train, "noise_train", X_train, "X_train")
        noise_val = check_same_shape(noise_val, "noise_val", X_val, "X_val")
    clean_train = (X_train - (0 if noise_train is None else noise_train) if clean_train is None
                   else check_same_shape(clean_train, "clean_train", X_train, "X_train"))
    clean_val = (X_val - (0 if noise_val is None else noise_val) if clean_val is None
                 else check_same_shape(clean_val, "clean_val", X_val, "X_val"))
    return CurveRecorder(X_train, X_val, clean_train, clean_val, noise_train, noise_val)


def training_curves(model_or_configs, X_train, X_val, train_config=None, *, clean_train=None, clean_val=None,
                    noise_train=None, noise_val=None, epochs=None, dtype=torch.float32, progress=False):
    """Train and record the curve measures (see :func:`measure_curves`) at log-spaced epochs and the last.

    Parameters
    ----------
    model_or_configs : Autoencoder, ModelConfig or sequence of ModelConfig
        An ``Autoencoder`` is trained in place by :func:`autoenc.fit` (its ``callback`` records; with
        ``patience``, the epoch that stops training is not recorded, since ``fit`` stops before calling back).
        Configs are trained as one group by :func:`autoenc.batched.fit_group` (its ``on_eval`` hook records).
    X_train : array-like of shape (n_train, n_features)
    X_val : array-like of shape (n_val, n_features)
    train_config : TrainConfig or sequence of TrainConfig, optional
        One per config allowed for a group (differing only in ``seed``); default ``TrainConfig()``.
    clean_train, clean_val, noise_train, noise_val : array-like, optional
        As in :func:`measure_curves`.
    epochs : sequence of int, optional
        Strictly increasing epochs to record; default ``log_epochs(train_config.epochs)``. The last is always
        recorded.
    dtype : torch.dtype, default torch.float32
        Of a group's weights (a single model keeps its own).
    progress : bool or None, default False

    Returns
    -------
    DataFrame
        ``epoch`` and the measures, one row per evaluated epoch; a group adds ``member`` (index into configs).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((50, 8), dtype=np.float32)
    >>> curves = training_curves(Autoencoder(ModelConfig(8, 2)), X[:40], X[40:], TrainConfig(epochs=5))
    >>> curves["epoch"].tolist()
    [1, 2, 3, 4, 5]
    """
    recorder = measure_curves(X_train, X_val, clean_train=clean_train, clean_val=clean_val,
                              noise_train=noise_train, noise_val=noise_val)
    configs = [train_config] if isinstance(train_config, TrainConfig) or train_config is None else train_config
    budget = (configs[0] or TrainConfig()).epochs
    epochs = log_epochs(budget) if epochs is None else list(epochs)
    if isinstance(model_or_configs, Autoencoder):
        if len(configs) != 1:
            raise ValueError(f"one model takes one TrainConfig, got {len(configs)}")
        fit(model_or_configs, X_train, X_val, configs[0], progress=progress,
            callback=recorder.fit_callback(model_or_configs, epochs, last=budget))
        return recorder.frame(member=False)
    group = [model_or_configs] if isinstance(model_or_configs, ModelConfig) else model_or_configs
    if not isinstance(group, Sequence):
        raise TypeError("model_or_configs must be an Autoencoder, a ModelConfig or a sequence of ModelConfig, got "
                        f"{type(model_or_configs).__name__}")
    fit_group(group, X_train, X_val, train_config, dtype=dtype, progress=progress, eval_epochs=epochs,
              on_eval=recorder)
    return recorder.frame()


def clean_minimum(curves, by=None):
    """Per run, the epoch of lowest clean validation error and the memorization gap there.

    What early stopping on the clean signal would keep: ``memorization_gap`` (``noise_memorization_train -
    noise_memorization_val``) at that epoch, beside ``memorization_gap_final`` at the run's last recorded epoch.
    Rows whose ``mse_clean_val`` is NaN (diverged) are ignored; a run with no other row is dropped.

    Parameters
    ----------
    curves : DataFrame
        From :func:`training_curves` (or ``history.csv``): ``epoch``, ``mse_clean_val`` and both noise
        memorizations, plus identifying columns.
    by : list of str, optional
        Columns identifying a run; default those of ``run`` and ``member`` that are present (none: one run).

    Returns
    -------
    DataFrame
        One row per run: the curve's row at its minimum (so any other column, e.g. ``width``, is kept), with
        ``epoch`` that minimum's epoch, plus ``memorization_gap``, ``final_epoch`` and ``memorization_gap_final``.

    Examples
    --------
    >>> curves = pd.DataFrame({"epoch": [1, 2, 3], "mse_clean_val": [0.3, 0.1, 0.2],
    ...                        "noise_memorization_train": [0.1, 0.3, 0.9], "noise_memorization_val": [0.1] * 3})
    >>> clean_minimum(curves)[["epoch", "memorization_gap", "memorization_gap_final"]].values.round(2).tolist()
    [[2.0, 0.2, 0.8]]
    """
    need = ["epoch", "mse_clean_val", "noise_memorization_train", "noise_memorization_val"]
    check_columns(curves, need, "curves")
    by = [c for c in ("run", "member") if c in curves.columns] if by is None else list(by)
    check_columns(curves, by, "curves")
    ok = curves[curves["mse_clean_val"].notna()].sort_values("epoch", kind="stable")
    gap = ok["noise_memorization_train"] - ok["noise_memorization_val"]
    ok = ok.assign(memorization_gap=gap)
    groups = ok.groupby(by, sort=True, dropna=False) if by else [((), ok)]
    rows = []
    for _, g in groups:
        best, last = g.loc[g["mse_clean_val"].idxmin()], g.iloc[-1]
        rows.append({**best.to_dict(), "final_epoch": last["epoch"],
                     "memorization_gap_final": last["memorization_gap"]})
    return pd.DataFrame(rows, columns=[*ok.columns, "final_epoch", "memorization_gap_final"])


def _n_params(config):
    with torch.device("meta"):  # counted on shapes: no weights drawn
        return Autoencoder(config).n_parameters


def double_descent(X_train, X_test, widths, model=None, *, seeds=(0,), train_config=None, clean_train=None,
                   clean_test=None, eval_epochs=None, include_pca=True, dtype=torch.float32, progress=False):
    """Train and test error over a width sweep, with the interpolation threshold (parameters = n_train x d).

    Autoencoders ``model`` with every hidden layer ``w`` wide (``d -> w^depth -> bottleneck -> w^depth -> d``) for
    each width ``w`` and seed, trained by
    :func:`autoenc.batched.fit_group` (grouped by :func:`autoenc.planning.plan_groups`). The *interpolation
    threshold* is ``n_train * d``, the number of values the training set asks the network to reproduce: a network
    with far fewer parameters cannot store its noisy training inputs, one with more can. Classical double descent
    (Belkin et al. 2019; Nakkiran et al. 2020, also epoch-wise) puts a test-error peak near it, for models trained
    to (near) zero training error; a short budget, weight decay or the bottleneck can hide it. PCA and linear
    autoencoders (``linear=True``: rank-``bottleneck`` linear maps whatever the width) have no threshold to cross.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        Inputs the models are trained on (noisy).
    X_test : array-like of shape (n_test, n_features)
    widths : sequence of int
        Hidden widths; choose them so that ``n_params / interpolation_threshold`` spans well below and above 1.
    model : ModelConfig, optional
        The architecture the sweep shares (depth ``len(hidden)``); its widths become each of ``widths`` (channels
        with ``kind="conv"``). Default: one hidden layer, bottleneck 8 (at most ``n_features``).
    seeds : sequence of int, default (0,)
    train_config : TrainConfig, optional
        Its ``seed`` is replaced by each of ``seeds``; default ``TrainConfig()``.
    clean_train, clean_test : array-like, optional
        Clean signal of each split, for ``mse_clean`` (NaN otherwise).
    eval_epochs : sequence of int, optional
        Also record these epochs (the epoch-wise view); the last epoch is always recorded.
    include_pca : bool, default True
        Add PCA at the bottleneck (``model="pca"``, ``width`` and ``epoch`` NaN).
    dtype : torch.dtype, default torch.float32
    progress : bool or None, default False

    Returns
    -------
    DataFrame
        One row per model x seed x recorded epoch x split (``train``, ``test``): ``model``, ``width``,
        ``bottleneck``, ``seed``, ``epoch``, ``n_params``, ``split``, ``mse``, ``mse_clean``,
        ``interpolation_threshold`` (``n_train * d``) and ``params_ratio`` (``n_params`` over it).

    Examples
    --------
    >>> X = np.random.default_rng(0).random((40, 6), dtype=np.float32)
    >>> dd = double_descent(X[:30], X[30:], [2, 8], ModelConfig(6, 2, (1,)), train_config=TrainConfig(epochs=2))
    >>> int(dd["interpolation_threshold"].iloc[0]), sorted(dd["params_ratio"].round(2).unique().tolist())
    (180, [0.1, 0.24, 0.84])
    """
    X_train = check_array(X_train, "X_train")
    n, d = X_train.shape
    X_test = check_array(X_test, "X_test", n_features=d)
    clean = [None if c is None else check_same_shape(c, name, X, x_name) for c, name, X, x_name in
             ((clean_train, "clean_train", X_train, "X_train"), (clean_test, "clean_test", X_test, "X_test"))]
    widths = [check_int(w, f"widths[{i}]", minimum=1) for i, w in enumerate(widths)]
    seeds = [check_int(s, f"seeds[{i}]", minimum=0) for i, s in enumerate(seeds)]
    if not widths or not seeds:
        raise ValueError("widths and seeds must each hold at least one value")
    train_config = TrainConfig() if train_config is None else train_config
    model = ModelConfig(d, min(8, d), hidden=(1,)) if model is None else model
    for name, value, kind in (("train_config", train_config, TrainConfig), ("model", model, ModelConfig)):
        if not isinstance(value, kind):
            raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
    if model.input_dim != d or not model.hidden:
        raise ValueError(f"model must take the {d} features of X_train through at least one hidden layer, got "
                         f"input_dim={model.input_dim}, hidden={model.hidden}")
    bottleneck, runs = model.bottleneck, [(w, s) for w in widths for s in seeds]
    configs = [model.replace(hidden=(w,) * len(model.hidden)) for w, _ in runs]
    train_configs = [train_config.replace(seed=s) for _, s in runs]
    threshold = n * d
    splits = (("train", X_train, clean[0]), ("test", X_test, clean[1]))
    rows = []

    def row(model, width, seed, epoch, n_params, split, X_hat, X, target):
        return {"model": model, "width": width, "bottleneck": bottleneck, "seed": seed, "epoch": epoch,
                "n_params": n_params, "split": split, "mse": float(row_errors(X_hat, X).mean()),
                "mse_clean": math.nan if target is None else float(row_errors(X_hat, target).mean()),
                "interpolation_threshold": threshold, "params_ratio": n_params / threshold}

    for group in plan_groups(configs, train_configs):
        def on_eval(epoch, reconstruct, group=group):
            for split, X, target in splits:
                R = reconstruct(X)
                for m, i in enumerate(group):
                    rows.append(row("autoencoder", runs[i][0], runs[i][1], epoch, _n_params(configs[i]), split,
                                    R[m], X, target))

        fit_group([configs[i] for i in group], X_train, None, [train_configs[i] for i in group], dtype=dtype,
                  progress=progress, eval_epochs=eval_epochs or (), on_eval=on_eval)
    if include_pca:
        pca = pca_baseline(X_train, bottleneck)
        for split, X, target in splits:
            X_hat = pca.inverse_transform(pca.transform(X))
            rows.append(row("pca", math.nan, math.nan, math.nan, bottleneck * d + d, split, X_hat, X, target))
    frame = pd.DataFrame(rows)
    return frame.sort_values(["model", "width", "seed", "epoch", "split"], kind="stable", ignore_index=True)
