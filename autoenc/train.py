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
from . import _remedies

__all__ = ["DivergenceError", "History", "divergence_message", "dp_schedule", "fit", "reconstruct", "encode",
           "resolve_device", "seeds"]

dp_schedule = _remedies.dp_schedule

_CHUNK_BYTES = 64 * 2**20  # data cross to a device, and are gathered per epoch, in chunks of at most this
# Evaluation chunks of a convolutional model: at most this many values in its widest layer. On a CPU a chunk whose
# feature maps stay in cache (4 MB) runs 2.2x faster than one of 128 MB (measured on 28 x 28 images, channels
# (32, 64)); a GPU wants large batches.
_EVAL_VALUES = {"cpu": 2**20, "accelerator": 2**25}
LARGE_INPUT = 1e3  # inputs beyond this magnitude make a diverging loss a scaling problem, not a learning-rate one


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss; ``epoch`` says when (1-based)."""

    def __init__(self, message, epoch):
        super().__init__(message)
        self.epoch = epoch


def divergence_message(epoch, loss, lr, X):
    """The one-sentence reason of a divergence at ``epoch``: the input scale when ``X`` (a tensor) is far from 1.

    Shared by :func:`fit` and the batched trainer so both give the same words for the same member.
    """
    head = f"training diverged at epoch {epoch}: loss is {loss}"
    with torch.no_grad():
        top = float(X.abs().max()) if X.numel() else 0.0
        if not top > LARGE_INPUT:
            return f"{head} (try a smaller lr than {lr})"
        finite = X.numel() > 1 and math.isfinite(top)
        std = float((X / top).std()) * top if finite else top  # divided first: the variance would overflow
    return (f"{head}; the inputs are far from unit scale (max |x| = {top:.2g}, std = {std:.2g}), so standardize "
            f"them (--scale standard, or autoenc.data.Scaler('standard')) rather than lowering the lr")


@dataclass
class History:
    """Per-epoch losses (mean squared error per feature) of one training run; epoch ``i`` is index ``i - 1``.

    ``best_epoch`` is the epoch whose weights were returned when ``patience`` or ``restore_best`` is set;
    ``criterion`` maps each evaluated epoch to its criterion value when ``restore_best`` is set. With input noise
    the training loss is against the clean targets; with DP-SGD it is the mean over the samples the epoch's Poisson
    batches drew.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    criterion: dict = field(default_factory=dict)  # restore_best: epoch -> the criterion at each evaluated epoch

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


def _mps_available():
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device):
    """The ``torch.device`` a ``TrainConfig.device`` names, checked to be usable here.

    ``"auto"`` picks CUDA when available, else MPS (Apple GPUs), else the CPU.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the device does not exist on this machine (no CUDA, no MPS, no GPU number N).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'auto', got {type(device).__name__}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available here; use device='auto' or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not _mps_available():
        raise ValueError(f"device={device!r} but MPS is not available here; use device='auto' or 'cpu'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    return dev


def to_tensor(X, dtype, device):
    """A checked 2-D array as a tensor of ``dtype`` on ``device``.

    On the CPU this shares ``X``'s memory when the dtype already matches (no copy). On another device the rows
    cross in chunks of at most 64 MiB, so no full-size converted copy is ever made on the CPU.
    """
    device = torch.device(device)
    if device.type == "cpu":
        convert = torch.as_tensor if X.flags.writeable else torch.tensor  # torch warns on read-only memory (mmap)
        return convert(X, dtype=dtype)
    if device.type == "mps" and dtype == torch.float64:
        raise ValueError("MPS has no float64: use a float32 model on device='mps'")
    out = torch.empty(X.shape, dtype=dtype, device=device)
    rows = max(1, _CHUNK_BYTES // max(1, X.shape[1] * X.itemsize))
    for start in range(0, len(X), rows):
        out[start : start + rows].copy_(torch.tensor(X[start : start + rows]))
    return out


def _param(model):
    try:
        return next(model.parameters())
    except StopIteration:
        raise ValueError("model has no parameters") from None


def _check_model(model, X, name):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (an autoenc.Autoencoder), got {type(model).__name__}")
    n_features = getattr(getattr(model, "config", None), "input_dim", None)
    return check_array(X, name, n_features=n_features)


def _as_tensor(model, X, name):
    X = _check_model(model, X, name)
    p = _param(model)
    return X, to_tensor(X, p.dtype, p.device)


def _eval_rows(model, batch_size=8192):
    """Rows per evaluation chunk: ``batch_size``, fewer when a convolutional model's widest layer would be huge.

    MLPs keep ``batch_size`` whatever their width, so their results stay what they were bit for bit.
    """
    if getattr(getattr(model, "config", None), "kind", "mlp") != "conv":
        return batch_size
    budget = _EVAL_VALUES["cpu" if _param(model).device.type == "cpu" else "accelerator"]
    return max(1, min(batch_size, budget // model.widest))


@torch.no_grad()
def _mean_loss(model, X, batch_size=8192):
    total = X.new_zeros(())
    rows = _eval_rows(model, batch_size)
    for start in range(0, len(X), rows):
        xb = X[start : start + rows]
        total += F.mse_loss(model(xb), xb, reduction="sum")
    return (total / X.numel()).item()


def fit(model, X_train, X_val=None, config=None, *, warm_start=False, progress=None, callback=None):
    """Train ``model`` to reconstruct ``X_train`` with minibatch Adam.

    Each epoch draws a fresh permutation and steps through contiguous slices of the permuted in-memory tensor
    (no per-sample DataLoader; data over 64 MiB are gathered batch by batch rather than copied per epoch).

    Remedies (``TrainConfig``): ``input_noise`` adds fresh Gaussian noise to every input each epoch (targets stay
    clean); ``dropout`` masks every hidden activation during training steps; ``dp_clip``/``dp_noise`` train with
    DP-SGD on Poisson batches (:func:`autoenc.train.dp_schedule`; per-sample gradients by ``torch.func``);
    ``restore_best`` returns the weights of the epoch with the lowest validation loss.

    Devices: training runs on ``config.device`` (default the CPU). The model is moved there in place
    (``model.to(device)``) before training and stays there, as ``nn.Module.to`` leaves it; ``reconstruct`` and
    ``encode`` then compute on that device. The data are converted to the model's dtype and copied to the device
    (in chunks; on the CPU a float32 array is used without a copy). The seed gives the same initial weights and
    data order on every device.

    Parameters
    ----------
    model : Autoencoder
        Re-initialized from ``config.seed`` unless ``warm_start``.
    X_train : array-like of shape (n_samples, n_features)
    X_val : array-like of shape (n_val, n_features), optional
        Evaluated after every epoch; required when ``config.patience`` or ``config.restore_best`` is set.
    config : TrainConfig, optional
    warm_start : bool, default False
        Continue from the current weights instead of initializing them.
    progress : bool or None
        tqdm bar over epochs (advancing batch by batch); None shows it only on a terminal, False never.
    callback : callable, optional
        ``callback(history)`` after every epoch; returning True stops training.

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When a loss becomes NaN or infinite, naming the epoch.
    ValueError
        When ``config.device`` is not available here (see :func:`resolve_device`), before anything moves.

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
    device = resolve_device(config.device)
    X_train = _check_model(model, X_train, "X_train")
    X_val = None if X_val is None else _check_model(model, X_val, "X_val")
    if config.patience is not None and X_val is None:
        raise ValueError("patience is set but X_val is None: early stopping needs validation data")
    if config.restore_best and X_val is None:
        raise ValueError("restore_best is set but X_val is None: its criterion is the validation loss")
    if getattr(model, "config", None) is not None:  # convolutions take no dropout nor DP-SGD
        _remedies.check_remedies(model.config, config)
    dtype = _param(model).dtype
    X = to_tensor(X_train, dtype, device)
    Xv = None if X_val is None else to_tensor(X_val, dtype, device)
    model.to(device)

    init_seed, order_seed = seeds(config.seed)
    if not warm_start:
        model.reset_parameters(torch.Generator().manual_seed(init_seed))
    order = torch.Generator().manual_seed(order_seed)
    noise_gen, drop_gen, dp_gen = _remedies.generators(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    history = History()
    best, best_state = math.inf, None
    gather_per_batch = X.numel() * X.element_size() > _CHUNK_BYTES

    with torch_threads(config.threads):
        bar = tqdm(total=config.epochs, unit="epoch", disable=None if progress is None else not progress, leave=False,
                   bar_format="{l_bar}{bar}| {n:.2f}/{total_fmt} epochs [{elapsed}<{remaining}{postfix}]")
        for epoch in range(1, config.epochs + 1):
            model.train()
            Xin = _remedies.noisy(X, config.input_noise, noise_gen) if config.input_noise else X
            if config.dp:
                total, count = _dp_epoch(model, optimizer, Xin, X, config, order, dp_gen, bar)
                history.train_loss.append((total / max(count * X.shape[1], 1)).item())
            else:
                history.train_loss.append(_epoch(model, optimizer, Xin, X, config, order, drop_gen, bar, device,
                                                 gather_per_batch))
            model.eval()
            if Xv is not None:
                history.val_loss.append(_mean_loss(model, Xv))
            last = history.val_loss[-1] if Xv is not None else history.train_loss[-1]
            if not (math.isfinite(history.train_loss[-1]) and math.isfinite(last)):
                raise DivergenceError(divergence_message(epoch, history.train_loss[-1], config.lr, X), epoch)
            bar.set_postfix(loss=f"{last:.4g}", refresh=False)
            if config.restore_best:
                history.criterion[epoch] = last
            if config.patience is not None or config.restore_best:
                if last < best:
                    best, history.best_epoch = last, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif config.patience is not None and epoch - history.best_epoch >= config.patience:
                    history.stopped_early = True
            if history.stopped_early or (callback is not None and callback(history)):
                break
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _epoch(model, optimizer, Xin, X, config, order, drop_gen, bar, device, gather_per_batch):
    """One epoch of minibatch Adam on inputs ``Xin`` against targets ``X``; returns the mean training loss."""
    n, bs = len(X), config.batch_size
    perm = torch.randperm(n, generator=order).to(device)  # drawn on the CPU: the same order on any device
    Xp = X if gather_per_batch else X[perm]
    Ip = Xp if Xin is X else Xin if gather_per_batch else Xin[perm]
    total = X.new_zeros(())
    for start in range(0, n, bs):
        i = perm[start : start + bs]
        tb = X[i] if gather_per_batch else Xp[start : start + bs]
        xb = tb if Xin is X else Xin[i] if gather_per_batch else Ip[start : start + bs]
        out = _remedies.dropout_forward(model, xb, config.dropout, drop_gen) if config.dropout else model(xb)
        loss = F.mse_loss(out, tb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(xb)
        bar.update(len(xb) / n)
    return (total / n).item()


def _dp_epoch(model, optimizer, Xin, X, config, order, dp_gen, bar):
    """One epoch of DP-SGD on Poisson batches; returns the summed squared error and the number of samples drawn."""
    n = len(X)
    rate, steps = dp_schedule(n, config.batch_size)
    total, count = X.new_zeros(()), 0
    for _ in range(steps):
        i = _remedies.poisson_indices(n, rate, order).to(X.device)
        total += _remedies.dp_gradients(model, Xin[i], X[i], config, rate * n, dp_gen)
        optimizer.step()
        count += len(i)
        bar.update(1 / steps)
    return total, count


@torch.no_grad()
def _apply(fn, model, X, name, batch_size, threads):
    check_int(batch_size, "batch_size", minimum=1)
    check_int(threads, "threads", minimum=1)
    X = _check_model(model, X, name)
    p = _param(model)
    rows = _eval_rows(model, batch_size)
    out = None
    was_training = model.training
    model.eval()
    try:
        with torch_threads(threads):  # torch's default (all cores) can be 10-100x slower on a busy machine
            for start in range(0, len(X), rows):
                part = fn(to_tensor(X[start : start + rows], p.dtype, p.device)).cpu().numpy()
                if out is None:  # filled chunk by chunk: no full-size copy on the device or in torch
                    out = np.empty((len(X), part.shape[1]), X.dtype if X.dtype in (np.float32, np.float64)
                                   else np.float64)
                out[start : start + len(part)] = part
    finally:
        model.train(was_training)
    return out


def reconstruct(model, X, *, batch_size=8192, threads=1):
    """Reconstructions of ``X``, shape (n_samples, n_features); float32/float64 input keeps its dtype.

    Computed in the model's dtype on the model's device (where its parameters are; nothing is moved), in chunks of
    at most ``batch_size`` rows (fewer for very wide models), without gradients, with ``threads`` torch threads
    (restored after). Each chunk crosses to the device and back on its own, so a large ``X`` never has a full
    copy on the device; the result is a numpy array on the CPU.
    """
    return _apply(model, model, X, "X", batch_size, threads)


def encode(model, X, *, batch_size=8192, threads=1):
    """Codes of ``X``, shape (n_samples, bottleneck); float32/float64 input keeps its dtype.

    Computed like :func:`reconstruct`: on the model's device, chunk by chunk, returned as a CPU numpy array.
    """
    return _apply(model.encode, model, X, "X", batch_size, threads)
