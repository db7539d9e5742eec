"""Remedies against memorization, as solo ``fit`` applies them: input noise, dropout, DP-SGD's Poisson batches and
clipped per-sample gradients; the random streams and schedules here are shared with ``autoenc.batched``.

Every remedy draws from its own generator, seeded from ``TrainConfig.seed`` (:func:`remedy_seeds`), on the CPU and
in the model's dtype, so the batched trainer can make exactly the draws solo ``fit`` makes, member by member.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["check_remedies", "dp_schedule", "remedy_seeds"]


def remedy_seeds(seed):
    """Three seeds derived from ``seed``: input noise, dropout masks and DP-SGD noise.

    The third to fifth words of the ``SeedSequence`` whose first two seed the initialization and the data order
    (:func:`autoenc.train.seeds`), so adding a remedy never changes those.
    """
    return tuple(int(s) for s in np.random.SeedSequence(seed).generate_state(5, dtype=np.uint64)[2:])


def generators(seed):
    """CPU generators ``(noise, dropout, dp)`` seeded by :func:`remedy_seeds`."""
    return tuple(torch.Generator().manual_seed(s) for s in remedy_seeds(seed))


def dp_schedule(n_samples, batch_size):
    """DP-SGD's Poisson sampling: ``(sample_rate, steps_per_epoch)`` for ``n_samples`` training samples.

    Each step takes every sample independently with probability ``sample_rate = min(1, batch_size / n_samples)``,
    so a batch holds ``batch_size`` samples on average; an epoch is ``max(1, round(n_samples / batch_size))``
    steps, about one pass over the data. The summed clipped gradients are divided by the expected batch size
    ``sample_rate * n_samples``, never by the batch drawn (which would depend on the data and leak).

    Examples
    --------
    >>> dp_schedule(1000, 128)
    (0.128, 8)
    """
    return min(1.0, batch_size / n_samples), max(1, round(n_samples / batch_size))


def poisson_indices(n, rate, generator):
    """One Poisson batch: the (sorted) indices of the samples drawn, each with probability ``rate``."""
    return torch.nonzero(torch.rand(n, generator=generator) < rate).flatten()


def noisy(X, std, generator):
    """``X`` plus fresh Gaussian noise of std ``std``, drawn on the CPU in ``X``'s dtype (the same on any device)."""
    noise = torch.randn(X.shape, generator=generator, dtype=X.dtype).to(X.device)
    return X + std * noise


def dropout_mask(rows, width, rate, generator, dtype):
    """Inverted dropout's mask: 0 with probability ``rate``, else ``1 / (1 - rate)``; drawn on the CPU."""
    return (torch.rand(rows, width, generator=generator, dtype=dtype) >= rate).to(dtype) / (1 - rate)


def check_remedies(model_config, train_config, name="config"):
    """Raise ValueError when a remedy of ``train_config`` does not apply to ``model_config`` (convolutions)."""
    if model_config.kind != "conv":
        return
    for key in ("dropout", "dp_clip"):
        if getattr(train_config, key):
            raise ValueError(f"{name}.{key}={getattr(train_config, key)} is not supported for convolutional models "
                             "(kind='conv'); use an MLP, or weight_decay, input_noise or restore_best")


def _hidden_points(seq):
    """Indices in an MLP ``nn.Sequential`` after which a hidden activation comes out (not the code, not the output)."""
    return [i for i in range(len(seq) - 1) if isinstance(seq[i + 1], nn.Linear)]


def dropout_forward(model, x, rate, generator):
    """``model(x)`` with inverted dropout on every hidden activation, masks drawn layer by layer in forward order."""
    for seq in (model.encoder, model.decoder):
        points = set(_hidden_points(seq))
        for i, module in enumerate(seq):
            x = module(x)
            if i in points:
                x = x * dropout_mask(x.shape[0], x.shape[1], rate, generator, x.dtype).to(x.device)
    return x


def dp_noise_draws(model, std, generator, dtype):
    """DP-SGD's noise for every parameter of an MLP ``model``, {name: tensor}: one draw of ``randn(n_parameters)``
    laid out as the batched trainer stores a member (every layer's weight as (in, out), then every bias)."""
    layers = model.linear_layers()
    noise = std * torch.randn(sum(p.numel() for p in model.parameters()), generator=generator, dtype=dtype)
    names = {id(p): k for k, p in model.named_parameters()}
    out, start = {}, 0
    for p in [layer.weight for layer in layers] + [layer.bias for layer in layers]:
        chunk = noise[start : start + p.numel()]
        out[names[id(p)]] = chunk.view(p.shape[::-1]).T if p.dim() == 2 else chunk
        start += p.numel()
    return out


def dp_gradients(model, xb, tb, config, denominator, generator):
    """Set ``p.grad`` of every parameter to DP-SGD's gradient for the batch; return the batch's summed squared error.

    Per-sample gradients of the per-sample loss ``mean((model(x_i) - t_i)**2)`` by ``torch.func`` (vmap of grad),
    each clipped to L2 norm ``config.dp_clip`` over all parameters, summed, plus Gaussian noise of std
    ``config.dp_noise * config.dp_clip`` (:func:`dp_noise_draws`), divided by ``denominator`` (the expected batch
    size).
    """
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in model.named_parameters()}
    if len(xb):
        def loss(p, x, t):
            return (functional_call(model, p, (x[None],)) - t[None]).square().mean()

        per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, xb, tb)
        norms = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in per_sample.values()))
        factor = torch.clamp(config.dp_clip / norms, max=1.0)
        summed = [torch.tensordot(factor, per_sample[k], dims=1) for k in params]
        with torch.no_grad():
            sq = (model(xb) - tb).square().sum()
    else:
        summed = [torch.zeros_like(p) for p in params.values()]
        sq = xb.new_zeros(())
    if config.dp_noise > 0:
        noise = dp_noise_draws(model, config.dp_noise * config.dp_clip, generator, xb.dtype)
        summed = [g + noise[k].to(g.device) for g, k in zip(summed, params)]
    for p, g in zip(model.parameters(), summed):
        p.grad = g / denominator
    return sq
