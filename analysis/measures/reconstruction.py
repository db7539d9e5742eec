"""Reconstructions of any model through one code path, per-sample errors, and PCA as the baseline network.

The base of the measures: ``errors``, ``memorization`` and the study import from here, never the other way.
"""
from __future__ import annotations

import numpy as np
import torch

from autoenc import Autoencoder, ModelConfig, reconstruct
from autoenc.train import LARGE_INPUT
from autoenc.validation import check_array, check_int, check_same_shape

__all__ = ["pca_as_autoencoder", "pca_baseline", "reconstruct_with", "reconstruction_errors", "row_chunks",
           "row_errors", "unfitted_pca"]


def reconstruct_with(model, X):
    """Reconstructions of ``X`` by any kind of model, through one code path.

    Parameters
    ----------
    model : Autoencoder, torch.nn.Module or fitted transformer
        An ``autoenc.Autoencoder`` (any module mapping inputs to reconstructions) is run with
        :func:`autoenc.reconstruct`; any object with ``transform`` and ``inverse_transform`` (``PCA``,
        ``AutoencoderTransformer``) gives ``inverse_transform(transform(X))``. An object that also has ``fit``
        must be fitted.
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    X_hat : ndarray of shape (n_samples, n_features)
        In the dtype the model returns (float32 input stays float32 for both kinds).

    Raises
    ------
    NotFittedError
        (a ValueError) for an estimator that was never fitted.
    TypeError
        For anything else.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((20, 3))
    >>> np.allclose(reconstruct_with(PCA(3).fit(X), X), X)
    True
    """
    X = check_array(X, "X")
    if isinstance(model, torch.nn.Module):
        return reconstruct(model, X)
    if not (hasattr(model, "transform") and hasattr(model, "inverse_transform")):
        raise TypeError(
            "model must be an autoenc.Autoencoder or a fitted transformer with transform and inverse_transform "
            f"(PCA, AutoencoderTransformer), got {type(model).__name__}"
        )
    if hasattr(model, "fit") and not _is_fitted(model):
        from sklearn.exceptions import NotFittedError  # scikit-learn only for a model that is not a network

        raise NotFittedError(
            f"model ({type(model).__name__}) is not fitted yet: call model.fit(X_train) before measuring "
            "its reconstructions"
        )
    X_hat = np.asarray(model.inverse_transform(model.transform(X)))
    if X_hat.shape != X.shape:
        raise ValueError(
            f"model's inverse_transform(transform(X)) has shape {X_hat.shape} but X has shape {X.shape}: "
            "model must reconstruct its input"
        )
    return X_hat


def _is_fitted(model):
    """scikit-learn's rule; duck-typed estimators (no ``BaseEstimator``, hence no tags) get it without the tags."""
    if hasattr(model, "__sklearn_tags__"):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError:
            return False
        return True
    if hasattr(model, "__sklearn_is_fitted__"):
        return bool(model.__sklearn_is_fitted__())
    return any(v.endswith("_") and not v.startswith("__") for v in getattr(model, "__dict__", {}))


CHUNK_VALUES = 2**22  # values of a float64 temporary taken at once (32 MB): bounds memory on MNIST-size data


def row_chunks(n, d):
    """Slices of rows covering ``range(n)``, each at most ``CHUNK_VALUES`` values of ``d`` features (one slice, and
    so the same arithmetic as without chunks, whenever everything fits)."""
    step = max(1, CHUNK_VALUES // max(d, 1))
    return [slice(s, min(s + step, n)) for s in range(0, n, step)] or [slice(0, 0)]


def row_errors(X_hat, target):
    """Mean over features of the squared difference, per row, in float64 (chunk by chunk of rows)."""
    out = np.empty(len(X_hat))
    for rows in row_chunks(*X_hat.shape):
        out[rows] = np.mean(np.square(X_hat[rows].astype(np.float64, copy=False) - target[rows]), axis=1)
    return out


def reconstruction_errors(model, X, target=None):
    """Per-sample reconstruction error: the mean over features of ``(x_hat - target)**2``.

    Parameters
    ----------
    model : Autoencoder or fitted transformer
        See :func:`reconstruct_with`.
    X : array-like of shape (n_samples, n_features)
        The model's input.
    target : array-like of shape (n_samples, n_features), optional
        What the reconstruction is compared with (e.g. the clean signal); ``X`` by default.

    Returns
    -------
    errors : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((20, 3))
    >>> reconstruction_errors(PCA(1).fit(X), X).shape
    (20,)
    """
    X = check_array(X, "X")
    target = X if target is None else check_same_shape(target, "target", X, "X")
    return row_errors(reconstruct_with(model, X), target)


def unfitted_pca(bottleneck, *, random_state=0):
    """A new ``PCA(n_components=bottleneck, random_state=random_state)``, as :func:`pca_baseline` fits it, with
    scikit-learn imported only now: measuring a network, or planning PCA's reference models (a picklable factory is
    ``functools.partial(unfitted_pca, k)``), needs none."""
    bottleneck = check_int(bottleneck, "bottleneck", minimum=1)
    from sklearn.decomposition import PCA

    return PCA(n_components=bottleneck, random_state=random_state)


def pca_baseline(X_train, bottleneck, *, random_state=0):
    """The PCA baseline: ``PCA(n_components=bottleneck)`` fitted on the training inputs.

    Parameters
    ----------
    X_train : array-like of shape (n_samples, n_features)
        The inputs the autoencoder was trained on (noisy ones where noise was injected).
    bottleneck : int
        ``1 <= bottleneck <= min(n_samples, n_features)``.
    random_state : int, RandomState or None, default 0
        Passed to PCA (used by its randomized solvers).

    Returns
    -------
    PCA
        Fitted.

    Raises
    ------
    FloatingPointError
        When the fit fails numerically (no convergence, non-finite components); the message names the input
        scale when that is the cause. ``autoenc.DivergenceError`` is one too: one ``except FloatingPointError``
        catches a run's numerical failure, autoencoder or PCA.

    Examples
    --------
    >>> X = np.random.default_rng(0).random((20, 5))
    >>> pca_baseline(X, 2).n_components_
    2
    """
    X_train = check_array(X_train, "X_train")
    limit = min(X_train.shape)
    bottleneck = check_int(bottleneck, "bottleneck")
    if not 1 <= bottleneck <= limit:
        raise ValueError(
            f"bottleneck must satisfy 1 <= bottleneck <= min(n_samples, n_features) = {limit} for X_train of "
            f"shape {X_train.shape}, got bottleneck={bottleneck}"
        )
    pca, reason = unfitted_pca(bottleneck, random_state=random_state), "its components are not finite"
    with np.errstate(all="ignore"):  # reported below, once, with the cause
        try:
            pca.fit(X_train)
            ok = all(np.isfinite(a).all() for a in (pca.components_, pca.explained_variance_, pca.mean_))
        except (np.linalg.LinAlgError, ValueError) as exc:  # "SVD did not converge", NaN inside sklearn's solvers
            ok, reason = False, str(exc)
    if not ok:
        top = float(np.abs(X_train).max())
        if top > LARGE_INPUT:
            raise FloatingPointError(f"PCA failed on X_train ({reason}): the inputs are far from unit scale (max |x| "
                                     f"= {top:.2g}), so standardize them (--scale standard) first")
        raise FloatingPointError(f"PCA failed on X_train of shape {X_train.shape}: {reason}")
    return pca


def pca_as_autoencoder(pca, dtype=torch.float32) -> Autoencoder:
    """A fitted PCA as the linear autoencoder it is: code = W (x - mean), reconstruction = W^T code + mean.

    Parameters
    ----------
    pca : fitted sklearn.decomposition.PCA
        Without whitening.
    dtype : torch.dtype, default torch.float32
        float64 keeps PCA's components exactly (the float32 copy is a projection only to about 1e-7).

    Returns
    -------
    Autoencoder
        ``ModelConfig(d, k, hidden=(), linear=True)`` in ``dtype``, whose reconstructions equal PCA's up to that
        dtype's rounding.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((30, 5)).astype(np.float32)
    >>> pca = PCA(2).fit(X)
    >>> bool(np.allclose(reconstruct(pca_as_autoencoder(pca), X), reconstruct_with(pca, X), atol=1e-5))
    True
    """
    from sklearn.decomposition import PCA

    if not isinstance(pca, PCA) or not hasattr(pca, "components_"):
        raise TypeError(f"pca must be a fitted sklearn PCA, got {type(pca).__name__}")
    if pca.whiten:
        raise ValueError("pca must not whiten: a whitened PCA is not an orthogonal projection")
    k, d = pca.components_.shape
    model = Autoencoder(ModelConfig(d, k, hidden=(), linear=True), dtype=dtype)
    W, mean = torch.as_tensor(pca.components_, dtype=dtype), torch.as_tensor(pca.mean_, dtype=dtype)
    enc, dec = model.linear_layers()
    with torch.no_grad():
        enc.weight.copy_(W)
        enc.bias.copy_(-W @ mean)
        dec.weight.copy_(W.T)
        dec.bias.copy_(mean)
    return model


def widest_row(model, d, dtype=torch.float32, device="cpu"):
    """Values per row of a torch module's widest layer output (a convolution's feature maps included): what batch
    budgets of per-row work (Jacobians, probes) must count. An ``Autoencoder`` knows it; another module is run on
    one row of zeros with hooks."""
    if isinstance(getattr(model, "widest", None), int):
        return max(d, model.widest)
    sizes = [d]

    def record(module, args, out):
        if isinstance(out, torch.Tensor) and out.dim():
            sizes.append(out[0].numel())

    hooks = [m.register_forward_hook(record) for m in model.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros(1, d, dtype=dtype, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return max(sizes)
