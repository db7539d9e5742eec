"""Train a group of autoencoders as one batched model, each member exactly as it would train alone.

Small autoencoders on a CPU spend most of a step in per-operator overhead, not arithmetic. A sweep's members that
share the input width, depth, activation and training settings are trained here as one model: their weights are
stacked as ``(members, in, out)`` tensors (smaller bottlenecks and hidden widths zero-padded to the group's widest)
inside one flat buffer, the forward and backward passes are written out with ``torch.baddbmm``/``torch.bmm`` (no
autograd graph), and the step is PyTorch's fused Adam kernel over that one buffer. A step then costs a few dozen
operator calls whatever the number of members. Convolutional members (``kind="conv"``, same input shape, kernel and
stride) train the same way through ``_conv_batched._ConvStack``: each convolution is an im2col gather and one
``baddbmm`` over the members.

Exactness: member ``m`` sees the data order, initialization and gradients it would see in
``fit(Autoencoder(configs[m]), ...)`` with ``train_configs[m]``; its losses match solo training up to float rounding.
Remedies too: each member's input noise, dropout masks, Poisson batches and DP noise are the draws solo ``fit`` makes
(``_group_remedies``); DP-SGD's per-sample gradient norms come from the layers' inputs and output gradients
(``_Stack.clipped_backward``) where solo ``fit`` uses ``torch.func``, equal up to float rounding.
Padded weights stay exactly zero; a member that stops early or diverges is frozen (gradient and Adam state zeroed,
so it never moves again) and cannot disturb the others, whose arithmetic is independent of it.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .validation import check_array, check_int
from .config import ModelConfig, TrainConfig
from .model import Autoencoder
from ._conv_batched import _ConvStack
from .planning import _CONV_FIELDS, _TRAIN_FIELDS, _as_lists, conv_batching_pays
from ._group_data import _Reconstructor, _batches, _eval_schedule, _gather, _member_data
from ._group_remedies import GroupRemedies, criterion_values
from ._solo import _ModuleStack
from ._stacked import _FusedAdam, _Stack
from ._remedies import check_remedies
from .train import History, divergence_message, resolve_device, seeds, to_tensor, torch_threads

__all__ = ["MemberResult", "fit_group"]



@dataclass
class MemberResult:
    """Outcome of one member of a group.

    Attributes
    ----------
    model : Autoencoder or None
        An ordinary ``Autoencoder`` with the member's own (unpadded) ``ModelConfig``, in eval mode, holding the
        weights solo ``fit`` would return (the best epoch's with ``patience`` or ``restore_best``); None if diverged.
    history : History
        Same semantics as solo ``fit``; a diverged member's history ends with the non-finite epoch.
    error : str or None
        None, or the divergence message (the one ``fit`` raises), naming the epoch.
    """

    model: Autoencoder | None
    history: History
    error: str | None = None

# ------------------------------------------------------------------------------------------------------- training
def _check_compatible(configs, train_configs):
    c0, t0 = configs[0], train_configs[0]
    for i, (c, t) in enumerate(zip(configs, train_configs)):
        fields = ["kind", "input_dim", "depth", "linear"] + ([] if c.linear and c0.linear else ["activation"])
        fields += list(_CONV_FIELDS) if c.kind == c0.kind == "conv" else []
        for f in fields:
            if getattr(c, f) != getattr(c0, f):
                raise ValueError(f"configs[{i}].{f}={getattr(c, f)!r} differs from configs[0].{f}={getattr(c0, f)!r}: "
                                 "a group shares kind, input_dim, depth, activation, linear and, for convolutions, "
                                 "input_shape, kernel_size and stride (autoenc.planning.plan_groups splits a grid)")
        for f in _TRAIN_FIELDS:
            if getattr(t, f) != getattr(t0, f):
                raise ValueError(f"train_configs[{i}].{f}={getattr(t, f)!r} differs from train_configs[0].{f}="
                                 f"{getattr(t0, f)!r}: members of a group may differ only in seed, weight_decay, "
                                 "dropout, input_noise, dp_clip and dp_noise")
        if t.dp != t0.dp:
            raise ValueError(f"train_configs[{i}].dp_clip={t.dp_clip!r} but train_configs[0].dp_clip={t0.dp_clip!r}: "
                             "a group trains with DP-SGD (Poisson batches) for all members or none")
        check_remedies(c, t, f"train_configs[{i}]")


def fit_group(configs, X_train, X_val=None, train_configs=None, *, dtype=torch.float32, progress=None,
              eval_epochs=None, on_eval=None):
    """Train several autoencoders as one batched model; each ends as it would after solo :func:`autoenc.fit`.

    Member ``m`` is initialized from ``train_configs[m].seed``, sees the data order that seed gives solo ``fit``,
    and receives exactly its own gradients, so its loss history matches solo training up to float rounding
    (measured: within 1e-5 relative in float32 and 1e-10 in float64 after 5 epochs).

    Parameters
    ----------
    configs : sequence of ModelConfig
        Same kind, ``input_dim``, depth, activation and ``linear`` (convolutions: also input shape, kernel size
        and stride); bottlenecks and hidden widths may differ (padded with exact zeros;
        :func:`~.planning.can_group` says whether the padding is worth it).
    X_train : array-like of shape (n_samples, n_features) or (n_members, n_samples, n_features)
        One matrix shared by all members, or one per member (for example each with its own noise draw).
    X_val : array-like of shape (n_val, n_features) or (n_members, n_val, n_features), optional
        Evaluated after every epoch; required when ``patience`` is set, and for ``restore_best`` unless
        ``on_eval`` returns the criterion.
    train_configs : TrainConfig or sequence of TrainConfig, optional
        One for all members or one per member; they may differ only in ``seed`` and the remedies ``weight_decay``,
        ``dropout``, ``input_noise``, ``dp_clip`` and ``dp_noise`` (DP-SGD itself, ``dp_clip`` set or not, is
        shared). Default ``TrainConfig()``.
    dtype : torch.dtype, default torch.float32
        Dtype of the weights and of the computation; data are converted to it and copied (in chunks) to the
        members' shared ``train_configs[m].device``, where training runs and where the returned models live.
    progress : bool or None
        tqdm bar over epochs; None shows it only on a terminal, False never.
    eval_epochs : sequence of int, optional
        Strictly increasing epochs (1-based, at most ``epochs``) after which ``on_eval`` is called; default every
        epoch. The last epoch trained is always evaluated too, so a curve always ends where training ended.
    on_eval : callable, optional
        ``on_eval(epoch, reconstruct)`` after each evaluated epoch (after that epoch's losses, early stopping and
        divergence checks). ``reconstruct(X)`` takes inputs of shape (n, n_features), shared by all members, or
        (n_members, n, n_features), and returns every member's reconstructions at that epoch as an ndarray of
        shape (n_members, n, n_features) in ``dtype``: one batched forward pass, no autograd, no effect on
        training. A member that stopped early (``patience``) gives the reconstructions of the weights it will
        return (its best epoch's); a diverged member gives NaN. What to measure is the caller's business.
        With ``restore_best``, ``on_eval`` may return the criterion: an array of one value per member (lower is
        better; NaN never counts as best), in which case it is called *before* that epoch's best-weights and
        ``patience`` bookkeeping (members still training give this epoch's reconstructions), only the evaluated
        epochs are candidates, and each member returns the weights of its evaluated epoch with the lowest value.
        Returning None keeps the validation loss at the evaluated epochs as the criterion.

    Returns
    -------
    list of MemberResult
        In the order of ``configs``. A member whose loss becomes NaN or infinite gets ``model=None`` and the
        message solo ``fit`` would raise; it is frozen at zero and the others continue undisturbed. With
        ``patience``, a member that stops early is frozen (its weights never move again) and returns its best
        epoch's weights, like solo ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).random((100, 8), dtype=np.float32)
    >>> results = fit_group([ModelConfig(8, 2, (16,)), ModelConfig(8, 4, (16,))], X,
    ...                     train_configs=TrainConfig(epochs=3), progress=False)
    >>> [r.history.epochs for r in results], results[1].model.config.bottleneck
    ([3, 3], 4)
    """
    return _fit_group(configs, X_train, X_val, train_configs, dtype=dtype, progress=progress,
                      eval_epochs=eval_epochs, on_eval=on_eval)[0]


def _fit_group(configs, X_train, X_val=None, train_configs=None, *, dtype=torch.float32, progress=None,
               eval_epochs=None, on_eval=None):
    """:func:`fit_group`, also returning the trained ``_Stack`` (for tests)."""
    configs, train_configs = _as_lists(configs, train_configs)
    _check_compatible(configs, train_configs)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    M, d, tc = len(configs), configs[0].input_dim, train_configs[0]
    device = resolve_device(tc.device)
    X, shared = _member_data(X_train, "X_train", M, d, dtype, device)
    Xv, _ = _member_data(X_val, "X_val", M, d, dtype, device)
    if tc.patience is not None and Xv is None:
        raise ValueError("patience is set but X_val is None: early stopping needs validation data")
    if tc.restore_best and Xv is None and on_eval is None:
        raise ValueError("restore_best is set but X_val is None and there is no on_eval: its criterion is the "
                         "validation loss, or what on_eval returns")
    evaluate = _eval_schedule(eval_epochs, on_eval, tc.epochs)

    stack = _make_stack(configs, train_configs, dtype, device)
    order_seeds = [seeds(t.seed)[1] for t in train_configs]
    generators = {s: torch.Generator().manual_seed(s) for s in dict.fromkeys(order_seeds)}
    # elsewhere than on the CPU, tensors made without a device (Adam's state, masks, indices) go to the device
    on_device = contextlib.nullcontext() if device.type == "cpu" else torch.device(device)
    with on_device:
        rem = GroupRemedies(stack, train_configs, X.shape[1])
        adam = _FusedAdam(stack.param, stack.grad, tc.lr, tc.weight_decay if rem.uniform_decay else 0.0)
    track = tc.patience is not None or tc.restore_best
    early_eval = tc.restore_best and on_eval is not None  # on_eval's value is the criterion: called before it
    best_flat = stack.param.clone() if track else None
    histories, errors = [History() for _ in range(M)], [None] * M
    best, active = [math.inf] * M, [True] * M
    mask = stack.pad_mask if stack.needs_pad_mask else None
    decay = rem.decay(mask)
    n, bs = X.shape[1], tc.batch_size
    sumsq = torch.zeros(M, dtype=dtype, device=device)
    counts = torch.zeros(M, dtype=dtype, device=device)
    gathered = {}  # an epoch's gathered rows, in the same memory every epoch (see _gather)

    with torch_threads(tc.threads), torch.no_grad(), on_device:  # gradients are written by hand: no autograd
        bar = tqdm(range(1, tc.epochs + 1), unit="epoch", disable=None if progress is None else not progress,
                   leave=False)
        for epoch in bar:
            sumsq.zero_()
            Xin = rem.inputs(X)
            if rem.dp:
                counts.zero_()
                for idx, valid in rem.poisson_batches(order_seeds, generators):
                    tb = _gather(X, shared, idx)
                    xb = tb if Xin is None else _gather(Xin, False, idx)
                    _dp_step(stack, adam, xb, tb, valid, sumsq, counts, mask, decay, rem)
                train = (sumsq / (counts.clamp(min=1) * d)).tolist()
            else:
                # drawn on the CPU, as solo fit draws them: the same order on every device
                perms = {s: torch.randperm(n, generator=g, device="cpu").to(device) for s, g in generators.items()}
                for xb, tb in _batches(X, shared, [perms[s] for s in order_seeds], bs, Xin, gathered):
                    _step(stack, adam, xb, sumsq, mask, tb, rem.masks(xb.shape[1]), decay)
                train = (sumsq / (n * d)).tolist()
            val = stack.mean_loss(Xv).tolist() if Xv is not None else None
            diverged = []
            for m in (m for m in range(M) if active[m]):
                h = histories[m]
                h.train_loss.append(train[m])
                if val is not None:
                    h.val_loss.append(val[m])
                last = h.val_loss[-1] if val is not None else h.train_loss[-1]
                if not (math.isfinite(train[m]) and math.isfinite(last)):
                    errors[m] = divergence_message(epoch, train[m], tc.lr, X[m])
                    diverged.append(m)
            if diverged:
                mask = _freeze(stack, adam, best_flat, diverged, errors, active)
                decay = rem.decay(mask)
            due = on_eval is not None and (epoch in evaluate or epoch == tc.epochs or not any(active))
            criterion = val if track and not early_eval else None
            if early_eval and due:
                criterion = criterion_values(on_eval(epoch, _Reconstructor(stack, errors)), val, M)
            if criterion is not None:
                stopped = _track_best(stack, best_flat, criterion, best, histories, active, epoch, tc)
                if stopped:
                    mask = _freeze(stack, adam, best_flat, stopped, errors, active)
                    decay = rem.decay(mask)
            bar.set_postfix(training=f"{sum(active)}/{M}", refresh=False)
            if on_eval is not None and not early_eval and (due or not any(active)):
                on_eval(epoch, _Reconstructor(stack, errors))
            if not any(active):
                break
        bar.close()

    results = []
    for m in range(M):
        model = None if errors[m] is not None else stack.get_member(m, best_flat)
        results.append(MemberResult(model, histories[m], errors[m]))
    return results, stack


def _make_stack(configs, train_configs, dtype, device):
    """The stacked model on ``device``, member m initialized as solo ``fit`` would from its seed (draws on the CPU).

    A lone convolutional member that batching would not speed up (:func:`conv_batching_pays`) runs on PyTorch's
    native convolution kernels (``_solo._ModuleStack``), as ``plan_groups`` assumes when it trains it alone.
    """
    if len(configs) == 1 and device.type == "cpu" and not conv_batching_pays(configs):
        stack = _ModuleStack(configs, dtype, device)
    elif configs[0].kind == "conv":
        stack = _ConvStack(configs, dtype, device)
    else:
        stack = _Stack(configs, dtype, train_configs[0].batch_size)
    for m, t in enumerate(train_configs):
        stack.init_member(m, torch.Generator().manual_seed(seeds(t.seed)[0]))
    if configs[0].kind != "conv" and device.type != "cpu":
        with torch.device(device):  # _Stack allocates its buffers on the default device
            moved = _Stack(configs, dtype, train_configs[0].batch_size)
        moved.param.copy_(stack.param)
        stack = moved
    return stack


def _track_best(stack, best_flat, criterion, best, histories, active, epoch, tc):
    """Keep each active member's best weights by ``criterion`` (one value per member); return who stops now."""
    improved, stopped = [], []
    for m in (m for m in range(stack.M) if active[m]):
        h = histories[m]
        if tc.restore_best:
            h.criterion[epoch] = criterion[m]
        if criterion[m] < best[m]:
            best[m], h.best_epoch = criterion[m], epoch
            improved.append(m)
        elif tc.patience is not None and h.best_epoch is not None and epoch - h.best_epoch >= tc.patience:
            h.stopped_early = True
            stopped.append(m)
    if improved:
        i = torch.tensor(improved)
        for src, dst in zip(stack.tensors, stack.views(best_flat)):
            dst[i] = src[i]
    return stopped


def _step(stack, adam, xb, sumsq, mask, target=None, masks=None, decay=None):
    """One Adam step of every member on its batch ``xb`` (M, B, d); adds each member's squared error to ``sumsq``.

    Each member's gradient is that of its own mean loss against ``target`` (default ``xb``), as ``F.mse_loss`` in
    solo ``fit``. ``mask`` (or None) zeroes the gradients of padded weights and of frozen members; ``masks`` are
    the step's dropout masks; ``decay`` (or None) is a per-parameter weight decay (see ``GroupRemedies.decay``).
    """
    target = xb if target is None else target
    chunks = stack.member_chunks(xb.shape[1]) if hasattr(stack, "member_chunks") else [None]
    for members in chunks:
        x, t, kw = (xb, target, {}) if members is None else (xb[members], target[members], {"members": members})
        if masks is not None:
            kw["masks"] = masks
        cache = []
        diff = stack.forward(x, cache, **kw).sub_(t)
        flat = diff.view(len(diff), -1)
        sumsq[members or slice(None)] += flat.square().sum(1)  # torch's pairwise sum, as F.mse_loss (a BLAS dot
        stack.backward(diff.mul_(2.0 / flat.shape[1]), cache, **kw)  # drifts by ~1e-5)
    _adam_step(stack, adam, mask, decay)


def _dp_step(stack, adam, xb, tb, valid, sumsq, counts, mask, decay, rem):
    """One DP-SGD step on Poisson batches ``xb`` (M, B, d) padded to one size, ``valid`` (M, B) marking real rows."""
    cache = []
    diff = stack.forward(xb, cache).sub_(tb).mul_(valid.unsqueeze(2))
    sumsq += diff.view(len(diff), -1).square().sum(1)
    counts += valid.sum(1)
    stack.clipped_backward(diff.mul_(2.0 / diff.shape[2]), cache, rem.clip, rem.denominator)  # per-sample loss
    rem.add_noise(stack.grad)
    _adam_step(stack, adam, mask, decay)


def _adam_step(stack, adam, mask, decay):
    if mask is None and decay is None:
        adam.step()
        return
    if mask is not None:
        stack.grad.mul_(mask)
    if decay is not None:  # Adam's L2 term, each member's own, masked so that frozen members stay put
        stack.grad.addcmul_(stack.param, decay)
    adam.step(weight_decay=0.0)


def _freeze(stack, adam, best_flat, frozen, errors, active):
    """Stop members for good: best weights back (zeros if diverged), Adam state zeroed; returns the new grad mask.

    With a zero gradient and zero moments, Adam's update is exactly 0 / (0 + eps) = 0, so the member never moves.
    """
    i = torch.tensor(frozen)
    best = stack.views(best_flat) if best_flat is not None else None
    for k, (p, m, v) in enumerate(zip(stack.tensors, stack.views(adam.exp_avg), stack.views(adam.exp_avg_sq))):
        m[i], v[i] = 0, 0
        for j in frozen:
            if errors[j] is not None:
                p[j] = 0
            else:
                p[j] = best[k][j]
    for j in frozen:
        active[j] = False
    mask = stack.pad_mask.clone()
    off = torch.tensor([j for j in range(stack.M) if not active[j]])
    for view in stack.views(mask):
        view[off] = 0
    return mask
