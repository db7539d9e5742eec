"""What the codes hold: 2-D embeddings of latents (UMAP or PCA), a kNN label probe, trustworthiness."""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness as _sk_trustworthiness
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from autoenc.validation import check_array, check_int

__all__ = ["embed_latents", "knn_probe", "trustworthiness"]

METHODS = ("umap", "pca")
# numba's fork-safe "workqueue" layer aborts the process when two threads run parallel code at once: take turns.
_UMAP_LOCK = threading.Lock()


def _check_latents(Z_train, Z_test):
    Z_train = check_array(Z_train, "Z_train")
    if Z_test is not None:
        Z_test = check_array(Z_test, "Z_test")
        if Z_test.shape[1] != Z_train.shape[1]:
            raise ValueError(
                f"Z_train and Z_test must have the same number of columns, got shapes {Z_train.shape} and "
                f"{Z_test.shape}"
            )
    return Z_train, Z_test


def _check_labels(y, name, Z, z_name):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(Z):
        raise ValueError(f"{name} must have shape ({len(Z)},) to match {z_name} of shape {Z.shape}, got {y.shape}")
    return y


def embed_latents(Z_train, Z_test=None, *, method="umap", random_state=0, n_neighbors=15, n_epochs=None):
    """A 2-D picture of the codes: fitted on the training codes, test codes placed into the same map.

    ``method="umap"`` runs UMAP on an exact kNN graph computed with scikit-learn (no approximate search, no
    pynndescent compilation); test codes go through ``UMAP.transform`` with the same exact neighbour search.
    umap-learn is imported here, on first use. Before that import, when the variables are unset, numba's cache
    goes to a private temporary directory if umap's own directory is not writable (``NUMBA_CACHE_DIR``), and
    numba's threading layer is set to a fork-safe one (``NUMBA_THREADING_LAYER=forksafe``: GNU OpenMP hangs
    processes forked after it ran; the fork-safe layer is not thread-safe, so UMAP calls from threads of one
    process take turns). UMAP's first call in a process compiles its numba code: 10-30 s.
    ``method="pca"`` projects onto the training codes' first two principal components (codes of dimension 1
    get a zero second column).

    Parameters
    ----------
    Z_train : array-like of shape (n_train, n_latent)
        Codes of the training samples (e.g. ``autoenc.encode(model, X_train)``).
    Z_test : array-like of shape (n_test, n_latent), optional
    method : {"umap", "pca"}, default "umap"
    random_state : int or None, default 0
        Seeds UMAP (which then runs single-threaded and reproducibly); None lets it run in parallel.
    n_neighbors : int, default 15
        UMAP's neighbourhood size, at least 2; reduced to ``n_train - 1`` for smaller sets. Unused by PCA.
    n_epochs : int, optional
        UMAP's optimization epochs (its default when None; transform runs a third as many). Unused by PCA.

    Returns
    -------
    ndarray of shape (n_train, 2), or a pair (train_2d, test_2d) when ``Z_test`` is given
        In the codes' floating dtype.

    Examples
    --------
    >>> Z = np.random.default_rng(0).standard_normal((40, 8))
    >>> train_2d, test_2d = embed_latents(Z[:30], Z[30:], method="pca")
    >>> train_2d.shape, test_2d.shape
    ((30, 2), (10, 2))
    """
    Z_train, Z_test = _check_latents(Z_train, Z_test)
    if method == "pca":
        train_2d, test_2d = _embed_pca(Z_train, Z_test)
    elif method == "umap":
        n_neighbors = check_int(n_neighbors, "n_neighbors", minimum=2)
        if n_epochs is not None:
            n_epochs = check_int(n_epochs, "n_epochs", minimum=1)
        if len(Z_train) < 3:
            raise ValueError(f"UMAP needs at least 3 training codes, got Z_train of shape {Z_train.shape}")
        train_2d, test_2d = _embed_umap(Z_train, Z_test, random_state, n_neighbors, n_epochs)
    else:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    train_2d = train_2d.astype(Z_train.dtype, copy=False)
    return train_2d if Z_test is None else (train_2d, test_2d.astype(Z_train.dtype, copy=False))


def _embed_pca(Z_train, Z_test):
    k = min(2, *Z_train.shape)
    pca = PCA(n_components=k).fit(Z_train)

    def project(Z):
        out = pca.transform(Z)
        return np.pad(out, ((0, 0), (0, 2 - k))) if k < 2 else out

    return project(Z_train), None if Z_test is None else project(Z_test)


class _ExactIndex:
    """Exact kNN search behind the interface ``UMAP.transform`` uses of its pynndescent index.

    UMAP only calls ``query(X, k, epsilon)`` and reads ``_angular_trees`` (for euclidean, False).
    """

    _angular_trees = False

    def __init__(self, Z):
        self._nn = NearestNeighbors().fit(Z)

    def query(self, X, k=10, epsilon=0.1):
        dists, indices = self._nn.kneighbors(X, k)
        return indices.astype(np.int32), dists.astype(np.float32)  # pynndescent's dtypes: numba reuses its code


def _embed_umap(Z_train, Z_test, random_state, n_neighbors, n_epochs):
    _prepare_numba()
    import umap  # lazily: slow to import, and its numba setup must come first

    k = min(n_neighbors, len(Z_train) - 1)
    index = _ExactIndex(Z_train)
    knn_indices, knn_dists = index.query(Z_train, k)  # each point is its own first neighbour, as UMAP expects
    reducer = umap.UMAP(n_neighbors=k, n_epochs=n_epochs, random_state=random_state,
                        n_jobs=1 if random_state is not None else -1,  # a seed makes UMAP single-threaded anyway
                        precomputed_knn=(knn_indices, knn_dists, index))
    with _UMAP_LOCK, warnings.catch_warnings():
        # Expected and harmless: our index is not an NNDescent object, yet transform works through it.
        warnings.filterwarnings("ignore", message=".*is not an NNDescent object", category=UserWarning)
        train_2d = reducer.fit_transform(Z_train)
        test_2d = None if Z_test is None else reducer.transform(Z_test)
    return np.asarray(train_2d), None if test_2d is None else np.asarray(test_2d)


def _writable(path):
    return os.path.isdir(path) and os.access(path, os.W_OK)


def _prepare_numba():
    """Make umap's numba code importable and fork-safe here; variables the user set are left alone.

    numba caches compiled code beside the package sources, else under the home directory; when umap's directory
    is read-only (a system or container install) use a private temporary directory instead. GNU OpenMP, numba's
    default threading layer on Linux without TBB, is not fork-safe: processes forked after UMAP ran could hang.
    """
    settings = {}
    if "NUMBA_CACHE_DIR" not in os.environ:
        places = [spec.submodule_search_locations[0] for spec in map(importlib.util.find_spec, ("umap", "pynndescent"))
                  if spec is not None and spec.submodule_search_locations]
        caches = [os.path.join(p, "__pycache__") if os.path.isdir(os.path.join(p, "__pycache__")) else p
                  for p in places]
        if not all(_writable(c) for c in caches):
            settings["NUMBA_CACHE_DIR"] = _private_cache_dir()
    if "NUMBA_THREADING_LAYER" not in os.environ:
        settings["NUMBA_THREADING_LAYER"] = "forksafe"
    os.environ.update(settings)
    numba = sys.modules.get("numba")
    if numba is not None:  # already imported, so it read the environment before us: tell its config directly
        if "NUMBA_CACHE_DIR" in settings:
            numba.config.CACHE_DIR = settings["NUMBA_CACHE_DIR"]
        if "NUMBA_THREADING_LAYER" in settings and numba.config.THREADING_LAYER == "default":
            numba.config.THREADING_LAYER = "forksafe"


def _private_cache_dir():
    """A per-user directory under the temporary directory, reused across processes so compiled code stays cached."""
    if hasattr(os, "getuid"):
        path = os.path.join(tempfile.gettempdir(), f"autoenc-numba-cache-{os.getuid()}")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            if _writable(path) and os.stat(path).st_uid == os.getuid():
                return path
        except OSError:
            pass
    return tempfile.mkdtemp(prefix="autoenc-numba-cache-")  # another user's, unusable, or no uids: a fresh one


def knn_probe(Z_train, y_train, Z_test, y_test, *, n_neighbors=5):
    """Accuracy of a k-nearest-neighbour classifier on the codes: how well latent neighbourhoods predict labels.

    Parameters
    ----------
    Z_train : array-like of shape (n_train, n_latent)
    y_train : array-like of shape (n_train,)
    Z_test : array-like of shape (n_test, n_latent)
    y_test : array-like of shape (n_test,)
    n_neighbors : int, default 5
        ``1 <= n_neighbors <= n_train``.

    Returns
    -------
    float
        Share of test codes whose label the classifier fitted on the training codes predicts.

    Examples
    --------
    >>> Z = np.r_[np.zeros((10, 2)), np.ones((10, 2))]
    >>> y = np.r_[np.zeros(10), np.ones(10)]
    >>> knn_probe(Z, y, Z, y, n_neighbors=3)
    1.0
    """
    Z_train, Z_test = _check_latents(Z_train, Z_test)
    if Z_test is None:
        raise TypeError("Z_test must be an array of shape (n_test, n_latent), got None")
    y_train = _check_labels(y_train, "y_train", Z_train, "Z_train")
    y_test = _check_labels(y_test, "y_test", Z_test, "Z_test")
    n_neighbors = check_int(n_neighbors, "n_neighbors", minimum=1)
    if n_neighbors > len(Z_train):
        raise ValueError(f"n_neighbors={n_neighbors} is larger than the number of training codes {len(Z_train)}")
    classifier = KNeighborsClassifier(n_neighbors=n_neighbors).fit(Z_train, y_train)
    return float(classifier.score(Z_test, y_test))


def trustworthiness(X, Z, *, n_neighbors=5):
    """How well an embedding ``Z`` of ``X`` keeps neighbourhoods: 1 when no point gains a false near neighbour.

    Wraps :func:`sklearn.manifold.trustworthiness` (euclidean distances) with input checks.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The original data (or the codes, when ``Z`` is their 2-D picture).
    Z : array-like of shape (n_samples, n_components)
    n_neighbors : int, default 5
        ``1 <= n_neighbors < n_samples / 2``.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((30, 4))
    >>> trustworthiness(X, X)
    1.0
    """
    X = check_array(X, "X")
    Z = check_array(Z, "Z")
    if len(Z) != len(X):
        raise ValueError(f"X and Z must have the same number of samples, got shapes {X.shape} and {Z.shape}")
    n_neighbors = check_int(n_neighbors, "n_neighbors", minimum=1)
    if not n_neighbors < len(X) / 2:
        raise ValueError(f"n_neighbors must be < n_samples / 2 = {len(X) / 2}, got n_neighbors={n_neighbors}")
    return float(_sk_trustworthiness(X, Z, n_neighbors=n_neighbors))
