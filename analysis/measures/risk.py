"""What a reconstruction map does to isotropic noise: SURE (the clean error from the noisy one and the map's
degrees of freedom, :func:`analysis.measures.divergence.degrees_of_freedom`) and the share of the noise a rank-k
projection keeps (the reference line of noise memorization)."""
from __future__ import annotations

import numpy as np

from autoenc.validation import check_array

__all__ = ["nm_reference", "sure"]


def sure(mse, sigma, df, n_features):
    """Stein's unbiased risk estimate of the error against the clean signal: ``mse - sigma^2 + 2 sigma^2 df / d``.

    Valid for isotropic Gaussian noise of known std ``sigma`` (in the units the model sees) and a model evaluated on
    rows it was not trained on (``mse`` and ``df`` from the same rows); on training rows the fit depends on the
    noise and the estimate is biased low. Broadcasts over arrays.

    Parameters
    ----------
    mse : float or array-like
        Mean over rows and features of ``(f(y) - y)^2``, against the noisy input ``y``.
    sigma : float or array-like
        Noise std, >= 0.
    df : float or array-like
        Degrees of freedom of ``f`` on the same rows (:func:`degrees_of_freedom`).
    n_features : int or array-like of int
        ``d``.

    Returns
    -------
    float, or ndarray for array input

    Examples
    --------
    >>> round(sure(0.0, 0.2, 64, 64), 12)  # the identity: no error against its input, sigma^2 against the signal
    0.04
    """
    mse, sigma, df = (np.asarray(a, dtype=np.float64) for a in (mse, sigma, df))
    d = np.asarray(n_features)
    for name, value in (("mse", mse), ("sigma", sigma), ("df", df)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value}")
    if np.any(sigma < 0):
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if not np.issubdtype(d.dtype, np.integer) or np.any(d < 1):
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    out = mse - sigma**2 + 2 * sigma**2 * df / d
    return float(out) if out.ndim == 0 else out


def nm_reference(components, noise, *, kind="auto"):
    """What the orthogonal projection onto the rows of ``components`` keeps of the noise: ``tr(P S) / tr(S)``.

    ``P`` is the orthogonal projection onto the span of the rows (``V^T V`` for PCA's orthonormal
    ``components_``), ``S`` the noise covariance. This is the noise memorization a fixed rank-k projection scores
    on unseen rows, the reference line for a model of bottleneck k: ``k / d`` for isotropic noise, more when the
    projection leans toward the noisier features.

    Parameters
    ----------
    components : array-like of shape (k, n_features)
    noise : array-like
        The noise covariance ``(d, d)``, per-feature variances ``(d,)``, or a noise sample ``(n, d)`` (its second
        moment ``E^T E / n`` is used).
    kind : {"auto", "covariance", "variances", "sample"}, default "auto"
        How to read ``noise``; "auto" reads a 1-D array as variances, a symmetric ``(d, d)`` array with a
        non-negative diagonal as a covariance, and any other 2-D array as a sample.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> nm_reference(np.eye(4)[:1], [1.0, 1.0, 1.0, 1.0])
    0.25
    >>> nm_reference(np.eye(4)[:1], [9.0, 1.0, 1.0, 1.0])
    0.75
    """
    V = check_array(components, "components")
    k, d = V.shape
    kinds = ("auto", "covariance", "variances", "sample")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {list(kinds)}, got {kind!r}")
    noise = np.asarray(noise)
    noise = check_array(noise, "noise", ndim=1 if noise.ndim == 1 else 2, n_features=None if noise.ndim == 1 else d)
    if kind == "auto":
        square = noise.shape == (d, d) and np.allclose(noise, noise.T) and np.all(np.diag(noise) >= 0)
        kind = "variances" if noise.ndim == 1 else "covariance" if square else "sample"
    if (kind == "variances") != (noise.ndim == 1) or (kind == "covariance" and noise.shape != (d, d)):
        raise ValueError(f"noise of shape {noise.shape} cannot be read as kind={kind!r} for {d} features")
    if noise.ndim == 1 and len(noise) != d:
        raise ValueError(f"noise has {len(noise)} variances but components has {d} features")
    if noise.ndim == 1 and np.any(noise < 0):
        raise ValueError("noise variances must be >= 0")
    U, s, _ = np.linalg.svd(V.astype(np.float64).T, full_matrices=False)
    Q = U[:, s > s[0] * max(k, d) * np.finfo(np.float64).eps] if s[0] > 0 else U[:, :0]
    noise = noise.astype(np.float64)
    if kind == "variances":
        kept, total = float(np.sum(np.sum(Q**2, axis=1) * noise)), float(np.sum(noise))
    elif kind == "covariance":
        kept, total = float(np.sum(Q * (noise @ Q))), float(np.trace(noise))
    else:
        kept, total = float(np.sum(np.square(noise @ Q))), float(np.sum(np.square(noise)))
    if total <= 0:
        raise ValueError("noise has no energy (zero total variance): the share it keeps is undefined")
    return kept / total
