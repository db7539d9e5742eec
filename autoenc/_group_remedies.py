"""Remedies of a group's members, for ``autoenc.batched``: per-member weight decay, input noise, dropout and DP-SGD.

Members may differ in ``weight_decay``, ``dropout``, ``input_noise``, ``dp_clip`` and ``dp_noise``; each member
draws its noise, masks and DP noise from its own generators, seeded as solo ``fit`` seeds them
(``_remedies.generators``), with the same shapes in the same order, so member m sees exactly the draws it would
see alone. Whether the group trains with DP-SGD (Poisson batches) is shared.
"""
from __future__ import annotations

import numpy as np
import torch

from ._remedies import dp_schedule, dropout_mask, generators, poisson_indices
from ._stacked import _widths

__all__ = ["GroupRemedies", "criterion_values"]


class GroupRemedies:
    """Per-member remedy settings and generators of a stack of ``M`` members on ``n`` training samples."""

    def __init__(self, stack, train_configs, n_samples):
        self.stack, self.M = stack, len(train_configs)
        self.weight_decay = [t.weight_decay for t in train_configs]
        self.uniform_decay = len(set(self.weight_decay)) == 1
        self.dropout = [t.dropout for t in train_configs]
        self.input_noise = [t.input_noise for t in train_configs]
        gens = [generators(t.seed) for t in train_configs]
        self.noise_gens, self.drop_gens, self.dp_gens = ([g[k] for g in gens] for k in range(3))
        self.dp = train_configs[0].dp
        self.n = n_samples
        if self.dp:
            self.rate, self.steps = dp_schedule(n_samples, train_configs[0].batch_size)
            self.denominator = self.rate * n_samples
            param = stack.param
            self.clip = torch.tensor([[t.dp_clip] for t in train_configs], dtype=param.dtype, device=param.device)
            self.noise_scale = [t.dp_noise * t.dp_clip for t in train_configs]
            self.noisy = [m for m in range(self.M) if self.noise_scale[m] > 0]
            self.n_params = [sum(v.numel() for v in stack.member_views(m)) for m in range(self.M)]

    @property
    def hidden_layers(self):
        """Indices of the stack's layers whose output is a hidden activation (not the code, not the output)."""
        layers = self.stack.layers
        depth = len(layers) // 2 - 1
        return [i for i in range(len(layers)) if i not in (depth, len(layers) - 1)]

    def inputs(self, X):
        """This epoch's training inputs (M, n, d): ``X`` plus each member's fresh noise; None without input noise."""
        if not any(self.input_noise):
            return None
        out = torch.empty(X.shape, dtype=X.dtype, device=X.device).copy_(X)  # one copy per member, even if shared
        for m, std in enumerate(self.input_noise):
            if std:
                noise = torch.randn(X.shape[1:], generator=self.noise_gens[m], dtype=X.dtype).to(X.device)
                out[m] = X[m] + std * noise
        return out

    def masks(self, rows):
        """Dropout masks of one step, {hidden layer: (M, rows, width)}, member m's drawn as solo ``fit`` draws them."""
        if not any(self.dropout):
            return None
        stack, dtype = self.stack, self.stack.param.dtype
        masks = {}
        for i in self.hidden_layers:  # forward order: each member's draws come in solo fit's order
            masks[i] = torch.ones(self.M, rows, stack.widths[i + 1], dtype=dtype)
            for m, rate in enumerate(self.dropout):
                if rate:
                    width = _widths(stack.configs[m])[i + 1]
                    masks[i][m, :, :width] = dropout_mask(rows, width, rate, self.drop_gens[m], dtype)
            masks[i] = masks[i].to(stack.param.device)
        return masks

    def decay(self, mask):
        """Flat per-parameter weight decay (each member's own, 0 on padding and frozen members), or None when one
        value serves all and nothing is masked (Adam's own kernel applies it then)."""
        if self.uniform_decay and mask is None:
            return None
        base = self.stack.pad_mask if mask is None else mask
        if self.uniform_decay:
            return base * self.weight_decay[0] if self.weight_decay[0] else None
        out = base.clone()
        for view in self.stack.views(out):
            view.mul_(torch.tensor(self.weight_decay, dtype=out.dtype, device=out.device).view(-1, 1, 1))
        return out

    def poisson_batches(self, order_seeds, order_generators):
        """One epoch of Poisson batches: per step, indices (M, B) padded to the step's largest batch, and a (M, B)
        float mask of the real rows. Members sharing an order seed share their batches, as solo ``fit`` draws."""
        dtype, device = self.stack.param.dtype, self.stack.param.device
        for _ in range(self.steps):
            drawn = {s: poisson_indices(self.n, self.rate, g) for s, g in order_generators.items()}
            rows = max(len(i) for i in drawn.values())
            idx = torch.zeros(self.M, rows, dtype=torch.long)
            valid = torch.zeros(self.M, rows, dtype=dtype)
            for m, s in enumerate(order_seeds):
                idx[m, : len(drawn[s])] = drawn[s]
                valid[m, : len(drawn[s])] = 1
            yield idx.to(device), valid.to(device)

    def add_noise(self, grad):
        """Add each member's Gaussian noise, over the expected batch size, to its (already divided) gradient."""
        views = self.stack.views(grad)
        for m in self.noisy:  # drawn as _remedies.dp_noise_draws lays them out: each member's own slots in turn
            noise, start = torch.randn(self.n_params[m], generator=self.dp_gens[m], dtype=grad.dtype), 0
            noise, scale = noise.to(grad.device), self.noise_scale[m] / self.denominator
            for view in self.stack.member_views(m, views):
                view.add_(noise[start : start + view.numel()].view(view.shape), alpha=scale)
                start += view.numel()


def criterion_values(returned, val, M):
    """The per-member criterion of ``restore_best`` at an evaluated epoch: ``on_eval``'s array, else the val loss."""
    if returned is None:
        if val is None:
            raise ValueError("restore_best is set but on_eval returned None and X_val is None: return a per-member "
                             "criterion from on_eval, or pass X_val (the validation loss is the default criterion)")
        return list(val)
    values = np.asarray(returned, dtype=float).reshape(-1)
    if values.shape != (M,):
        raise ValueError(f"on_eval must return None or one criterion value per member, shape ({M},), got shape "
                         f"{np.shape(returned)}")
    return values.tolist()
