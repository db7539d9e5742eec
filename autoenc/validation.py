"""One place for input checks, used by ``autoenc`` and ``analysis`` alike: fail early, naming the argument."""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_array", "check_columns", "check_int", "check_positive_float", "check_same_shape"]


def check_array(X, name="X", *, ndim=2, n_features=None, min_samples=1, dtype=None):
    """Return ``X`` as a finite numeric ndarray, or raise an error naming ``name``.

    Parameters
    ----------
    X : array-like
        Anything ``np.asarray`` accepts (lists, numpy arrays, CPU torch tensors, DataFrames).
    name : str
        The argument's name, used in error messages.
    ndim : int
        Required number of dimensions (2 for data matrices, 1 for per-sample vectors).
    n_features : int or None
        Required number of columns (2-D only).
    min_samples : int
        Minimum number of rows.
    dtype : numpy dtype or None
        Convert to this dtype; by default floating input keeps its dtype and other numeric input becomes float64.

    Returns
    -------
    X : ndarray
    """
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists, exotic objects
        raise TypeError(f"{name} must be a numeric array; could not convert it ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        what = "a 2-D array of shape (n_samples, n_features)" if ndim == 2 else f"a {ndim}-D array"
        hint = " (reshape 1-D data with X.reshape(-1, 1) or X.reshape(1, -1))" if ndim == 2 and arr.ndim == 1 else ""
        raise ValueError(f"{name} must be {what}, got an array of shape {arr.shape}{hint}")
    if arr.shape[0] < min_samples or arr.size == 0:
        raise ValueError(f"{name} must have at least {min_samples} sample(s) and one feature, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, expected {n_features} (shape {arr.shape})")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or infinite value(s); the first is at index {where}")
    return arr


def check_int(value, name, *, minimum=None, maximum=None):
    """Return ``value`` as an int within [minimum, maximum], or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_positive_float(value, name, *, allow_zero=False):
    """Return ``value`` as a finite float > 0 (>= 0 with ``allow_zero``), or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


def check_same_shape(A, name, X, x_name):
    """``A`` checked like :func:`check_array` and required to have the shape of ``X`` (named ``x_name``)."""
    A = check_array(A, name)
    if A.shape != X.shape:
        raise ValueError(f"{name} has shape {A.shape} but {x_name} has shape {X.shape}; they must match")
    return A


def check_columns(frame, columns, name):
    """Require a DataFrame-like ``frame`` (named ``name``) holding every one of ``columns``."""
    if not hasattr(frame, "columns") or not hasattr(frame, "loc"):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")
    return frame
