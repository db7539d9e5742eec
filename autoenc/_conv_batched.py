"""Convolutional members of a group (``kind="conv"``) as one stacked model, for ``autoenc.batched``.

The interface is ``_stacked._Stack``'s (one flat parameter buffer and its gradient, per-layer views, a forward
that fills a cache and a hand-written backward), so ``fit_group`` trains either kind with the same loop, fused Adam
kernel, freezing and early stopping.

Every convolution is an im2col gather followed by one ``torch.baddbmm`` over the members: activations are kept as
``(members, channels, batch * positions)``, so each member's convolution is a single matrix product whose inner
size is the whole batch, not M small grouped convolutions (PyTorch's grouped convolutions on a CPU run no faster
than M separate ones). A transposed convolution is the adjoint: a product, then a col2im scatter-add. The
scatter-add runs one strided slice per output phase and kernel offset (``_conv._Geometry``), so no two writes of one
call overlap.

Members differ in seed, bottleneck and channel widths: weights are zero-padded to the group's widest, as for MLPs.
"""
from __future__ import annotations

import math

import torch

from ._conv import _Geometry, _Workspace
from ._stacked import empty_model, flat_views

__all__ = ["_ConvStack", "conv_macs", "conv_padded_macs", "conv_state_bytes"]


def _stage_widths(config):
    """Channels per stage, the input's first."""
    return [config.input_shape[0], *config.hidden]


def _sizes(config):
    """Spatial sizes per stage as (height, width); a 1-D input is one row."""
    return [s if len(s) == 2 else (1, s[0]) for s in config.spatial_shapes]


def _padded(configs):
    """The group's stage widths and bottleneck, each the widest of its members."""
    widths = [max(ws) for ws in zip(*(_stage_widths(c) for c in configs))]
    return widths, max(c.bottleneck for c in configs)


def _macs(config, widths, bottleneck):
    """Multiply-adds per sample of one forward pass with the given stage widths and bottleneck."""
    kk = config.kernel_size ** (len(config.input_shape) - 1)
    sizes = [math.prod(s) for s in _sizes(config)]
    convs = sum(a * b * kk * n for a, b, n in zip(widths[:-1], widths[1:], sizes[1:]))
    return 2 * convs + 2 * widths[-1] * sizes[-1] * bottleneck  # each convolution has its transposed mirror


def conv_macs(config):
    """Matrix-multiply work of one member per sample (multiply-adds of one forward pass; a step costs 6x in FLOPs)."""
    return _macs(config, _stage_widths(config), config.bottleneck)


def conv_padded_macs(configs):
    """:func:`conv_macs` of one member once padded to the group's widths."""
    return _macs(configs[0], *_padded(configs))


def conv_state_bytes(configs, itemsize=4):
    """Bytes of one padded member's weights, gradients and two Adam moments.

    Activations are left out: a convolution's activations stream through memory whatever the group's size, so
    they say nothing about how many members share the cache well.
    """
    widths, k = _padded(configs)
    kk = configs[0].kernel_size ** (len(configs[0].input_shape) - 1)
    flat = widths[-1] * math.prod(_sizes(configs[0])[-1])
    n = 2 * sum(a * b * kk + a + b for a, b in zip(widths[:-1], widths[1:])) + 2 * flat * k + flat + k
    return 4 * itemsize * n


_CHUNK_BYTES = 4 * 2**20  # patches per step slice (see _ConvStack.member_chunks; measured on 28 x 28 images)
_aten = torch.ops.aten


def _bmm(a, b, out):
    """``torch.bmm(a, b, out=out)`` where ``out`` may be a transposed view (planar patches, see ``_Geometry``)."""
    if out.is_contiguous():
        return torch.bmm(a, b, out=out)
    torch.bmm(b.transpose(1, 2), a.transpose(1, 2), out=out.transpose(1, 2))
    return out


def _into(kernel, *args):
    """An activation's backward ``(g, z, a) -> grad`` written into ``g``; ``args`` name which of z, a it reads."""
    return lambda g, z, a: kernel.grad_input(g, *({"z": z, "a": a}.get(x, x) for x in args), grad_input=g)


# name: (forward in place or into ``out()``, backward written into the gradient, needs the pre-activation); the same
# kernels as autograd's (see ``_stacked._ACTIVATIONS``), with out= variants so that a step reuses its buffers.
_ACTIVATIONS = {
    "relu": (lambda z, out: torch.relu_(z), _into(_aten.threshold_backward, "a", 0), False),
    "tanh": (lambda z, out: torch.tanh_(z), _into(_aten.tanh_backward, "a"), False),
    "sigmoid": (lambda z, out: torch.sigmoid_(z), _into(_aten.sigmoid_backward, "a"), False),
    "gelu": (lambda z, out: _aten.gelu.out(z, out=out()), _into(_aten.gelu_backward, "z"), True),
    "elu": (lambda z, out: _aten.elu.out(z, 1.0, 1, 1, out=out()),
            _into(_aten.elu_backward, 1.0, 1, 1, False, "z"), True),
    "leaky_relu": (lambda z, out: _aten.leaky_relu.out(z, 0.01, out=out()),
                   _into(_aten.leaky_relu_backward, "z", 0.01, False), True),
    "silu": (lambda z, out: _aten.silu.out(z, out=out()), _into(_aten.silu_backward, "z"), True),
}


class _ConvStack:
    """Zero-padded convolutional members as views of one flat buffer, with a hand-written backward.

    Activations are channels-last, (M, B * positions, channels), so a convolution is ``baddbmm(bias, patches,
    weight)`` and the code layer reads a free view of the last stage. Views, in forward order, a weight then its
    bias: encoder convolutions ``(M, kk, c_in, c_out)`` and ``(M, 1, c_out)``; the code layer ``(M, P, c, k)`` and
    ``(M, 1, k)``; the decoder's first layer ``(M, k, P, c)`` and ``(M, 1, P, c)``; transposed convolutions
    ``(M, c_in, kk, c_out)`` (c_in: the smaller grid's channels) and ``(M, 1, c_out)``. Each is used as the
    3-D matrix that merging its middle axis with a neighbour gives (``matrices``).
    """

    def __init__(self, configs, dtype, device="cpu"):
        c0 = configs[0]
        self.M, self.configs = len(configs), configs
        self.widths, self.k = _padded(configs)
        sizes = _sizes(c0)
        self.geometry = [_Geometry(c0, a, b, i) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.positions = [math.prod(s) for s in sizes]
        self.depth, self.flat = c0.depth, self.widths[-1] * self.positions[-1]
        self.widest = max(*(c * p for c, p in zip(self.widths, self.positions)), self.flat)  # values per sample
        self.widest_cols = max((g.kk * c * math.prod(g.size_out) for g, c in zip(self.geometry, self.widths)),
                               default=self.widest)  # values per sample of the largest patch matrix
        self.act = None if c0.linear else _ACTIVATIONS[c0.activation]
        kk = self.geometry[0].kk if self.geometry else 1
        M, w, P, K, D = self.M, self.widths, self.positions[-1], self.k, self.depth
        shapes = [s for a, b in zip(w[:-1], w[1:]) for s in ((M, kk, a, b), (M, 1, b))]
        shapes += [(M, P, w[-1], K), (M, 1, K), (M, K, P, w[-1]), (M, 1, P, w[-1])]
        shapes += [s for a, b in zip(w[-1:0:-1], w[-2::-1]) for s in ((M, a, kk, b), (M, 1, b))]
        self.shapes = shapes
        n = sum(math.prod(s) for s in shapes)
        self.param = torch.zeros(n, dtype=dtype, device=device)
        self.grad = torch.zeros(n, dtype=dtype, device=device)
        self.tensors, self.grads = self.views(self.param), self.views(self.grad)
        merge_first = {2 * i for i in range(D + 1)}  # convolutions and the code layer: (M, rows, out)
        self.matrices, self.grad_matrices = (
            [t if t.dim() == 3 else t.view(M, -1, t.shape[-1]) if i in merge_first else t.view(M, t.shape[1], -1)
             for i, t in enumerate(views)]
            for views in (self.tensors, self.grads)
        )
        self.padded = any(_padded([c]) != (self.widths, self.k) for c in configs)
        self.needs_pad_mask = self.padded and c0.activation == "sigmoid" and not c0.linear  # the one act(0) != 0
        self._pad_mask = None
        self._work = _Workspace(dtype, device)

    # -- buffers ----------------------------------------------------------------------------------------------
    def views(self, flat):
        """Split a flat buffer like ``self.param`` into the per-layer weight and bias views."""
        return flat_views(flat, self.shapes)

    def _slots(self, m):
        """Per view, the index of member ``m``'s own (unpadded) block."""
        c, every = self.configs[m], slice(None)
        w, k = _stage_widths(c), c.bottleneck
        slots = [s for a, b in zip(w[:-1], w[1:]) for s in ((m, every, slice(a), slice(b)), (m, 0, slice(b)))]
        slots += [(m, every, slice(w[-1]), slice(k)), (m, 0, slice(k)),
                  (m, slice(k), every, slice(w[-1])), (m, 0, every, slice(w[-1]))]
        slots += [s for a, b in zip(w[-1:0:-1], w[-2::-1]) for s in ((m, slice(a), every, slice(b)), (m, 0, slice(b)))]
        return slots

    def _roles(self):
        D = self.depth
        return ["conv"] * D + ["code", "decode"] + ["conv_t"] * D

    def _to_stack(self, role, weight, bias):
        """A layer's (weight, bias) rearranged into the stack's layout (see the class docstring)."""
        P = self.positions[-1]
        if role == "conv":  # (out, in, *kernel) -> (kernel, in, out)
            return weight.reshape(*weight.shape[:2], -1).permute(2, 1, 0), bias
        if role == "code":  # (k, c * P) -> (P, c, k)
            return weight.reshape(weight.shape[0], -1, P).permute(2, 1, 0), bias
        if role == "decode":  # (c * P, k) -> (k, P, c); bias (c * P) -> (P, c)
            return weight.reshape(-1, P, weight.shape[1]).permute(2, 1, 0), bias.reshape(-1, P).T
        return weight.reshape(*weight.shape[:2], -1).permute(0, 2, 1), bias  # transposed: (in, kernel, out)

    def _from_stack(self, role, weight, bias, layer):
        """The inverse of :meth:`_to_stack`, shaped like ``layer``'s weight and bias."""
        if role == "conv":
            weight = weight.permute(2, 1, 0)
        elif role in ("code", "decode"):
            weight, bias = weight.permute(2, 1, 0), bias.T if role == "decode" else bias
        else:
            weight = weight.permute(0, 2, 1)
        return weight.reshape(layer.weight.shape), bias.reshape(layer.bias.shape)

    @property
    def pad_mask(self):
        """A flat buffer like ``self.param``: 1 on every member's own weights, 0 on padding (built when first used)."""
        if self._pad_mask is None:
            self._pad_mask = torch.zeros_like(self.param)
            views = self.views(self._pad_mask)
            for m in range(self.M):
                for view, slot in zip(views, self._slots(m)):
                    view[slot] = 1
        return self._pad_mask

    def set_member(self, m, model):
        """Copy ``model``'s weights into member ``m``'s (unpadded) slots."""
        slots = self._slots(m)
        with torch.no_grad():
            for i, (layer, role) in enumerate(zip(model.weighted_layers(), self._roles())):
                weight, bias = self._to_stack(role, layer.weight.detach(), layer.bias.detach())
                self.tensors[2 * i][slots[2 * i]] = weight
                self.tensors[2 * i + 1][slots[2 * i + 1]] = bias

    def get_member(self, m, flat=None, model=None):
        """Member ``m`` as an ``Autoencoder`` on the stack's device (weights from ``flat``, default the current ones)."""
        tensors = self.tensors if flat is None else self.views(flat)
        if model is None:  # no default initialization drawn only to be overwritten
            model = empty_model(self.configs[m], self.param.dtype, self.param.device)
        slots = self._slots(m)
        with torch.no_grad():
            for i, (layer, role) in enumerate(zip(model.weighted_layers(), self._roles())):
                weight, bias = tensors[2 * i][slots[2 * i]], tensors[2 * i + 1][slots[2 * i + 1]]
                weight, bias = self._from_stack(role, weight, bias, layer)
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
        return model.eval()

    def init_member(self, m, generator):
        """Initialize member ``m`` exactly as ``Autoencoder(configs[m]).reset_parameters(generator)`` would."""
        model = empty_model(self.configs[m], self.param.dtype)
        self.set_member(m, model.reset_parameters(generator))

    # -- forward and backward ---------------------------------------------------------------------------------
    def _channels_last(self, x, work, tag):
        """(M, B, d) rows, channel-major as the data come -> (M, B * positions, channels)."""
        M, B, _ = x.shape
        C, P = self.widths[0], self.positions[0]
        if C == 1:
            return x.reshape(M, B * P, 1)
        out = work(("rows", tag), (M, B, P, C))
        return out.copy_(x.reshape(M, B, C, P).transpose(2, 3)).view(M, B * P, C)

    def _rows(self, a, work):
        """The inverse of :meth:`_channels_last`."""
        M, C, P = a.shape[0], self.widths[0], self.positions[0]
        if C == 1:
            return a.view(M, -1, P)
        out = work(("rows", "out"), (M, a.shape[1] // P, C, P))
        return out.copy_(a.view(M, -1, P, C).transpose(2, 3)).view(M, -1, C * P)

    def _activate(self, z, cache, on, work, name):
        """Apply the activation (in place where it can), caching the pre-activation where its backward needs it."""
        if not on or self.act is None:
            cache.append(None)
            return z
        fn, _, needs_z = self.act
        cache.append(z if needs_z else None)
        return fn(z, lambda: work((name, "act"), z.shape))

    def _act_backward(self, g, z, a, on):
        return self.act[1](g, z, a) if on and self.act is not None else g

    def member_chunks(self, batch_size):
        """Slices of members that a step trains one after another, each small enough to stay in cache.

        A convolution's patches are several times its input: at batch 128 on 28 x 28 images one member's exceed
        a core's L2 cache. Members are independent, so a step runs forward and backward one slice at a time and
        the slice's buffers (reused, same shapes) stay warm: measured here 1.2x faster than all members at once.
        """
        if self.param.device.type != "cpu":  # an accelerator wants every member in one launch
            return [slice(0, self.M)]
        per_member = batch_size * self.widest_cols * self.param.element_size()
        size = max(1, min(self.M, _CHUNK_BYTES // per_member))
        return [slice(m, m + size) for m in range(0, self.M, size)]

    def forward(self, x, cache=None, members=None):
        """Outputs (M, B, d) for inputs ``x`` (M, B, d) (may be expanded); fills ``cache`` for :meth:`backward`.

        ``cache`` receives, layer by layer, (layer input or patches, pre-activation or None, output). With a cache
        the step's buffers are reused: the output and the cached tensors stay valid until the next forward.
        ``members`` (a slice) runs only those members; ``x`` then holds theirs.
        """
        T = self.matrices if members is None else [t[members] for t in self.matrices]
        D, M, B = self.depth, x.shape[0], x.shape[1]
        work = self._work if cache is not None else _Workspace(self.param.dtype, self.param.device, reuse=False)
        cache = [] if cache is None else cache
        a = self._channels_last(x, work, "in")
        for i, geometry in enumerate(self.geometry):
            cols = geometry.im2col(a, work, "fwd")
            cache.append(cols)
            out = work(("conv", i), (M, cols.shape[1], T[2 * i].shape[2]))
            z = torch.baddbmm(T[2 * i + 1], cols, T[2 * i], out=out)
            a = self._activate(z, cache, True, work, ("conv", i))
            cache.append(a)
        h = a.view(M, B, -1)
        cache.append(h)
        code = torch.baddbmm(T[2 * D + 1], h, T[2 * D], out=work("code", (M, B, self.k)))
        cache += [None, code, code]  # the code layer's (pre-activation, output); the next layer's input
        h = torch.baddbmm(T[2 * D + 3], code, T[2 * D + 2], out=work("decode", (M, B, T[2 * D + 2].shape[2])))
        h = self._activate(h, cache, D > 0, work, "decode")
        cache.append(h)
        a = h.view(M, -1, self.widths[-1])
        for j, geometry in enumerate(reversed(self.geometry)):
            i = 2 * D + 4 + 2 * j
            cache.append(a)
            cols = _bmm(a, T[i], geometry.patches(work, ("conv_t", j), M, B, T[i].shape[2] // geometry.kk))
            a = geometry.col2im(cols, work, "fwd").add_(T[i + 1])
            a = self._activate(a, cache, j < D - 1, work, ("conv_t", j))
            cache.append(a)
        return self._rows(a, work)

    def backward(self, g, cache, members=None):
        """Write the gradients of the loss into ``self.grad``, given ``g`` = dloss/doutput of shape (M, B, d).

        ``g`` and the cached tensors are overwritten. ``members``: as in :meth:`forward` (only their gradients).
        """
        G, T = self.grad_matrices, self.matrices
        if members is not None:
            G, T = [t[members] for t in G], [t[members] for t in T]
        D, work = self.depth, self._work
        g = self._channels_last(g, work, "grad")
        for j in range(D - 1, -1, -1):  # transposed convolutions, the last first
            i, geometry = 2 * D + 4 + 2 * j, self.geometry[D - 1 - j]
            a_in, z, a_out = cache[3 * (D + 2 + j) : 3 * (D + 3 + j)]
            g = self._act_backward(g, z, a_out, j < D - 1)
            torch.sum(g, 1, keepdim=True, out=G[i + 1])
            cols = geometry.im2col(g, work, "bwd")
            torch.bmm(a_in.transpose(1, 2), cols, out=G[i])
            g = torch.bmm(cols, T[i].transpose(1, 2), out=work(("g_conv_t", j), a_in.shape))
        for i in (2 * D + 2, 2 * D):  # the decoder's first layer, then the code layer
            a_in, z, a_out = cache[3 * (i // 2) : 3 * (i // 2 + 1)]
            g = self._act_backward(g.view(a_out.shape), z, a_out, i > 2 * D and D > 0)
            torch.bmm(a_in.transpose(1, 2), g, out=G[i])
            torch.sum(g, 1, keepdim=True, out=G[i + 1])
            if i > 0:
                g = torch.bmm(g, T[i].transpose(1, 2), out=work(("g_linear", i), a_in.shape))
        for i in range(D - 1, -1, -1):  # encoder convolutions, the last first
            cols, z, a_out = cache[3 * i : 3 * i + 3]
            g = self._act_backward(g.view(a_out.shape), z, a_out, True)
            torch.sum(g, 1, keepdim=True, out=G[2 * i + 1])
            torch.bmm(cols.transpose(1, 2), g, out=G[2 * i])
            if i > 0:
                geometry, B = self.geometry[i], g.shape[1] // self.positions[i + 1]
                buffer = geometry.patches(work, "g_conv", g.shape[0], B, T[2 * i].shape[1] // geometry.kk)
                g_cols = _bmm(g, T[2 * i].transpose(1, 2), buffer)
                g = geometry.col2im(g_cols, work, "bwd")

    @torch.no_grad()
    def predict(self, x, out):
        """Outputs of inputs ``x`` (M, B, d) without a cache, into ``out`` (same shape)."""
        return out.copy_(self.forward(x))

    @torch.no_grad()
    def mean_loss(self, X):
        """Per-member mean squared error, shape (M,), of inputs ``X`` of shape (M, n, d) (may be expanded)."""
        M, n, d = X.shape
        chunk = max(1, 2**23 // (M * self.widest))
        total = torch.zeros(M, dtype=self.param.dtype, device=self.param.device)
        for s in range(0, n, chunk):
            xb = X[:, s : s + chunk]
            total += self.forward(xb).sub_(xb).view(M, -1).square_().sum(1)
        return total / (n * d)
