"""What a memorizing minimum looks like: loss along random directions around the weights, and attractors.

:func:`loss_slice` draws the seen and unseen loss along filter-normalized random directions (Li et al. 2018);
:func:`attractors` asks, per sample, whether the reconstruction map contracts towards it (Radhakrishnan, Belkin &
Uhler 2020): the spectral radius of its Jacobian there, and whether iterating the map from a perturbed sample
comes back, closing in with a margin (neutral fixed points, such as a projection's, never count).
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call

from autoenc import Autoencoder
from autoenc.validation import check_array, check_columns, check_int, check_positive_float

from ._jacobian import func_jacobian, mlp_layers, stack_jacobian
from .reconstruction import widest_row

__all__ = ["MARGIN", "attractor_fraction", "attractors", "filter_normalized_direction", "loss_slice"]

MARGIN = 0.05  # how clearly an attractor must contract: radius <= 1 - MARGIN, distance shrinking by that share


def _check_model(model):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (an autoenc.Autoencoder), got {type(model).__name__}; "
                        "turn a fitted PCA into one with analysis.pca_as_autoencoder")
    try:
        return next(model.parameters())
    except StopIteration:
        raise ValueError("model has no parameters") from None


def _as_tensor(X, name, param, n_features):
    X = check_array(X, name, n_features=n_features)
    return torch.as_tensor(np.array(X, copy=True), dtype=param.dtype, device=param.device)


def _selected(model, only):
    """Names of the parameters that move: all, those of the encoder or decoder, or the listed ones."""
    names = [n for n, _ in model.named_parameters()]
    if only is None:
        return set(names)
    if isinstance(only, str):
        if only not in ("encoder", "decoder"):
            raise ValueError(f"only must be None, 'encoder', 'decoder' or a list of parameter names, got {only!r}")
        chosen = {n for n in names if n.startswith(only + ".")}
        if not chosen:
            raise ValueError(f"only={only!r}, but model has no parameters under {only!r}; it has {names}")
        return chosen
    chosen = set(only)
    unknown = sorted(chosen - set(names))
    if unknown or not chosen:
        raise ValueError(f"only names unknown or no parameter(s) {unknown}; model's parameters are {names}")
    return chosen


def filter_normalized_direction(model, *, generator, only=None, include_biases=False):
    """A random direction in weight space, each filter rescaled to the norm of the matching weights (Li et al.).

    Every parameter gets a standard Gaussian draw of its shape, in ``model.named_parameters()`` order, whether it
    moves or not (so the decoder's direction is the same with ``only="decoder"`` as without). For a weight matrix
    of shape (out, in), each row (the incoming weights of one unit: a *filter*) is rescaled to the norm of the same
    row of the weights. Biases get a zero direction (Li et al.'s choice), or with ``include_biases`` are rescaled as
    one filter to the bias vector's norm. Parameters outside ``only`` get zero.

    Parameters
    ----------
    model : torch.nn.Module
    generator : torch.Generator
    only : None, "encoder", "decoder" or collection of str
        Which parameters move (names as in ``model.named_parameters()``).
    include_biases : bool, default False

    Returns
    -------
    dict of str to Tensor
        A direction per parameter, in the parameter's dtype.

    Examples
    --------
    >>> from autoenc import Autoencoder, ModelConfig
    >>> model = Autoencoder(ModelConfig(4, 2, hidden=()))
    >>> d = filter_normalized_direction(model, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(d["encoder.0.weight"].norm(dim=1), model.encoder[0].weight.norm(dim=1)))
    True
    """
    moving = _selected(model, only)
    out = {}
    for name, p in model.named_parameters():
        p = p.detach()
        draw = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        if name not in moving or (p.ndim == 1 and not include_biases):
            out[name] = torch.zeros_like(p)
            continue
        rows = draw.reshape(len(draw), -1) if p.ndim > 1 else draw.reshape(1, -1)
        target = p.reshape(len(p), -1) if p.ndim > 1 else p.reshape(1, -1)
        scale = target.norm(dim=1, keepdim=True) / rows.norm(dim=1, keepdim=True).clamp_min(1e-30)
        out[name] = (rows * scale).reshape(p.shape)
    return out


def loss_slice(model, X_seen, X_unseen=None, *, directions=1, steps=21, span=1.0, seed=0, only=None,
               include_biases=False):
    """Seen and unseen reconstruction loss along one or two filter-normalized random directions.

    With trained weights ``theta`` and directions ``u`` (and ``v``) from :func:`filter_normalized_direction`, the
    loss (mean squared error per feature against the input, the training loss) at ``theta + alpha u (+ beta v)``
    for ``alpha`` (and ``beta``) on ``linspace(-span, span, steps)``. The model itself is not modified. Computed
    in the model's dtype (use a float64 model for exact comparisons); data are converted to it.

    A minimum that stored its training samples shows a deep, narrow seen valley and an unseen loss that rises
    quickly away from (and is already higher at) the origin; one that learned the structure, two similar wide
    bowls. For a linear autoencoder with one encoder and one decoder layer the 1-D slice is exactly a polynomial of
    degree 4 in ``alpha`` (degree 2 when only the decoder moves).

    Parameters
    ----------
    model : torch.nn.Module
        An ``Autoencoder`` (or ``pca_as_autoencoder(pca)``).
    X_seen : array-like of shape (n_seen, n_features)
        Samples the model was trained on (labelled ``split="train"``).
    X_unseen : array-like of shape (n_unseen, n_features), optional
        Held-out samples (``split="test"``).
    directions : {1, 2}, default 1
    steps : int, default 21
        Points per axis (odd includes the trained weights at 0).
    span : float, default 1.0
        Largest step, in units of the filter norms (1 moves each filter by its own norm).
    seed : int, default 0
        Seeds the directions (a local generator).
    only : None, "encoder", "decoder" or collection of str
        Move only these parameters.
    include_biases : bool, default False
        Move the biases too (each bias vector rescaled to its norm); by default they stay put, as in Li et al.

    Returns
    -------
    DataFrame
        ``alpha`` (and ``beta``), ``split``, ``loss``: one row per grid point and split.

    Examples
    --------
    >>> from autoenc import Autoencoder, ModelConfig
    >>> X = np.random.default_rng(0).random((20, 4), dtype=np.float32)
    >>> frame = loss_slice(Autoencoder(ModelConfig(4, 2)), X[:10], X[10:], steps=5)
    >>> frame.shape, list(frame.columns)
    ((10, 3), ['alpha', 'split', 'loss'])
    """
    param = _check_model(model)
    n_features = getattr(getattr(model, "config", None), "input_dim", None)
    splits = [("train", _as_tensor(X_seen, "X_seen", param, n_features))]
    if X_unseen is not None:
        splits.append(("test", _as_tensor(X_unseen, "X_unseen", param, splits[0][1].shape[1])))
    if directions not in (1, 2) or isinstance(directions, bool):
        raise ValueError(f"directions must be 1 or 2, got {directions!r}")
    steps = check_int(steps, "steps", minimum=2)
    span = check_positive_float(span, "span")
    seed = check_int(seed, "seed", minimum=0)
    generator = torch.Generator().manual_seed(seed)
    dirs = [filter_normalized_direction(model, generator=generator, only=only, include_biases=include_biases)
            for _ in range(directions)]
    theta = {n: p.detach() for n, p in model.named_parameters()}
    grid = np.linspace(-span, span, steps)
    points = [(a,) for a in grid] if directions == 1 else [(a, b) for a in grid for b in grid]
    rows = []
    with torch.no_grad():
        for point in points:
            params = {n: p + sum(c * d[n] for c, d in zip(point, dirs)) for n, p in theta.items()}
            for split, X in splits:
                loss = torch.mean(torch.square(functional_call(model, params, (X,)) - X)).item()
                rows.append((*point, split, loss))
    return pd.DataFrame(rows, columns=["alpha", "beta"][:directions] + ["split", "loss"])


def _spectral_radii(model, X, budget=2**22):
    """Per row, the largest |eigenvalue| of the reconstruction map's Jacobian.

    An autoencoder's Jacobian factors through its code: ``J_f(x) = J_dec(z) J_enc(x)`` (d x k times k x d), whose
    nonzero eigenvalues are those of the k x k ``J_enc(x) J_dec(z)`` (Sylvester): a k x k eigenproblem instead of
    a d x d one (0.8 s a row at d = 784). An MLP's Jacobians are written out layer by layer
    (:func:`._jacobian.stack_jacobian`, a few batched matrix products; torch.func's first use imports torch._dynamo,
    most of a second); other modules (convolutions) go through ``torch.func.jacrev``, one row at a time as a batch of one,
    so that modules that reshape their batch see the shape they expect. Both carry k rows back through the encoder
    and d through the decoder (or d through the whole map): the chunks of rows are sized for that.
    """
    n, d = X.shape
    k = getattr(getattr(model, "config", None), "bottleneck", d)
    factored = k < d and hasattr(model, "encode") and hasattr(model, "decode")
    stacks = [mlp_layers(getattr(model, name, None)) for name in ("encoder", "decoder")]
    widest = widest_row(model, d, X.dtype, X.device)
    chunk = max(1, budget // ((k + d if factored else 2 * d) * widest))
    if isinstance(model, Autoencoder) and None not in stacks:
        def jacobian(x):
            if not factored:
                return stack_jacobian(stacks[0] + stacks[1], x)[0]
            enc, z = stack_jacobian(stacks[0], x)
            return torch.bmm(enc, stack_jacobian(stacks[1], z)[0])
    else:
        jacobian = func_jacobian(model, factored)
    out = []
    with torch.no_grad():
        for s in range(0, n, chunk):
            out.append(torch.linalg.eigvals(jacobian(X[s : s + chunk])).abs().amax(dim=1))
    return torch.cat(out).cpu().numpy().astype(np.float64)


def attractors(model, X, *, n_iter=100, perturbation=0.1, tol=0.05, margin=MARGIN, seed=0, reference=None):
    """Per sample: the spectral radius of the reconstruction map's Jacobian, and whether iterating contracts back.

    For the map ``f`` (the model) and each sample ``x``: ``spectral_radius`` = max |eigenvalue| of ``J_f(x)``
    (exact: reverse-mode Jacobians, written out layer by layer for an MLP and through ``torch.func.jacrev`` for
    other modules, then ``torch.linalg.eigvals`` of the k x k product of the encoder's and the decoder's Jacobians
    for an autoencoder: cost n k^3, not n d^3); ``fixed_point_error`` = ``||f(x) - x||``;
    ``distance_first`` = ``||f(x + delta) - x||`` and ``distance`` = ``||f^n_iter(x + delta) - x||``, with
    ``delta`` a Gaussian direction of norm ``perturbation``; ``returns`` = ``distance < tol``.

    A sample is an ``attractor`` only where contraction is shown with a margin: it ``returns``, and it
    ``contracts``: ``spectral_radius <= 1 - margin`` *and* ``distance <= (1 - margin) * distance_first`` (the
    iterates keep closing in after the first step). Neutral fixed points never count: every point of a projection's
    subspace (PCA, any rank-k projection) is a fixed point whose Jacobian has radius exactly 1 (rounding puts it a
    hair either side) and whose iterates stay where the first step put them; the first step alone can land within
    ``tol`` when k/d is small (it keeps only the push's share in the subspace), which is why returning is not
    enough. With ``reference`` (e.g. the training set), also where the iterates end: ``nearest``, the row of
    ``reference`` closest to ``f^n_iter(x + delta)``, and ``nearest_distance``, how far. Norms, ``perturbation``,
    ``tol`` and distances are in units of the mean row norm of ``X`` (scale-free). Computed in the model's dtype;
    the model is not modified.

    An autoencoder that stores its training samples makes them fixed points; Radhakrishnan, Belkin & Uhler (2020)
    report that over-parameterized autoencoders trained to near-zero loss make them *attractors*, which
    iterating the map recovers even from a perturbed or corrupted input.

    Measured here (n digits, ``ModelConfig(64, 16, hidden)``, full-batch Adam, lr 2e-3, 1000 epochs, 3 seeds,
    training loss 1e-16 to 1e-4; radius under 1, no margin): many training samples become attractors, not all. Two
    ReLU layers of 256: 93%, 70%, 83% of them for n = 5, 10, 20 (median spectral radius 0.65-0.85); one layer of
    1024: 73%, 57%, 22%; two of 64: 53%, 53%, 20%; tanh, two of 256: 33%, 23%, 8%. No held-out digit is one (0 of
    100 in every case; median radius 1.0-1.4), yet iterating from a held-out digit ends on a stored training digit
    (within 5%) for 77-99% of them when n <= 10: the network recalls a stored sample. ``tests/test_landscape.py``
    checks the pattern on one such network, with the default margin, and 0 attractors for PCA on data in its
    subspace.

    Parameters
    ----------
    model : torch.nn.Module
        An ``Autoencoder`` (``pca_as_autoencoder(pca)`` for PCA); any module mapping (d,) to (d,).
    X : array-like of shape (n_samples, n_features)
    n_iter : int, default 100
        Iterations of ``f`` from the pushed sample; at least 2, so that shrinking after the first step can show.
    perturbation : float, default 0.1
        Norm of ``delta`` (> 0), relative to the mean row norm of ``X``.
    tol : float, default 0.05
        Largest ``distance`` (relative) that counts as returning: by default, the iterates came back more than half
        of the way. A sample that is only approximately a fixed point (training loss not zero) can be attracting
        and still miss a much smaller ``tol`` by its own ``fixed_point_error``.
    margin : float in (0, 1), default 0.05
        How clearly contraction must show: radius at most ``1 - margin``, and the distance after ``n_iter`` steps at
        most ``1 - margin`` times the distance after one.
    seed : int, default 0
        Seeds ``delta`` (a local generator).
    reference : array-like of shape (n_reference, n_features), optional
        Samples to locate the iterates' end points against.

    Returns
    -------
    DataFrame
        One row per sample: ``sample`` (row of ``X``), ``spectral_radius``, ``fixed_point_error``,
        ``distance_first``, ``distance``, ``returns``, ``contracts``, ``attractor`` (and ``nearest``,
        ``nearest_distance`` with ``reference``).

    Examples
    --------
    >>> from autoenc import Autoencoder, ModelConfig
    >>> X = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    >>> list(attractors(Autoencoder(ModelConfig(4, 2)), X, n_iter=3).columns)  # doctest: +NORMALIZE_WHITESPACE
    ['sample', 'spectral_radius', 'fixed_point_error', 'distance_first', 'distance', 'returns', 'contracts',
     'attractor']
    """
    param = _check_model(model)
    Xt = _as_tensor(X, "X", param, getattr(getattr(model, "config", None), "input_dim", None))
    ref = None if reference is None else _as_tensor(reference, "reference", param, Xt.shape[1])
    n_iter = check_int(n_iter, "n_iter", minimum=2)
    perturbation = check_positive_float(perturbation, "perturbation")
    tol = check_positive_float(tol, "tol")
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0 < margin < 1:
        raise ValueError(f"margin must be a number in (0, 1), got {margin!r}")
    seed = check_int(seed, "seed", minimum=0)
    n, d = Xt.shape
    was_training = model.training
    model.eval()
    try:
        radius = _spectral_radii(model, Xt)
        with torch.no_grad():
            scale = Xt.norm(dim=1).mean().item() or 1.0  # all-zero data: absolute units
            delta = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=Xt.dtype).to(Xt.device)
            delta *= perturbation * scale / delta.norm(dim=1, keepdim=True).clamp_min(1e-30)
            fixed = (model(Xt) - Xt).norm(dim=1) / scale
            x = model(Xt + delta)
            first = (x - Xt).norm(dim=1) / scale
            for _ in range(n_iter - 1):
                x = model(x)
            distance = (x - Xt).norm(dim=1) / scale
            if ref is not None:
                nearest_distance, nearest = torch.cdist(x, ref).min(dim=1)
    finally:
        model.train(was_training)
    first = first.cpu().numpy().astype(np.float64)
    distance = distance.cpu().numpy().astype(np.float64)
    returns = distance < tol  # NaN (an iteration that blew up) compares False
    contracts = (radius <= 1 - margin) & (distance <= (1 - margin) * first)
    frame = pd.DataFrame({"sample": np.arange(n), "spectral_radius": radius,
                          "fixed_point_error": fixed.cpu().numpy().astype(np.float64), "distance_first": first,
                          "distance": distance, "returns": returns, "contracts": contracts,
                          "attractor": returns & contracts})
    if ref is not None:
        frame["nearest"] = nearest.cpu().numpy()
        frame["nearest_distance"] = nearest_distance.cpu().numpy().astype(np.float64) / scale
    return frame


def attractor_fraction(frame, by=None):
    """Share of samples that are attractors, overall (a float) or per group of ``by`` columns (a DataFrame).

    Examples
    --------
    >>> attractor_fraction(pd.DataFrame({"attractor": [True, False, True, True]}))
    0.75
    """
    check_columns(frame, ["attractor"], "frame")
    if by is None:
        return float(frame["attractor"].astype(float).mean())
    by = [by] if isinstance(by, (str, numbers.Number)) else list(by)
    check_columns(frame, by, "frame")
    out = frame.groupby(by, sort=True)["attractor"].mean().astype(float)
    return out.rename("attractor_fraction").reset_index()
