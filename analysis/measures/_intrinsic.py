"""Intrinsic dimension estimators as scikit-dimension 0.5 computes them (``skdim.id.TwoNN``, ``skdim.id.MLE`` with
their defaults), step for step and so to the same numbers, without importing it: its import pulls in numba and
matplotlib, most of a second. A checked float64 array of distinct rows in (``similarity.intrinsic_dimension``), a
float out.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import lstsq
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

__all__ = ["mle", "twonn"]


def twonn(X, discard_fraction=0.1):
    """``skdim.id.TwoNN().fit(X).dimension_``, step for step."""
    if X.shape[1] > 25:  # scikit-dimension's switch: all distances, chunked, above 25 features
        r1, r2 = np.zeros(len(X)), np.zeros(len(X))
        i = 0
        for D in pairwise_distances_chunked(X):
            D = np.partition(D, (1, 2), axis=1)  # the second and third smallest, as a full sort would place them
            r1[i : i + len(D)], r2[i : i + len(D)] = D[:, 1], D[:, 2]
            i += len(D)
    else:
        r1, r2 = NearestNeighbors(n_neighbors=2).fit(X).kneighbors()[0].T
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = r2 / r1
    if not np.all(np.isfinite(mu)):
        warnings.warn(f"Dropping {np.sum(~np.isfinite(mu))} points with zero distance to their nearest neighbour "
                      "(duplicate points).", stacklevel=3)
        mu = mu[np.isfinite(mu)]
    n, n_keep = len(mu), int(len(mu) * (1 - discard_fraction))
    if n_keep < 2:
        raise ValueError("Fewer than 2 points left to estimate the dimension.")
    mu = np.sort(mu)[:n_keep]
    y = -np.log(1 - np.arange(1, 1 + n_keep) / n)
    # sklearn's LinearRegression(fit_intercept=False), which scikit-dimension fits: scipy's lstsq at its tol
    return lstsq(np.log(mu).reshape(-1, 1), y.reshape(-1, 1), cond=1e-6)[0][0, 0]


def mle(X, n_neighbors=20):
    """``skdim.id.MLE().fit(X).dimension_``, step for step (the pointwise estimates in one pass)."""
    if n_neighbors >= len(X):
        warnings.warn("n_neighbors >= len(X), setting n_neighbors = len(X)-1", stacklevel=3)
        n_neighbors = len(X) - 1
    R = NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors()[0]
    pointwise = (n_neighbors - 1) / np.sum(np.log(R.max(axis=1, keepdims=True) / R), axis=1)
    return 1 / np.mean(1 / pointwise)
