"""Degrees of freedom of a reconstruction map: its divergence, which :func:`~analysis.measures.risk.sure` needs.

For inputs ``y = s + e`` with isotropic Gaussian noise ``e ~ N(0, sigma^2 I_d)`` and a map ``f`` that does not
depend on ``e`` (a model evaluated on rows it was not trained on), Stein's lemma gives
``E ||f(y) - s||^2 = E ||f(y) - y||^2 - d sigma^2 + 2 sigma^2 E[div f(y)]``: the error against the clean signal
follows from the error against the noisy input and the divergence ``div f = tr J_f``. ``df`` is that divergence
averaged over the rows; it is ``k`` for a rank-k orthogonal projection (PCA) and ``d`` for the identity.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import jacrev, jvp, vmap

from autoenc import Autoencoder
from autoenc.train import torch_threads
from autoenc.validation import check_array, check_int

from .reconstruction import pca_as_autoencoder, reconstruct_with, widest_row

__all__ = ["EXACT_MAX_FEATURES", "degrees_of_freedom"]

EXACT_MAX_FEATURES = 256  # method="auto" traces the full Jacobian up to this many features
_METHODS = ("auto", "exact", "hutchinson")
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.Identity)
_BUDGET = 2**24  # elements of the largest intermediate tensor (64 MB in float32) when batch_size is None


def degrees_of_freedom(model, X, *, method="auto", n_probes=8, seed=0, batch_size=None, threads=1,
                       return_samples=False):
    """Degrees of freedom of a model's reconstruction map: the mean over the rows of ``X`` of ``tr J_f(x)``.

    ``method="exact"`` sums the diagonal of each row's Jacobian: for a plain MLP ``Autoencoder`` (linear layers
    and elementwise activations) in closed form, ``J = W_m G_{m-1} ... G_1 W_1`` with ``G_l`` the activation
    slopes, by cycling the trace so that products of weights are formed once per model (one ``(n, h) @ (h, h)``
    product for one hidden layer per side); for any other torch module through ``torch.func`` (``vmap`` of
    ``jacrev``). ``"hutchinson"`` averages ``v^T J v`` over ``n_probes`` Rademacher probes ``v`` per row,
    computed with forward-mode ``jvp``; unbiased, with the Monte Carlo error reported per row. ``"auto"`` is
    exact when ``d <= EXACT_MAX_FEATURES`` (256) or when the closed form costs no more than the probes.

    A fitted ``PCA`` is a rank-k orthogonal projection whatever its inputs: exactly ``tr(V^T V) = k`` (from
    ``components_``, in float64); with ``method="hutchinson"`` it is probed as the network
    :func:`~analysis.measures.reconstruction.pca_as_autoencoder`. An ``AutoencoderTransformer`` is measured through its
    network. Any other fitted transformer (``transform`` / ``inverse_transform``, a whitened PCA too) is
    differentiated by central finite differences with step ``eps^(1/3) * max(rms(X), 1)`` in the dtype of ``X``:
    along every coordinate (exact) or along Rademacher probes (hutchinson); exact for affine maps up to rounding,
    ``O(step^2)`` otherwise.

    Parameters
    ----------
    model : Autoencoder, torch.nn.Module, PCA, AutoencoderTransformer or fitted transformer
        A torch module must map ``(n, d)`` inputs to ``(n, d)`` reconstructions.
    X : array-like of shape (n_samples, n_features)
        Inputs at which to differentiate; for SURE, rows the model was not trained on.
    method : {"auto", "exact", "hutchinson"}, default "auto"
    n_probes : int, default 8
        Rademacher probes per row for ``"hutchinson"``.
    seed : int, default 0
        Draws the probes.
    batch_size : int or None
        Rows per batch; None bounds the largest intermediate tensor to about 2**24 elements.
    threads : int, default 1
        torch threads during the call (restored afterwards).
    return_samples : bool, default False
        Also return the per-row divergences.

    Returns
    -------
    df : float
    samples : DataFrame, only with ``return_samples``
        One row per row of ``X``: ``sample``, ``divergence`` and ``std_error`` (the Monte Carlo standard error of
        that row's estimate: 0 when exact, NaN with a single probe). The Monte Carlo standard error of ``df`` is
        ``sqrt(sum(std_error**2)) / n_samples``.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> X = np.random.default_rng(0).random((50, 6))
    >>> round(degrees_of_freedom(PCA(2).fit(X), X), 12)
    2.0
    >>> round(degrees_of_freedom(pca_as_autoencoder(PCA(2).fit(X)), X.astype(np.float32)), 4)
    2.0
    """
    X = check_array(X, "X")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")
    n_probes = check_int(n_probes, "n_probes", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1)
    threads = check_int(threads, "threads", minimum=1)
    model = _network_of(model, X)
    probes = dict(n_probes=n_probes, seed=seed, batch_size=batch_size)

    pca = _is_projection(model)
    if pca:
        _check_features(X, model.components_.shape[1])
    if pca and method != "hutchinson":
        trace = float(np.sum(np.square(model.components_, dtype=np.float64)))
        values, errors = np.full(len(X), trace), np.zeros(len(X))
    elif pca or isinstance(model, nn.Module):
        model = pca_as_autoencoder(model) if pca else model
        _check_features(X, getattr(getattr(model, "config", None), "input_dim", None))
        with torch_threads(threads), _evaluating(model):
            chain = _mlp_chain(model)
            if method == "auto":  # beyond 256 features the full Jacobian (d backward passes a row) loses to probes
                cheap = chain is not None and _plan(chain, *X.shape)[1] <= _probe_cost(model, X.shape, n_probes)
                method = "exact" if X.shape[1] <= EXACT_MAX_FEATURES or cheap else "hutchinson"
            if method == "hutchinson":
                values, errors = _hutchinson_torch(model, X, **probes)
            else:
                values = _mlp_trace(chain, model, X, batch_size) if chain else _jacobian_trace(model, X, batch_size)
                errors = np.zeros(len(X))
    else:
        reconstruct_with(model, X[:1])  # the package's checks: a transformer, fitted, reconstructing its input
        if method == "auto":
            method = "exact" if X.shape[1] <= EXACT_MAX_FEATURES else "hutchinson"
        values, errors = _finite_differences(model, X, exact=method == "exact", **probes)

    df = float(np.mean(values))
    if not return_samples:
        return df
    return df, pd.DataFrame({"sample": np.arange(len(X)), "divergence": values, "std_error": errors})


def _network_of(model, X):
    """An ``AutoencoderTransformer``'s network; any other model as it is."""
    if isinstance(model, nn.Module):
        return model
    from autoenc.estimator import AutoencoderTransformer  # scikit-learn: only where the model is a transformer

    if isinstance(model, AutoencoderTransformer):
        if not hasattr(model, "model_"):
            reconstruct_with(model, X)  # raises NotFittedError with the package's message
        return model.model_
    return model


def _is_projection(model):
    """Whether ``model`` is a fitted PCA without whitening (a rank-k orthogonal projection)."""
    if isinstance(model, nn.Module):
        return False
    from sklearn.decomposition import PCA

    return isinstance(model, PCA) and not model.whiten and hasattr(model, "components_")


def _check_features(X, n_features):
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the model expects {n_features} (X has shape {X.shape})")


@contextmanager
def _evaluating(model):
    """Evaluation mode and no autograd graph for the block, the module's training flag restored afterwards."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)


def _as_tensor(model, X):
    p = next(model.parameters(), None)
    dtype, device = (torch.float32, "cpu") if p is None else (p.dtype, p.device)
    return torch.tensor(X, dtype=dtype, device=device)


def _batches(n, batch_size, per_row):
    """Row slices of ``batch_size`` rows, or of as many as keep ``rows * per_row`` within the budget."""
    rows = batch_size or max(1, _BUDGET // max(1, per_row))
    return [slice(start, start + rows) for start in range(0, n, rows)]


# --- plain MLPs in closed form ---------------------------------------------------------------------------------

def _mlp_chain(model):
    """``[(linear, activation or None), ...]`` in forward order for a plain MLP ``Autoencoder``, else None."""
    if not isinstance(model, Autoencoder) or type(model).forward is not Autoencoder.forward:
        return None
    if not (isinstance(model.encoder, nn.Sequential) and isinstance(model.decoder, nn.Sequential)):
        return None
    chain = []
    for module in (*model.encoder, *model.decoder):
        if isinstance(module, nn.Linear):
            chain.append([module, None])
        elif isinstance(module, _ELEMENTWISE) and chain and chain[-1][1] is None:
            chain.append(chain.pop()[:1] + [module])
        else:
            return None
    return chain if len(chain) >= 2 else None


def _slopes(chain, x):
    """Per layer, the activation's slope at its pre-activation, shape (n, width), or None without activation."""
    slopes = []
    for linear, activation in chain:
        u = linear(x)
        if activation is None:
            slopes.append(None)
            x = u
        else:
            with torch.enable_grad():  # elementwise: the gradient of the sum is the diagonal of J
                u = u.detach().requires_grad_()
                x = activation(u)
                (slope,) = torch.autograd.grad(x.sum(), u)
            slopes.append(slope)
            x = x.detach()
    return slopes


def _segments(chain):
    """Rotate the cycle ``W_m G ... G W_1`` to start after an activation; collapse the weights between them.

    Returns the positions of the activations and, for each, the product of the weights from it to the next one
    (cyclically, through the output and the input), so that ``tr J = tr(S_r G_r ... S_1 G_1)``; the second of two
    products comes transposed, as the closed form uses it.
    """
    m = len(chain)
    active = [i for i, (_, act) in enumerate(chain) if act is not None]
    segments = []
    for j, a in enumerate(active):
        b = active[(j + 1) % len(active)]
        span = [(a + 1 + t) % m for t in range((b - a - 1) % m + 1)]  # layers a+1, ..., b (mod m)
        segments.append(_product([chain[i][0].weight for i in span], transposed=j == 1))
    return active, segments


def _product(weights, transposed=False):
    """``W_last ... W_first``, or its transpose built from transposed factors (no strided copy of the result)."""
    if transposed:
        product = weights[0].T
        for w in weights[1:]:
            product = product @ w.T
        return product
    product = weights[0]
    for w in weights[1:]:
        product = w @ product
    return product


def _plan(chain, n, d):
    """Whether to collapse the weights between activations (at most two) or carry a matrix from the narrowest
    layer, and the multiply-adds of the cheaper way for ``n`` rows of ``d`` features."""
    widths = [d] + [linear.out_features for linear, _ in chain]
    inner = [widths[i + 1] for i, (_, act) in enumerate(chain) if act is not None]
    sizes = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    walk = n * min(widths) * sizes
    if len(inner) > 2:
        return False, walk
    collapse = n * math.prod(inner) + max(widths) * sizes  # per row, plus the weight products once
    return collapse <= walk, min(collapse, walk)


def _probe_cost(model, shape, n_probes):
    n_weights = sum(p.numel() for p in model.parameters())
    return 3 * n_probes * shape[0] * n_weights  # a jvp costs about three forward passes


def _mlp_trace(chain, model, X, batch_size):
    Xt = _as_tensor(model, X)
    widths = [X.shape[1]] + [linear.out_features for linear, _ in chain]
    collapse = _plan(chain, *X.shape)[0]
    if collapse:
        active, segments = _segments(chain)
        if not active:  # a linear network: tr(W_m ... W_1), the same for every row (float64: PCA's k exactly)
            product = _product([linear.weight.double() for linear, _ in chain])
            return np.full(len(X), float(torch.trace(product)))
        if len(active) == 2:  # tr(S2 G2 S1 G1) = g2^T (S1 * S2^T) g1
            coupling = segments[0] * segments[1]
    out = []
    for rows in _batches(len(X), batch_size, max(widths) * (1 if collapse else min(widths))):
        x = Xt[rows]
        slopes = _slopes(chain, x)
        if collapse and len(active) == 1:
            trace = slopes[active[0]] @ torch.diagonal(segments[0])
        elif collapse:
            trace = ((slopes[active[0]] @ coupling.T) * slopes[active[1]]).sum(1)
        else:
            trace = _walk_trace(chain, slopes, widths, len(x))
        out.append(trace.double().cpu())
    return torch.cat(out).numpy()


def _walk_trace(chain, slopes, widths, n):
    """``tr(G_m W_m ... G_1 W_1)`` per row, carried as a (width x w_s) matrix from the narrowest space ``s``."""
    m = len(chain)
    s = int(np.argmin(widths[:-1]))  # space s: input of layer s (0 = the input, which is also the output)
    order = [(s + t) % m for t in range(m)]  # layers applied from space s back around to it
    carried = chain[order[0]][0].weight  # (w_{s+1}, w_s), shared by every row until a slope is applied
    for i in order[1:]:
        if slopes[(i - 1) % m] is not None:
            carried = slopes[(i - 1) % m][:, :, None] * carried
        if i == order[-1]:  # the last product only needs its diagonal
            break
        carried = chain[i][0].weight @ carried
    last = chain[order[-1]][0].weight
    if carried.dim() == 2:
        carried = carried.unsqueeze(0)
    diagonal = torch.einsum("ba,nab->nb", last, carried)
    gain = slopes[order[-1]]  # slope after the last layer (an activation on the output)
    return (diagonal * gain).sum(1) if gain is not None else diagonal.sum(1).expand(n)


# --- any torch module, and Monte Carlo -------------------------------------------------------------------------

def _jacobian_trace(model, X, batch_size):
    Xt = _as_tensor(model, X)
    d = X.shape[1]

    def row_jacobian(x):
        return jacrev(lambda v: model(v.unsqueeze(0)).squeeze(0))(x)

    out = []  # each row carries d cotangents through every layer: the widest layer's d copies bound the batch
    for rows in _batches(len(X), batch_size, 4 * d * widest_row(model, d, Xt.dtype, Xt.device)):
        out.append(torch.diagonal(vmap(row_jacobian)(Xt[rows]), dim1=-2, dim2=-1).sum(-1).double().cpu())
    return torch.cat(out).numpy()


_PROBE_BLOCK = 256  # rows whose probes one generator draws


def _rademacher(seed, rows, n_probes, d, n):
    """Rademacher probes (rows, n_probes, d) in float64 for the rows ``rows`` (a slice) of ``n``.

    Drawn per batch (the probes of every row at once would be n x n_probes x d doubles: gigabytes on MNIST-size
    data), and the same whatever the batching: rows ``[256 b, 256 (b + 1))`` take theirs from generator
    ``(seed, b)``.
    """
    start, stop = rows.start, min(rows.stop, n)
    parts = []
    for b in range(start // _PROBE_BLOCK, (stop - 1) // _PROBE_BLOCK + 1):
        first = b * _PROBE_BLOCK
        block = np.random.default_rng([seed, b]).integers(0, 2, size=(_PROBE_BLOCK, n_probes, d), dtype=np.int8)
        parts.append(block[max(start, first) - first : min(stop, first + _PROBE_BLOCK) - first])
    return np.concatenate(parts).astype(np.float64) * 2 - 1


def _summarize_probes(estimates):
    """Per-row mean over the probes and its standard error (NaN with one probe)."""
    n_probes = estimates.shape[1]
    if n_probes == 1:
        return estimates[:, 0], np.full(len(estimates), math.nan)
    return estimates.mean(1), estimates.std(1, ddof=1) / math.sqrt(n_probes)


def _hutchinson_torch(model, X, *, n_probes, seed, batch_size):
    Xt = _as_tensor(model, X)
    n, d = X.shape
    width = widest_row(model, d, Xt.dtype, Xt.device)
    out = []
    with torch.no_grad():
        for rows in _batches(n, batch_size, 4 * n_probes * width):
            v = torch.as_tensor(_rademacher(seed, rows, n_probes, d, n).reshape(-1, d), dtype=Xt.dtype,
                                device=Xt.device)
            x = Xt[rows].repeat_interleave(n_probes, 0)
            _, Jv = jvp(model, (x,), (v,))
            out.append((v * Jv).sum(1).double().cpu().reshape(-1, n_probes))
    return _summarize_probes(torch.cat(out).numpy())


def _finite_differences(model, X, *, exact, n_probes, seed, batch_size):
    """``v^T (f(x + h v) - f(x - h v)) / 2h`` along the coordinates (exact) or Rademacher probes."""
    n, d = X.shape
    step = np.finfo(X.dtype).eps ** (1 / 3) * max(float(np.sqrt(np.mean(np.square(X, dtype=np.float64)))), 1.0)
    directions = d if exact else n_probes
    out = []
    for rows in _batches(n, batch_size, 2 * directions * d):
        v = (np.tile(np.eye(d), (len(range(n)[rows]), 1)) if exact
             else _rademacher(seed, rows, n_probes, d, n).reshape(-1, d))
        x = np.repeat(X[rows], directions, axis=0)
        plus, minus = ((x + sign * step * v).astype(X.dtype) for sign in (1, -1))
        diff = reconstruct_with(model, plus).astype(np.float64) - reconstruct_with(model, minus)
        out.append(np.sum(v * diff, axis=1).reshape(-1, directions) / (2 * step))
    estimates = np.concatenate(out)
    if exact:
        return estimates.sum(1), np.zeros(n)
    return _summarize_probes(estimates)


# --- SURE and the reference line of noise memorization ----------------------------------------------------------
