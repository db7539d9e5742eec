"""Training loop for any autoencoder-shaped ``nn.Module``: returns a history, draws nothing, writes nothing."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .validation import check_array, check_int
from .config import TrainConfig

__all__ = ["DivergenceError", "History", "fit", "reconstruct", "encode", "seeds"]


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss; ``epoch`` says when (1-based)."""

    def __init__(self, message, epoch):
        super().__init__(message)
        self.epoch = epoch


@dataclass
class History:
    """Per-epoch losses (mean squared error per feature) of one training run; epoch ``i`` is index ``i - 1``."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self):
        return len(self.train_loss)

    def to_dict(self):
        """Columns ``epoch``, ``train_loss``, ``val_loss`` (NaN when there was no validation data)."""
        val = self.val_loss if self.val_loss else [math.nan] * self.epochs
        return {"epoch": list(range(1, self.epochs + 1)), "train_loss": list(self.train_loss), "val_loss": list(val)}


def seeds(seed):
    """Two independent seeds derived from ``seed``: one for weight initialization, one for the data order.

    Separate streams keep the data order identical for models of different shapes trained with the same seed.
    """
    init_seed, order_seed = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return int(init_seed), int(order_seed)


@contextlib.contextmanager
def torch_threads(n):
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _param(model):
    try:
        return next(model.parameters())
    except StopIteration:
        raise ValueError("model has no parameters") from None


def _as_tensor(model, X, name):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (an autoenc.Autoencoder), got {type(model).__name__}")
    n_features = getattr(getattr(model, "config", None), "input_dim", None)
    X = check_array(X, name, n_features=n_features)
    p = _param(model)
    to_tensor = torch.as_tensor if X.flags.writeable else torch.tensor  # torch warns on read-only memory (mmap)
    return X, to_tensor(X, dtype=p.dtype, device=p.device)


@torch.no_grad()
def _mean_loss(model, X, batch_size=8192):
    total = X.new_zeros(())
    for start in range(0, len(X), batch_size):
        xb = X[start : start + batch_size]
        total += F.mse_loss(model(xb), xb, reduction="sum")
    return (total / X.numel()).item()


def fit(model, X_train, X_val=None, config=None, *, warm_start=False, progress=None, callback=None):
    """Train ``model`` to reconstruct ``X_train`` with minibatch Adam.

    Each epoch draws a fresh permutation and steps through contiguous slices of the permuted in-memory tensor
    (no per-sample DataLoader). Data are converted to the dtype and device of the model's parameters.

    Parameters
    ----------
    model : Autoencoder
        Re-initialized from ``config.seed`` unless ``warm_start``.
    X_train : array-like of shape (n_samples, n_features)
    X_val : array-like of shape (n_val, n_features), optional
        Evaluated after every epoch; required when ``config.patience`` is set.
    config : TrainConfig, optional
    warm_start : bool, default False
        Continue from the current weights instead of initializing them.
    progress : bool or None
        tqdm bar over epochs; None shows it only on a terminal, False never.
    callback : callable, optional
        ``callback(history)`` after every epoch; returning True stops training.

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When a loss becomes NaN or infinite, naming the epoch.

    Examples
    --------
    >>> from autoenc import Autoencoder, ModelConfig, TrainConfig
    >>> X = np.random.default_rng(0).random((100, 8), dtype=np.float32)
    >>> history = fit(Autoencoder(ModelConfig(8, 2)), X, config=TrainConfig(epochs=3), progress=False)
    >>> history.epochs
    3
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    _, X = _as_tensor(model, X_train, "X_train")
    Xv = None if X_val is None else _as_tensor(model, X_val, "X_val")[1]
    if config.patience is not None and Xv is None:
        raise ValueError("patience is set but X_val is None: early stopping needs validation data")

    init_seed, order_seed = seeds(config.seed)
    if not warm_start:
        model.reset_parameters(torch.Generator().manual_seed(init_seed))
    order = torch.Generator().manual_seed(order_seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    history = History()
    best, best_state, n, bs = math.inf, None, len(X), config.batch_size

    with torch_threads(config.threads):
        bar = tqdm(range(1, config.epochs + 1), disable=None if progress is None else not progress, leave=False)
        for epoch in bar:
            model.train()
            Xp = X[torch.randperm(n, generator=order)]
            total = X.new_zeros(())
            for start in range(0, n, bs):
                xb = Xp[start : start + bs]
                loss = F.mse_loss(model(xb), xb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(xb)
            history.train_loss.append((total / n).item())
            model.eval()
            if Xv is not None:
                history.val_loss.append(_mean_loss(model, Xv))
            last = history.val_loss[-1] if Xv is not None else history.train_loss[-1]
            if not (math.isfinite(history.train_loss[-1]) and math.isfinite(last)):
                raise DivergenceError(
                    f"training diverged at epoch {epoch}: loss is {history.train_loss[-1]} "
                    f"(try a smaller lr than {config.lr})",
                    epoch,
                )
            bar.set_postfix(loss=f"{last:.4g}", refresh=False)
            if config.patience is not None:
                if last < best:
                    best, history.best_epoch = last, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif epoch - history.best_epoch >= config.patience:
                    history.stopped_early = True
            if history.stopped_early or (callback is not None and callback(history)):
                break
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


@torch.no_grad()
def _apply(fn, model, X, name, batch_size, threads):
    check_int(batch_size, "batch_size", minimum=1)
    check_int(threads, "threads", minimum=1)
    X, Xt = _as_tensor(model, X, name)
    was_training = model.training
    model.eval()
    try:
        with torch_threads(threads):  # torch's default (all cores) can be 10-100x slower on a busy machine
            out = torch.cat([fn(Xt[s : s + batch_size]) for s in range(0, len(Xt), batch_size)])
    finally:
        model.train(was_training)
    out = out.cpu().numpy()
    return out.astype(X.dtype if X.dtype in (np.float32, np.float64) else np.float64, copy=False)


def reconstruct(model, X, *, batch_size=8192, threads=1):
    """Reconstructions of ``X``, shape (n_samples, n_features); float32/float64 input keeps its dtype.

    Computed in the model's dtype, in batches, without gradients, with ``threads`` torch threads (restored after).
    """
    return _apply(model, model, X, "X", batch_size, threads)


def encode(model, X, *, batch_size=8192, threads=1):
    """Codes of ``X``, shape (n_samples, bottleneck); float32/float64 input keeps its dtype."""
    return _apply(model.encode, model, X, "X", batch_size, threads)
