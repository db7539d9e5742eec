"""Index splits: train, validation and test parts of ``range(n_samples)``, optionally stratified by class."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoenc.validation import check_int

__all__ = ["Split", "split"]


@dataclass(frozen=True)
class Split:
    """Disjoint sorted int64 index arrays that together cover ``range(n_samples)`` once."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split(n_samples, fractions=(0.6, 0.2, 0.2), seed=0, stratify=None):
    """Split ``range(n_samples)`` at random into train, validation and test indices.

    Part sizes are the fractions times ``n_samples`` rounded by largest remainder so that they sum to
    ``n_samples``; a part with a positive fraction gets at least one sample. With ``stratify``, each class's
    count in each part is within one sample of its share (rare classes included, so no class is too small).

    Parameters
    ----------
    n_samples : int
    fractions : sequence of 3 floats
        Train, validation and test fractions: non-negative, summing to 1; train and test must be positive.
    seed : int
    stratify : array-like of shape (n_samples,), optional
        Class labels to keep in proportion across the parts.

    Returns
    -------
    Split
        ``train``, ``val`` (empty when its fraction is 0) and ``test``: sorted int64 arrays.

    Examples
    --------
    >>> parts = split(10, seed=0)
    >>> len(parts.train), len(parts.val), len(parts.test)
    (6, 2, 2)
    """
    n = check_int(n_samples, "n_samples", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    try:
        f = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"fractions must be 3 numbers (train, val, test), got {fractions!r}") from None
    if f.shape != (3,) or not np.isfinite(f).all() or (f < 0).any() or abs(f.sum() - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers (train, val, test) summing to 1, got {fractions!r}")
    if f[0] == 0 or f[2] == 0:
        raise ValueError(f"the train and test fractions must be positive, got {fractions!r}")
    positive = f > 0
    if n < positive.sum():
        raise ValueError(f"n_samples={n} is too few to split into fractions {tuple(f.tolist())}: every part with a "
                         "positive fraction needs at least one sample")
    sizes = np.floor(f * n).astype(np.int64)
    sizes[np.argsort(-(f * n - sizes), kind="stable")[: n - sizes.sum()]] += 1  # largest remainders
    while (empty := positive & (sizes == 0)).any():  # n >= #parts, so the largest part can spare one
        sizes[np.argmax(sizes)] -= 1
        sizes[np.argmax(empty)] += 1
    if stratify is None:
        labels = np.zeros(n, dtype=np.int64)
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratify must have shape (n_samples,) = ({n},), got {labels.shape}")
        labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
    rng = np.random.default_rng(seed)
    table = _apportion(np.bincount(labels), sizes, rng)
    part = np.empty(n, dtype=np.int64)
    # samples grouped by class in random order within it; each class's run is cut by its row of the table
    part[np.lexsort((rng.random(n), labels))] = np.repeat(np.tile(np.arange(3), len(table)), table.ravel())
    return Split(*(np.flatnonzero(part == k).astype(np.int64) for k in range(3)))


def _apportion(counts, sizes, rng):
    """Class x part counts with row sums ``counts`` and column sums ``sizes``, each cell strictly within 1 of its
    share ``counts[c] * sizes[k] / n``. Cells are floored, then each class's leftovers are matched to parts
    where its share has a fractional part, by augmenting paths (a matching exists: the shares are one)."""
    table, frac = np.divmod(np.outer(counts, sizes), counts.sum())
    need, up = sizes - table.sum(axis=0), np.zeros(table.shape, dtype=bool)
    for c in rng.permutation(len(counts)):
        for _ in range(counts[c] - table[c].sum()):
            free = np.flatnonzero((frac[c] > 0) & ~up[c])
            queue = list(free[np.lexsort((rng.random(len(free)), -need[free]))])  # neediest part first
            via = {j: (c, -1) for j in queue}
            while need[queue[0]] == 0:  # part full: a class rounded up there moves its unit to another part
                j = queue.pop(0)
                for c2 in np.flatnonzero(up[:, j]):
                    for j2 in np.flatnonzero((frac[c2] > 0) & ~up[c2]):
                        if j2 not in via:
                            via[j2] = (c2, j)
                            queue.append(j2)
            j = queue[0]
            need[j] -= 1
            while j >= 0:
                c2, prev = via[j]
                up[c2, j] = True
                if prev >= 0:
                    up[c2, prev] = False
                j = prev
    return table + up
