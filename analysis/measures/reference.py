"""Reference models: N models of one configuration, each trained on a random half of a pool of samples.

Every sample is in exactly half of the models, so each sample has its own distribution of errors when seen (in)
and when unseen (out). The two uses:

- per-sample memorization (after Feldman & Zhang 2020): mean error when out minus mean error when in
  (:func:`memorization_from_references`);
- the reference distributions behind calibrated membership attacks (LiRA, RMIA: :mod:`analysis.measures.audit`).

The work splits into three steps so that a study can run it as resumable tasks: :func:`reference_masks` plans the
halves from a seed, :func:`plan_reference_tasks` cuts the models into batched training groups, and
:func:`train_references` trains one such group (any subset of model indices) and returns plain arrays of
per-sample errors, which the caller stores; the scores are computed from the assembled arrays.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from autoenc import ModelConfig, TrainConfig, reconstruct
from autoenc.batched import fit_group
from autoenc.planning import MAX_MEMBERS, plan_groups
from autoenc.validation import check_array, check_int, check_same_shape

from .reconstruction import reconstruct_with, row_errors

__all__ = ["memorization_from_references", "plan_reference_tasks", "reference_masks", "reference_train_config",
           "train_references"]


def reference_masks(n_samples, n_models=16, seed=0):
    """Which samples each reference model trains on: a random half of the pool per model, balanced both ways.

    Models come in complementary pairs: for pair ``j`` a random permutation of the samples puts the first
    ``ceil(n/2)`` in model ``2j`` and the rest in model ``2j + 1``. Every sample is then in exactly
    ``n_models / 2`` models (as with the per-sample rank design of the LiRA code), and every model trains on
    ``ceil(n/2)`` (even index) or ``floor(n/2)`` (odd index) samples. Equal training sizes are what lets the
    models train together in batched groups; the pairs also make each sample's in and out sets the same size.

    Parameters
    ----------
    n_samples : int
        Size of the pool, >= 2.
    n_models : int, default 16
        Even, >= 2.
    seed : int, default 0
        The masks are a deterministic function of ``(n_samples, seed)`` and the model index: a larger set with
        the same seed extends a smaller one (its first models are the smaller set).

    Returns
    -------
    masks : ndarray of bool, shape (n_models, n_samples)
        ``masks[m, i]``: sample ``i`` is in model ``m``'s training half.

    Examples
    --------
    >>> masks = reference_masks(5, n_models=4, seed=0)
    >>> masks.sum(axis=0).tolist(), masks.sum(axis=1).tolist()
    ([2, 2, 2, 2, 2], [3, 2, 3, 2])
    """
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    n_models = check_int(n_models, "n_models", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    if n_models % 2:
        raise ValueError(f"n_models must be even (every sample in exactly half of the models), got {n_models}")
    masks = np.zeros((n_models, n_samples), dtype=bool)
    half = -(-n_samples // 2)
    for j in range(n_models // 2):  # one generator per pair: extending the set keeps the first pairs
        perm = np.random.default_rng([seed, j]).permutation(n_samples)
        masks[2 * j, perm[:half]] = True
        masks[2 * j + 1] = ~masks[2 * j]
    return masks


def reference_train_config(train_config, m):
    """Training settings of reference model ``m``: ``train_config`` with seed ``train_config.seed + 1000 + m``.

    The offset keeps reference seeds apart from the seeds of study runs (small integers), so no reference model
    shares its initialization and data order with a target it audits.

    Examples
    --------
    >>> reference_train_config(TrainConfig(seed=2), 3).seed
    1005
    """
    if not isinstance(train_config, TrainConfig):
        raise TypeError(f"train_config must be a TrainConfig, got {type(train_config).__name__}")
    return train_config.replace(seed=train_config.seed + 1000 + check_int(m, "m", minimum=0))


def _check_masks(masks, n_samples=None):
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.dtype != bool:
        raise ValueError(f"masks must be a 2-D bool array (n_models, n_samples), got {masks.dtype} of shape "
                         f"{masks.shape}")
    if n_samples is not None and masks.shape[1] != n_samples:
        raise ValueError(f"masks has {masks.shape[1]} columns but X has {n_samples} rows; they must match")
    sizes = masks.sum(axis=1)
    if np.any(sizes == 0):
        raise ValueError(f"reference model(s) {np.flatnonzero(sizes == 0).tolist()} have an empty training half")
    return masks


def _check_model(model, train_config):
    if isinstance(model, ModelConfig):
        if not isinstance(train_config, TrainConfig):
            raise TypeError(f"train_config must be a TrainConfig when model is a ModelConfig, got "
                            f"{type(train_config).__name__}")
    elif not callable(model):
        raise TypeError(f"model must be a ModelConfig or a callable returning a new unfitted estimator "
                        f"(e.g. lambda: PCA(5)), got {type(model).__name__}")


def plan_reference_tasks(masks, model, train_config=None, *, max_members=MAX_MEMBERS):
    """Cut the reference models into training tasks: lists of model indices, each one :func:`train_references` call.

    For a ``ModelConfig``, models with the same training size are grouped by :func:`autoenc.planning.plan_groups`
    (at most ``max_members`` per group, fewer for wide models whose working set would leave the cache); a task
    is one batched group. For an estimator factory, tasks are runs of ``max_members`` consecutive models.

    Parameters
    ----------
    masks : ndarray of bool, shape (n_models, n_samples)
    model : ModelConfig or callable
    train_config : TrainConfig, optional
        Required with a ``ModelConfig``.
    max_members : int, default ``autoenc.planning.MAX_MEMBERS`` (16)

    Returns
    -------
    list of list of int
        Every model index exactly once; deterministic.

    Examples
    --------
    >>> masks = reference_masks(100, n_models=4)
    >>> plan_reference_tasks(masks, ModelConfig(8, 2, (16,)), TrainConfig())
    [[0, 1, 2, 3]]
    """
    masks = _check_masks(masks)
    _check_model(model, train_config)
    max_members = check_int(max_members, "max_members", minimum=1)
    n_models = len(masks)
    if not isinstance(model, ModelConfig):
        return [list(range(s, min(s + max_members, n_models))) for s in range(0, n_models, max_members)]
    return _groups(range(n_models), masks.sum(axis=1), model, train_config, max_members)


def _groups(indices, sizes, config, train_config, max_members):
    """Batched groups of ``indices``: same training size, then ``plan_groups`` (which also caps the cache)."""
    tasks = []
    for size in sorted({int(sizes[m]) for m in indices}, reverse=True):
        same = [m for m in indices if sizes[m] == size]
        tcs = [reference_train_config(train_config, m) for m in same]
        tasks += [[same[i] for i in g] for g in plan_groups([config] * len(same), tcs, max_members)]
    return sorted(tasks, key=min)


def train_references(X, masks, model, train_config=None, *, indices=None, target=None, clean=None, X_val=None,
                     clean_val=None, threads=1, progress=None):
    """Train reference models on their halves and measure each on every sample of the pool.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The pool: the inputs the models train on (noisy ones where noise was injected).
    masks : ndarray of bool, shape (n_models, n_samples)
        From :func:`reference_masks`.
    model : ModelConfig or callable
        A ``ModelConfig``: model ``m`` is an ``Autoencoder`` trained with
        ``reference_train_config(train_config, m)``, in batched groups of equal training size
        (:func:`autoenc.batched.fit_group`; each ends exactly as solo :func:`autoenc.fit` on its half would).
        A callable: ``model()`` returns a new unfitted estimator with ``fit``, ``transform`` and
        ``inverse_transform`` (``lambda: PCA(5)``), fitted on ``X[masks[m]]``.
    train_config : TrainConfig, optional
        Required with a ``ModelConfig``; ignored otherwise.
    indices : sequence of int, optional
        The models to train (a task of :func:`plan_reference_tasks`); default all. The result for a model does
        not depend on which other models are trained with it.
    target : array-like of shape (n_samples, n_features), optional
        What reconstructions are compared with; ``X`` by default.
    clean : array-like of shape (n_samples, n_features), optional
        A second target (e.g. the clean signal): its errors come back too, at the cost of one more subtraction.
    X_val : array-like of shape (n_val, n_features), optional
        Validation data for ``train_config.patience`` and ``restore_best`` (early stopping needs it).
    clean_val : array-like of shape (n_val, n_features), optional
        The clean signal of ``X_val``: with ``restore_best``, each model keeps its weights at the minimum of its
        clean validation error (as the study's early-stopped runs do), instead of its validation loss.
    threads : int, default 1
        BLAS threads while fitting estimators (restored afterwards); autoencoders use ``train_config.threads``.
        Many small fits on a busy machine run 10-50x slower with every core's threads competing.
    progress : bool or None
        tqdm bar over models; None shows it only on a terminal.

    Returns
    -------
    errors : ndarray of shape (len(indices), n_samples), float64
        ``errors[j, i]``: mean over features of the squared error of model ``indices[j]`` on sample ``i``, seen
        or not. A model whose training diverged gets a row of NaN (with a warning); the scoring functions skip it.
    errors_clean : ndarray of shape (len(indices), n_samples)
        Only when ``clean`` is given: the pair ``(errors, errors_clean)``.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((40, 6))
    >>> train_references(X, reference_masks(40, n_models=4), lambda: PCA(2)).shape
    (4, 40)
    """
    X = check_array(X, "X")
    masks = _check_masks(masks, len(X))
    _check_model(model, train_config)
    target = X if target is None else check_same_shape(target, "target", X, "X")
    targets = [target] if clean is None else [target, check_same_shape(clean, "clean", X, "X")]
    n_models = len(masks)
    if indices is None:
        indices = list(range(n_models))
    indices = [check_int(m, "indices[...]", minimum=0, maximum=n_models - 1) for m in indices]
    if len(set(indices)) != len(indices):
        raise ValueError(f"indices must not repeat a model, got {indices}")
    threads = check_int(threads, "threads", minimum=1)
    if isinstance(model, ModelConfig) and model.input_dim != X.shape[1]:
        raise ValueError(f"model.input_dim={model.input_dim} but X has {X.shape[1]} features")

    criterion = None
    if clean_val is not None:
        clean_val = check_same_shape(clean_val, "clean_val", X_val, "X_val")

        def criterion(epoch, reconstruct):
            return np.mean(np.square(np.asarray(reconstruct(X_val), dtype=np.float64) - clean_val), axis=(-2, -1))

    out = np.full((len(targets), len(indices), len(X)), np.nan)
    row = {m: j for j, m in enumerate(indices)}
    bar = tqdm(total=len(indices), disable=None if progress is None else not progress, leave=False)
    if isinstance(model, ModelConfig):
        sizes = masks.sum(axis=1)
        for group in _groups(indices, sizes, model, train_config, MAX_MEMBERS):
            halves = np.stack([X[masks[m]] for m in group])
            tcs = [reference_train_config(train_config, m) for m in group]
            results = fit_group([model] * len(group), halves, X_val, tcs, progress=False, on_eval=criterion)
            for m, result in zip(group, results):
                if result.model is None:
                    warnings.warn(f"reference model {m} diverged ({result.error}); its errors are NaN",
                                  RuntimeWarning, stacklevel=2)
                else:
                    X_hat = reconstruct(result.model, X)
                    for t, tgt in enumerate(targets):
                        out[t, row[m]] = row_errors(X_hat, tgt)
                bar.update()
    else:
        with threadpool_limits(threads):
            for m in indices:
                estimator = model()
                estimator.fit(X[masks[m]])
                X_hat = reconstruct_with(estimator, X)
                for t, tgt in enumerate(targets):
                    out[t, row[m]] = row_errors(X_hat, tgt)
                bar.update()
    bar.close()
    return out[0] if clean is None else (out[0], out[1])


def _usable(errors, masks, name="errors"):
    """Checked (errors, masks) with rows of diverged models (any non-finite value) dropped, with a warning."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_models, n_samples), got shape {errors.shape}")
    masks = _check_masks(masks)
    if masks.shape != errors.shape:
        raise ValueError(f"{name} has shape {errors.shape} but masks has shape {masks.shape}; they must match")
    bad = ~np.isfinite(errors).all(axis=1)
    if bad.all():
        raise ValueError(f"every row of {name} has non-finite values: no usable reference model")
    if bad.any():
        warnings.warn(f"skipping reference model(s) {np.flatnonzero(bad).tolist()}: non-finite errors "
                      "(diverged training)", RuntimeWarning, stacklevel=3)
    if np.any(errors[~bad] < 0):
        raise ValueError(f"{name} must be non-negative (squared errors)")
    return errors[~bad], masks[~bad]


def memorization_from_references(errors, masks):
    """Per-sample memorization from reference models: mean error when out minus mean error when in.

    Parameters
    ----------
    errors : array-like of shape (n_models, n_samples)
        From :func:`train_references`; rows with non-finite values (diverged models) are skipped.
    masks : ndarray of bool, shape (n_models, n_samples)

    Returns
    -------
    DataFrame
        One row per sample: ``sample``, ``error_in`` and ``error_out`` (means over the models that did and did
        not train on it), ``score = error_out - error_in``, ``score_se`` (standard error of the difference of the
        two means, ``sqrt(var_in / n_in + var_out / n_out)``, NaN when a group has fewer than 2 models),
        ``n_in``, ``n_out``.

    Examples
    --------
    >>> masks = np.array([[True, False], [False, True], [True, False], [False, True]])
    >>> errors = np.array([[1.0, 4.0], [3.0, 2.0], [1.0, 4.0], [3.0, 2.0]])
    >>> memorization_from_references(errors, masks)["score"].tolist()
    [2.0, 2.0]
    """
    errors, masks = _usable(errors, masks)
    n_in, n_out = masks.sum(axis=0), (~masks).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a sample with no in (or out) model gets NaN
        mean_in = np.where(masks, errors, 0).sum(axis=0) / n_in
        mean_out = np.where(~masks, errors, 0).sum(axis=0) / n_out
        var_in = np.where(masks, (errors - mean_in) ** 2, 0).sum(axis=0) / (n_in - 1)
        var_out = np.where(~masks, (errors - mean_out) ** 2, 0).sum(axis=0) / (n_out - 1)
        se = np.sqrt(var_in / n_in + var_out / n_out)
    se[(n_in < 2) | (n_out < 2)] = np.nan
    return pd.DataFrame({"sample": np.arange(errors.shape[1]), "error_in": mean_in, "error_out": mean_out,
                         "score": mean_out - mean_in, "score_se": se, "n_in": n_in, "n_out": n_out})
