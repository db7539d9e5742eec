"""One member trained alone on PyTorch's own layers, behind the stacked models' interface, for ``autoenc.batched``.

Where batching does not pay (large convolutional members on CPUs whose native convolution kernels beat an im2col
product, see ``planning.conv_batching_pays``), a group of one runs the ``Autoencoder`` module itself: forward and
backward by autograd on the native kernels solo ``fit`` uses, its parameters views of one flat buffer, so that
``fit_group``'s loop, fused Adam step, freezing, early stopping and ``on_eval`` work unchanged.
"""
from __future__ import annotations

import math

import torch

from ._stacked import empty_model, flat_views


class _ModuleStack:
    """A single member (M = 1) as an ``Autoencoder`` whose parameters are (1, *shape) views of ``self.param``."""

    def __init__(self, configs, dtype, device="cpu"):
        if len(configs) != 1:
            raise ValueError(f"_ModuleStack holds one member, got {len(configs)}")
        self.M, self.configs = 1, configs
        self.model = empty_model(configs[0], dtype, device)
        params = list(self.model.parameters())
        self.shapes = [(1, *p.shape) for p in params]
        n = sum(p.numel() for p in params)
        self.param = torch.zeros(n, dtype=dtype, device=device)
        self.grad = torch.zeros(n, dtype=dtype, device=device)
        self.tensors, self.grads = self.views(self.param), self.views(self.grad)
        for p, view in zip(params, self.tensors):
            p.data = view[0]  # the module computes with the flat buffer's values, which Adam updates in place
        self.params = params
        self.padded = self.needs_pad_mask = False
        c = configs[0]  # values per sample of the widest activation, which bounds mean_loss's chunks
        self.widest = (max(ch * math.prod(s) for ch, s in zip([c.input_shape[0], *c.hidden], c.spatial_shapes))
                       if c.kind == "conv" else max(c.input_dim, *c.hidden))
        self._pad_mask = None

    @property
    def pad_mask(self):
        """All ones: a lone member has no padding (the mask only freezes it)."""
        if self._pad_mask is None:
            self._pad_mask = torch.ones_like(self.param)
        return self._pad_mask

    def views(self, flat):
        return flat_views(flat, self.shapes)

    def init_member(self, m, generator):
        """As ``Autoencoder.reset_parameters(generator)``: the same draws, in place in the flat buffer."""
        with torch.no_grad():
            self.model.reset_parameters(generator)

    def get_member(self, m, flat=None, model=None):
        """The member as a new ``Autoencoder`` (weights from ``flat``, default the current ones)."""
        tensors = self.tensors if flat is None else self.views(flat)
        if model is None:
            model = empty_model(self.configs[0], self.param.dtype, self.param.device)
        with torch.no_grad():
            for p, t in zip(model.parameters(), tensors):
                p.copy_(t[0])
        return model.eval()

    def forward(self, x, cache=None):
        """Outputs (1, B, d) for inputs ``x`` (1, B, d); with a ``cache``, the graph for :meth:`backward`."""
        if cache is None:
            return self.model(x[0]).unsqueeze(0)
        with torch.enable_grad():
            out = self.model(x[0])
        cache.append(out)
        return out.detach().clone().unsqueeze(0)  # the caller works on it in place; the graph keeps its own

    def backward(self, g, cache):
        """Write the gradients (autograd's, on the native kernels) into ``self.grad``; ``g`` is (1, B, d)."""
        grads = torch.autograd.grad(cache[0], self.params, g[0])
        for view, grad in zip(self.grads, grads):
            view[0].copy_(grad)

    @torch.no_grad()
    def predict(self, x, out):
        """Outputs of inputs ``x`` (1, B, d) without a cache, into ``out`` (same shape)."""
        return out.copy_(self.forward(x))

    @torch.no_grad()
    def mean_loss(self, X):
        """Mean squared error, shape (1,), of inputs ``X`` of shape (1, n, d)."""
        n, d = X.shape[1:]
        chunk = max(1, 2**23 // self.widest)
        total = torch.zeros(1, dtype=self.param.dtype, device=self.param.device)
        for s in range(0, n, chunk):
            xb = X[0, s : s + chunk]
            total += self.model(xb).sub_(xb).square_().sum()
        return total / (n * d)
