"""Inputs of ``autoenc.batched``: a group's data as (members, samples, features) tensors, the epochs ``on_eval``
runs after, the ``reconstruct`` callable it receives, and each step's rows of every member."""
from __future__ import annotations

import math

import numpy as np
import torch

from .validation import check_array, check_int
from .train import to_tensor


def _member_data(X, name, M, d, dtype, device=None):
    """``X`` as a tensor of shape (M, n, d) (an expanded view when one 2-D array is shared), and whether shared.

    On a ``device`` other than the CPU the rows cross in bounded chunks (``train.to_tensor``), before expanding.
    """
    if X is None:
        return None, True
    try:
        ndim = np.ndim(X)
    except Exception:  # ragged lists: let check_array explain
        ndim = 2
    if ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features) shared by all members or a 3-D array "
                         f"(n_members, n_samples, n_features), got {ndim} dimension(s)")
    arr = check_array(X, name, ndim=ndim)
    if arr.shape[-1] != d:
        raise ValueError(f"{name} has {arr.shape[-1]} features, expected input_dim={d} (shape {arr.shape})")
    if ndim == 3 and arr.shape[0] != M:
        raise ValueError(f"{name} is 3-D, so its first axis must index the {M} members, got shape {arr.shape}")
    if device is not None and torch.device(device).type != "cpu":
        t = to_tensor(arr.reshape(-1, d), dtype, device).view(arr.shape)
    else:
        t = torch.as_tensor(arr if arr.flags.writeable else arr.copy(), dtype=dtype)  # torch warns on read-only
    return (t.expand(M, *t.shape) if ndim == 2 else t), ndim == 2


def _eval_schedule(eval_epochs, on_eval, epochs):
    """The set of epochs after which ``on_eval`` runs (every epoch by default), checked before any training."""
    if on_eval is None:
        if eval_epochs is not None:
            raise ValueError("eval_epochs is set but on_eval is None: pass on_eval(epoch, reconstruct) to use it")
        return frozenset()
    if not callable(on_eval):
        raise TypeError(f"on_eval must be callable as on_eval(epoch, reconstruct), got {type(on_eval).__name__}")
    if eval_epochs is None:
        return frozenset(range(1, epochs + 1))
    listed = list(eval_epochs)
    for i, e in enumerate(listed):
        check_int(e, f"eval_epochs[{i}]", minimum=1, maximum=epochs)
    if any(b <= a for a, b in zip(listed[:-1], listed[1:])):
        raise ValueError(f"eval_epochs must be strictly increasing, got {listed}")
    return frozenset(int(e) for e in listed)


class _Reconstructor:
    """``reconstruct(X) -> ndarray (n_members, n, d)``: every member's current reconstructions (NaN if diverged)."""

    def __init__(self, stack, errors):
        self.stack, self.diverged = stack, [m for m, e in enumerate(errors) if e is not None]

    def __call__(self, X):
        stack = self.stack
        M, d = stack.M, stack.configs[0].input_dim
        Xt = _member_data(X, "X", M, d, stack.param.dtype)[0].to(stack.param.device)
        out = torch.empty(Xt.shape, dtype=stack.param.dtype, device=stack.param.device)
        widest = stack.widest if hasattr(stack, "widest") else max(stack.widths)  # values per sample, widest layer
        chunk = max(1, 2**22 // (M * widest))  # bounds the activations, as mean_loss does
        with torch.no_grad():
            for s in range(0, Xt.shape[1], chunk):
                stack.predict(Xt[:, s : s + chunk], out[:, s : s + chunk])
        if self.diverged:  # their weights were zeroed when frozen: an output of zeros would pass for a model
            out[self.diverged] = math.nan
        return out.cpu().numpy()


_GATHER_BYTES = 64 * 2**20  # above this, an epoch's per-member batches are gathered step by step


def _gather(X, shared, idx, buffers=None, key=None):
    """Rows ``idx`` (M, B) of every member's data ``X`` (M, n, d), as (M, B, d): one ``index_select`` over the rows
    (advanced indexing took 6x as long for 15 members' epoch of digits, measured), into ``buffers[key]`` when given:
    an epoch's gather into the same memory every epoch, not fresh pages to fault in (2 ms an epoch, measured)."""
    M, n, d = X.shape
    if not (shared or X.is_contiguous()):
        return X[torch.arange(M, device=idx.device)[:, None], idx]
    rows = X[0] if shared else X.view(M * n, d)
    flat = (idx if shared else idx + torch.arange(M, device=idx.device)[:, None] * n).reshape(-1)
    out = None
    if buffers is not None:
        out = buffers.get(key)
        if out is None or out.shape != (len(flat), d) or out.dtype != X.dtype:
            out = buffers[key] = X.new_empty(len(flat), d)
    return torch.index_select(rows, 0, flat, out=out).view(*idx.shape, d)


def _batches(X, shared, perms, batch_size, X_in=None, buffers=None):
    """Yield each step's (M, B, d) inputs and targets: member m's rows in the order of its permutation ``perms[m]``.

    The targets are rows of ``X``; the inputs are the same rows of ``X_in`` (M, n, d) when given, else the targets.
    ``buffers``: a dict kept from epoch to epoch, for the epoch's gathered rows (valid until the next epoch's).
    """
    if X_in is not None:
        idx = torch.stack(perms)
        if X.shape[0] * X.shape[1] * X.shape[2] * X.element_size() <= _GATHER_BYTES:
            Xp, Ip = _gather(X, shared, idx, buffers, "targets"), _gather(X_in, False, idx, buffers, "inputs")
            for start in range(0, X.shape[1], batch_size):
                yield Ip[:, start : start + batch_size], Xp[:, start : start + batch_size]
        else:
            for start in range(0, X.shape[1], batch_size):
                i = idx[:, start : start + batch_size]
                yield _gather(X_in, False, i), _gather(X, shared, i)
        return
    for xb in _plain_batches(X, shared, perms, batch_size, buffers):
        yield xb, xb


def _plain_batches(X, shared, perms, batch_size, buffers=None):
    """``_batches`` without input noise: the inputs are the targets."""
    M, n, d = X.shape
    if shared and all(p is perms[0] for p in perms):  # one order for everyone: gather each step's rows into one
        buffer = X.new_empty(min(batch_size, n), d)   # cache-resident buffer (no copy of the epoch), shared
        for start in range(0, n, batch_size):
            i = perms[0][start : start + batch_size]
            xb = torch.index_select(X[0], 0, i, out=buffer[: len(i)])
            yield xb.expand(M, *xb.shape)
        return
    if M * n * d * X.element_size() <= _GATHER_BYTES:  # gather the epoch at once, slice per step
        Xp = _gather(X, shared, torch.stack(perms), buffers, "targets")
    else:  # big data: gather step by step rather than copying it M times
        idx = torch.stack(perms)
        for start in range(0, n, batch_size):
            yield _gather(X, shared, idx[:, start : start + batch_size])
        return
    for start in range(0, n, batch_size):
        yield Xp[:, start : start + batch_size]
