"""How alike two codes are, what a code gives away about membership, and how many dimensions it really uses.

Linear CKA and mean squared canonical correlation between two sets of codes of the same samples (a model's and
PCA's scores, or two seeds'), their level under independence (row permutations, and its exact mean), principal angles
between subspaces, latent membership (distance to the nearest training code, seen against unseen) and intrinsic
dimension (TwoNN and MLE, as scikit-dimension computes them). Arrays in, numbers out; nothing here reads or writes
files.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles
from sklearn.neighbors import NearestNeighbors

from autoenc.validation import check_array, check_int

from ._intrinsic import mle, twonn
from .intervals import auc_interval, delong_auc

__all__ = ["ID_METHODS", "MEASURES", "CenteredCodes", "cca_similarity", "intrinsic_dimension", "latent_membership",
           "linear_cka", "nearest_code_distances", "null_level", "permutation_null", "principal_angles"]

MEASURES = ("cka", "cca")
ID_METHODS = ("twonn", "mle")
RANK_RTOL = 1e-6  # singular values below this share of the largest are rank deficiency (dead units), not signal


class CenteredCodes:
    """Codes checked, in float64 and column-centered once, for many comparisons of the same samples.

    :func:`linear_cka`, :func:`cca_similarity`, :func:`null_level` and :func:`permutation_null` take one in place
    of an array, with the same result; its Gram norm and its bases (:func:`cca_similarity`'s) are computed on first
    use and kept, so comparing one code with many others prepares it once.

    Parameters
    ----------
    Z : array-like of shape (n_samples, p)
        At least 3 samples.
    name : str, default "Z"
        The argument's name in error messages.

    Examples
    --------
    >>> Z = np.random.default_rng(0).standard_normal((50, 3))
    >>> codes = CenteredCodes(Z)
    >>> linear_cka(codes, 2 * Z) == linear_cka(Z, 2 * Z)
    True
    """

    def __init__(self, Z, name="Z"):
        Z = check_array(Z, name, min_samples=3).astype(np.float64)
        self.values = Z - Z.mean(axis=0)
        self._gram_norm, self._bases = None, {}

    @property
    def shape(self):
        return self.values.shape

    def __len__(self):
        return len(self.values)

    def gram_norm(self):
        """``||Z^T Z||_F`` of the centered codes."""
        if self._gram_norm is None:
            self._gram_norm = np.linalg.norm(self.values.T @ self.values)
        return self._gram_norm

    def basis(self, rtol=RANK_RTOL):
        """An orthonormal basis of the centered codes' column space (:func:`cca_similarity`'s)."""
        if rtol not in self._bases:
            self._bases[rtol] = _basis(self.values, rtol)
        return self._bases[rtol]


def _pair(A, B, a_name="A", b_name="B"):
    A = A if isinstance(A, CenteredCodes) else CenteredCodes(A, a_name)
    B = B if isinstance(B, CenteredCodes) else CenteredCodes(B, b_name)
    if len(A) != len(B):
        raise ValueError(f"{a_name} and {b_name} must hold the same samples (rows), got shapes {A.shape} and "
                         f"{B.shape}")
    return A, B


def linear_cka(A, B):
    """Linear centered kernel alignment (Kornblith et al. 2019) between two codes of the same samples.

    ``||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F)`` on column-centered codes: 1 when one code is an orthogonal
    transform (rotation, reflection) of the other times a scale, near 0 for unrelated codes of many samples.
    It is not invariant to every invertible linear map (see :func:`cca_similarity`).

    Parameters
    ----------
    A : array-like of shape (n_samples, p), or CenteredCodes
    B : array-like of shape (n_samples, q), or CenteredCodes
        The same samples, in the same order; at least 3.

    Returns
    -------
    float in [0, 1]
        NaN when either code is constant (no variance to align).

    Examples
    --------
    >>> A = np.random.default_rng(0).standard_normal((50, 3))
    >>> Q = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0]
    >>> round(linear_cka(A, 2 * A @ Q), 6)
    1.0
    """
    A, B = _pair(A, B)
    denominator = A.gram_norm() * B.gram_norm()
    if denominator == 0:
        return float("nan")
    return float(np.linalg.norm(B.values.T @ A.values) ** 2 / denominator)


def _basis(M, rtol):
    """An orthonormal basis of the centered code's column space, directions below ``rtol`` of the largest dropped."""
    U, s, _ = np.linalg.svd(M, full_matrices=False)
    keep = s > rtol * s[0] if len(s) and s[0] > 0 else np.zeros(len(s), bool)
    return U[:, keep]


def cca_similarity(A, B, *, rtol=RANK_RTOL):
    """Mean squared canonical correlation between two codes of the same samples (as in SVCCA and PWCCA).

    Each centered code is replaced by an orthonormal basis of its column space (thin SVD; directions whose singular
    value is below ``rtol`` times the largest, such as dead units, are dropped: that is the regularization); the
    squared canonical correlations are the squared singular values of ``U_A^T U_B``, and their mean over the
    ``min(rank A, rank B)`` pairs is returned. Unchanged by any invertible linear map of either code, and 1 when
    one code is such a map of the other. Canonical correlation overfits when the ranks approach the number of
    samples: independent codes give about ``max(rank) / (n - 1)`` (:func:`permutation_null` measures it).

    Parameters
    ----------
    A : array-like of shape (n_samples, p), or CenteredCodes
    B : array-like of shape (n_samples, q), or CenteredCodes
        The same samples, in the same order; at least 3.
    rtol : float, default 1e-6
        Relative singular-value threshold of the rank, in [0, 1).

    Returns
    -------
    float in [0, 1]
        NaN when either code is constant.

    Examples
    --------
    >>> A = np.random.default_rng(0).standard_normal((50, 3))
    >>> M = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [3.0, 0.0, 0.5]])
    >>> round(cca_similarity(A, A @ M + 1), 6)
    1.0
    """
    A, B = _pair(A, B)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 <= rtol < 1:
        raise ValueError(f"rtol must be a number in [0, 1), got {rtol!r}")
    return _cca(A.basis(rtol), B.basis(rtol))


def _cca(Ua, Ub):
    rank = min(Ua.shape[1], Ub.shape[1])
    if rank == 0:
        return float("nan")
    return float(min(1.0, np.linalg.norm(Ua.T @ Ub) ** 2 / rank))


def permutation_null(A, B, *, measure="cka", n_permutations=20, seed=0):
    """The similarity of ``A`` with ``B``'s rows shuffled: the level of codes independent of each other.

    Parameters
    ----------
    A : array-like of shape (n_samples, p), or CenteredCodes
    B : array-like of shape (n_samples, q), or CenteredCodes
    measure : {"cka", "cca"}, default "cka"
        :func:`linear_cka` or :func:`cca_similarity`.
    n_permutations : int, default 20
    seed : int, default 0
        Seeds the permutations.

    Returns
    -------
    ndarray of shape (n_permutations,)
        One similarity per permutation; their mean is the null level, their upper quantiles a threshold.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> A, B = rng.standard_normal((200, 2)), rng.standard_normal((200, 2))
    >>> bool(permutation_null(A, B).mean() < 0.05)
    True
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    A, B = _pair(A, B)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(B)) for _ in range(n_permutations)]
    if measure == "cka":
        return np.array([linear_cka(A.values, B.values[order]) for order in orders])
    Ua, Ub = A.basis(), B.basis()  # a basis of the shuffled code is the shuffled basis
    return np.array([_cca(Ua, Ub[order]) for order in orders])


def null_level(A, B, *, measure="cka"):
    """The expected similarity of ``A`` with ``B``'s rows in random order, exactly, without drawing permutations.

    For column-centered codes, averaging over all row orders turns ``B B^T`` into ``||B||_F^2 / (n - 1)`` times the
    centering matrix, so the numerator of linear CKA averages to ``||A||_F^2 ||B||_F^2 / (n - 1)`` (its denominator
    does not move), and the sum of squared canonical correlations to ``rank A * rank B / (n - 1)``: the mean of
    :func:`permutation_null` over infinitely many permutations.

    Parameters
    ----------
    A : array-like of shape (n_samples, p), or CenteredCodes
    B : array-like of shape (n_samples, q), or CenteredCodes
    measure : {"cka", "cca"}, default "cka"

    Returns
    -------
    float
        NaN when either code is constant.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> A, B = rng.standard_normal((101, 2)), rng.standard_normal((101, 4))
    >>> round(null_level(A, B, measure="cca"), 6)  # max(rank) / (n - 1)
    0.04
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    A, B = _pair(A, B)
    n = len(A)
    if measure == "cca":
        ra, rb = A.basis().shape[1], B.basis().shape[1]
        return float("nan") if min(ra, rb) == 0 else max(ra, rb) / (n - 1)
    denominator = A.gram_norm() * B.gram_norm()
    if denominator == 0:
        return float("nan")
    return float(np.sum(A.values ** 2) * np.sum(B.values ** 2) / ((n - 1) * denominator))


def principal_angles(A, B):
    """Principal angles between the column spaces of ``A`` and ``B``, in degrees, largest first.

    :func:`scipy.linalg.subspace_angles`; e.g. a linear decoder's weight matrix (features x k) against PCA's
    components (features x k): all angles near 0 when the decoder spans PCA's subspace, whatever its basis.

    Parameters
    ----------
    A : array-like of shape (n_features, p)
    B : array-like of shape (n_features, q)

    Returns
    -------
    ndarray of shape (min(p, q),)
        Angles in [0, 90].

    Examples
    --------
    >>> principal_angles(np.eye(3)[:, :2], np.eye(3)[:, 1:]).round(6)
    array([90.,  0.])
    """
    A = check_array(A, "A").astype(np.float64)
    B = check_array(B, "B").astype(np.float64)
    if len(A) != len(B):
        raise ValueError(f"A and B must have the same number of rows (features), got shapes {A.shape} and {B.shape}")
    return np.degrees(subspace_angles(A, B))


def nearest_code_distances(Z_train, Z):
    """Each row's Euclidean distance to its nearest training code; training rows leave themselves out.

    Parameters
    ----------
    Z_train : array-like of shape (n_train, k)
        At least 2 training codes.
    Z : array-like of shape (n, k), or None
        Codes of other samples; None for the training codes themselves (each compared with the others only).

    Returns
    -------
    ndarray of shape (n,) or (n_train,)

    Examples
    --------
    >>> nearest_code_distances(np.array([[0.0], [1.0], [3.0]]), None)
    array([1., 1., 2.])
    """
    Z_train = check_array(Z_train, "Z_train", min_samples=2).astype(np.float64)
    index = NearestNeighbors(n_neighbors=2).fit(Z_train)
    if Z is None:
        distances, neighbours = index.kneighbors(Z_train, 2)
        # The nearest other code: the first neighbour unless it is the sample itself (a duplicate may come first).
        first_is_self = neighbours[:, 0] == np.arange(len(Z_train))
        return np.where(first_is_self, distances[:, 1], distances[:, 0])
    Z = check_array(Z, "Z", n_features=Z_train.shape[1]).astype(np.float64)
    return index.kneighbors(Z, 1)[0][:, 0]


def latent_membership(Z_train, Z_test, *, confidence=0.95):
    """Does the code give membership away? AUC of the distance to the nearest training code, seen vs unseen.

    A training sample's distance to its nearest *other* training code against an unseen sample's distance to its
    nearest training code; a smaller distance votes "member" (the AUC of minus the distance, ties one half), as
    the reconstruction-error membership AUC does with errors. 0.5 when seen and unseen codes sit alike among the
    training codes; near 1 when the model placed its training samples apart from where new samples land. The
    interval is DeLong's on the logit scale (:func:`analysis.measures.intervals.auc_interval`).

    Parameters
    ----------
    Z_train : array-like of shape (n_train, k)
        Codes of the samples the model was trained on; at least 2 (3 for DeLong's variance).
    Z_test : array-like of shape (n_test, k)
        Codes of unseen samples; at least 2.
    confidence : float, default 0.95

    Returns
    -------
    (auc, low, high) : floats in [0, 1]

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> auc, low, high = latent_membership(rng.standard_normal((200, 2)), rng.standard_normal((200, 2)))
    >>> bool(low < 0.5 < high)
    True
    """
    Z_train = check_array(Z_train, "Z_train", min_samples=3)
    Z_test = check_array(Z_test, "Z_test", min_samples=2, n_features=Z_train.shape[1])
    seen, unseen = nearest_code_distances(Z_train, None), nearest_code_distances(Z_train, Z_test)
    auc = delong_auc(seen, unseen)[0]
    low, high = auc_interval(seen, unseen, confidence)
    return auc, low, high


def intrinsic_dimension(X, *, method="twonn"):
    """The intrinsic dimension of a point cloud, as scikit-dimension (``skdim.id``, 0.5) computes it.

    ``twonn``: the two-nearest-neighbour estimator (Facco et al. 2017, ``skdim.id.TwoNN()``: the largest 10% of
    distance ratios discarded, the line through the origin fitted by least squares); ``mle``: Levina and Bickel's
    maximum likelihood estimator (``skdim.id.MLE()``: 20 neighbours, the pointwise estimates combined by their
    harmonic mean). The same neighbour searches and arithmetic as scikit-dimension, so the same numbers, without
    importing it (its import pulls in numba and matplotlib: most of a second). Duplicate rows are dropped first (a
    zero distance leaves the ratio undefined). Noise of full dimension raises any estimate: measure the clean
    signal where it is known.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        At least 10 distinct rows and 2 features.
    method : {"twonn", "mle"}, default "twonn"

    Returns
    -------
    float

    Examples
    --------
    >>> t = np.random.default_rng(0).uniform(0, 6, 500)
    >>> round(intrinsic_dimension(np.c_[np.cos(t), np.sin(t), t]))
    1
    """
    X = check_array(X, "X").astype(np.float64)
    if method not in ID_METHODS:
        raise ValueError(f"method must be one of {list(ID_METHODS)}, got {method!r}")
    X = np.unique(X, axis=0)
    if len(X) < 10:
        raise ValueError(f"X must hold at least 10 distinct rows for an intrinsic dimension, got {len(X)}")
    if X.shape[1] < 2:
        raise ValueError(f"X must have at least 2 features for an intrinsic dimension, got shape {X.shape}")
    return float(twonn(X) if method == "twonn" else mle(X))
