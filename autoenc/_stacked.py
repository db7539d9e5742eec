"""The stacked model behind ``autoenc.batched``: M zero-padded MLP autoencoders as (M, in, out) views of one flat
buffer, a hand-written forward and backward (``torch.baddbmm``/``torch.bmm``, or oneDNN member by member for wide
layers on CPUs where MKL is slow, see ``_kernels``; autograd's own activation kernels), and PyTorch's fused Adam
kernel over that buffer."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _kernels
from ._kernels import BMM, ONEDNN, ONEDNN_T, SKINNY
from .model import Autoencoder

_FUSED_ADAM = getattr(torch, "_fused_adam_", None)  # the kernel behind torch.optim.Adam(fused=True)

_aten = torch.ops.aten
# (forward, backward(grad, pre_activation, activation), needs the pre-activation); the backward kernels are the
# ones autograd calls for the matching nn modules, so gradients equal solo training's. relu, tanh and sigmoid write
# into the gradient they are given (the backward's own buffer): elementwise, so in place is exact.
_ACTIVATIONS = {
    "relu": (torch.relu_, lambda g, z, a: _aten.threshold_backward.grad_input(g, a, 0, grad_input=g), False),
    "tanh": (torch.tanh_, lambda g, z, a: _aten.tanh_backward.grad_input(g, a, grad_input=g), False),
    "sigmoid": (torch.sigmoid_, lambda g, z, a: _aten.sigmoid_backward.grad_input(g, a, grad_input=g), False),
    "gelu": (F.gelu, lambda g, z, a: _aten.gelu_backward(g, z), True),
    "elu": (F.elu, lambda g, z, a: _aten.elu_backward(g, 1.0, 1, 1, False, z), True),
    "leaky_relu": (F.leaky_relu, lambda g, z, a: _aten.leaky_relu_backward(g, z, 0.01, False), True),
    "silu": (F.silu, lambda g, z, a: _aten.silu_backward(g, z), True),
}

_RELU = _ACTIVATIONS["relu"]


def _widths(config):
    return [config.input_dim, *config.hidden, config.bottleneck, *config.hidden[::-1], config.input_dim]


def _padded_widths(configs):
    return [max(ws) for ws in zip(*(_widths(c) for c in configs))]



def empty_model(config, dtype, device="cpu"):
    """An ``Autoencoder`` of ``config`` with allocated, uninitialized weights (no random draws).

    Built on the meta device and filled with ``torch.empty``: ``Module.to_empty`` would do the same, but its
    ``empty_like`` on meta tensors imports sympy (measured 0.4 s, once in every process that trains a group).
    """
    with torch.device("meta"):
        model = Autoencoder(config, dtype=dtype)
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, torch.nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device=device),
                                                     requires_grad=p.requires_grad))
        for name, b in list(module.named_buffers(recurse=False)):
            module._buffers[name] = torch.empty(b.shape, dtype=b.dtype, device=device)
    return model


def flat_views(flat, shapes):
    """Consecutive views of the 1-D buffer ``flat`` with the given shapes (no copies)."""
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[start : start + size].view(shape))
        start += size
    return out

class _Stack:
    """Zero-padded weights of M members as (M, in, out) views of one flat buffer, with a hand-written backward.

    ``weights[l]`` has shape (M, widths[l], widths[l + 1]) (transposed relative to ``nn.Linear.weight``; a view of
    (M, widths[l + 1], widths[l]) memory where ``stored_t[l]``) and ``biases[l]`` (M, 1, widths[l + 1]); ``grads``
    mirrors them in ``self.grad``. ``batch_size``: the training batch, which decides ``stored_t``.
    """

    def __init__(self, configs, dtype, batch_size=None):
        M, widths = len(configs), _padded_widths(configs)
        self.M, self.widths, self.configs = M, widths, configs
        n_layers = len(widths) - 1
        self.shapes = [(M, a, b) for a, b in zip(widths[:-1], widths[1:])] + [(M, 1, b) for b in widths[1:]]
        # layers with a few outputs from many inputs (the code layer of a wide model) run as (out, batch) products
        self.skinny = [_kernels.skinny(a, b) and i < n_layers - 1
                       for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
        self.onednn = _kernels.use_onednn(dtype, torch.empty(0).device)  # wide products on oneDNN, member by member
        self.mkl_avx512 = _kernels.mkl_avx512()  # narrow layers' forward products stay plain there
        self._plans = {}  # batch size -> per layer, the kernels of its three products (see kernels)
        # A layer whose weight gradient runs as oneDNN's g^T a at ``batch_size`` (``ONEDNN_T``) keeps its weights
        # (M, out, in) in the flat buffer, seen through (M, in, out) views: the gradient lands there with a plain
        # copy, where a transposed one took a third as long as the product (28 us for 1024 x 64). The arithmetic
        # is the same: the numbers do not change.
        self.stored_t = [batch_size is not None and k[2] == ONEDNN_T for k in self.kernels(batch_size or 1)]
        self.stored_t += [False] * n_layers
        self._stored = [(m, b, a) if t else (m, a, b) for (m, a, b), t in zip(self.shapes, self.stored_t)]
        n = sum(math.prod(s) for s in self.shapes)
        self.param, self.grad = torch.zeros(n, dtype=dtype), torch.zeros(n, dtype=dtype)
        self.tensors, self.grads = self.views(self.param), self.views(self.grad)
        depth = configs[0].depth
        act = None if configs[0].linear else _ACTIVATIONS[configs[0].activation]
        # (W, b, grad W, grad b, activation after this layer or None): none on the code or on the output
        self.layers = [
            (self.tensors[i], self.tensors[n_layers + i], self.grads[i], self.grads[n_layers + i],
             act if i not in (depth, n_layers - 1) else None)
            for i in range(n_layers)
        ]
        self._pad_mask = None
        self.padded = any(_widths(c) != widths for c in configs)
        # act(0) != 0 (sigmoid) gives padded units a nonzero output, hence a nonzero gradient on the zero weights
        # that read them: those gradients must be masked; for the others they are exactly zero already.
        self.needs_pad_mask = self.padded and act is not None and act[0](torch.zeros(1, dtype=dtype)).item() != 0
        # their per-member operands, views of the flat buffers kept from step to step: (W[m]^T, b[m, 0]), W[m], gW[m]
        self._members = [(_kernels.member_operands(W, b), W.unbind(0), gW.unbind(0))
                         for W, b, gW, _, _ in self.layers] if self.onednn else None
        self._alone = {}  # member -> its layers and operands as a stack of one (see _member_layers)
        self._work = {}  # a training step's activations and gradients, reused from step to step (see _buffer)
        self._parts = {}  # id of such a buffer -> (it, its per-member views for the oneDNN products; _parts_of)
        self._dropped = {}  # dropout: hidden layer -> its activation before the mask, for the backward
        self._live = None  # DP with padded sigmoid members: per layer, 1 on each member's own input units

    def _buffer(self, key, shape):
        """A reusable buffer for a step: allocating the activations anew each step costs as much as the product
        that fills them (measured: 131 us against 65 us for 2 x 64 x 1024 values)."""
        buf = self._work.get((key, shape))
        if buf is None:
            buf = self._work[key, shape] = torch.empty(shape, dtype=self.param.dtype, device=self.param.device)
            if self.onednn and len(shape) == 3 and shape[0] > 1:
                self._parts[id(buf)] = buf, _kernels.parts(buf)  # holding buf: no other tensor gets its id
        return buf

    def _parts_of(self, t):
        """``_kernels.parts(t)``, made once where ``t`` is one of the step's buffers (or what an in-place op or
        ``out=`` returned of it: the same tensor)."""
        kept = self._parts.get(id(t))
        return kept[1] if kept is not None and kept[0] is t else _kernels.parts(t)

    def kernels(self, batch):
        """Per layer, the kernels of its (forward, input gradient, weight gradient) products for ``batch`` samples
        a member (``_kernels.layer_kernels``: a fixed rule of the shapes and the machine, never a timing)."""
        plan = self._plans.get(batch)
        if plan is None:
            widths = self.widths
            plan = self._plans[batch] = [_kernels.layer_kernels(a, b, batch, s, self.onednn, self.mkl_avx512)
                                         for a, b, s in zip(widths[:-1], widths[1:], self.skinny)]
        return plan

    @property
    def pad_mask(self):
        """A flat buffer like ``self.param``: 1 on every member's own weights, 0 on padding (built when first used)."""
        if self._pad_mask is None:
            n_layers = len(self.layers)
            self._pad_mask = torch.zeros_like(self.param)
            mask = self.views(self._pad_mask)
            for m, c in enumerate(self.configs):
                w = _widths(c)
                for i in range(n_layers):
                    mask[i][m, : w[i], : w[i + 1]] = 1
                    mask[n_layers + i][m, :, : w[i + 1]] = 1
        return self._pad_mask

    def init_member(self, m, generator):
        """Initialize member ``m`` in place exactly as ``Autoencoder.reset_parameters(generator)`` would.

        Same draws in the same order (layer by layer in forward order, the (out, in) weight then the bias), so the
        weights are bit for bit those of ``Autoencoder(configs[m]).reset_parameters(generator)``, without building
        the module (whose own default initialization would be drawn only to be overwritten).
        """
        n_layers, w = len(self.layers), _widths(self.configs[m])
        for i in range(n_layers):
            bound = 1.0 / math.sqrt(w[i])
            weight = torch.empty(w[i + 1], w[i], dtype=self.param.dtype).uniform_(-bound, bound, generator=generator)
            self.tensors[i][m, : w[i], : w[i + 1]].copy_(weight.T)
            bias = self.tensors[n_layers + i][m, 0, : w[i + 1]]  # contiguous: drawn in place, in the same order
            bias.uniform_(-bound, bound, generator=generator)

    def views(self, flat):
        """Split a flat buffer like ``self.param`` into the per-layer weight (M, in, out) and bias views."""
        return [v.transpose(1, 2) if t else v for v, t in zip(flat_views(flat, self._stored), self.stored_t)]

    def set_member(self, m, model):
        """Copy ``model``'s weights into member ``m``'s (unpadded) slots."""
        n_layers = len(self.layers)
        for i, layer in enumerate(model.linear_layers()):
            self.tensors[i][m, : layer.in_features, : layer.out_features] = layer.weight.detach().T
            self.tensors[n_layers + i][m, 0, : layer.out_features] = layer.bias.detach()

    def get_member(self, m, flat=None, model=None):
        """Member ``m`` as an ordinary ``Autoencoder`` (weights from ``flat``, default the current ones).

        ``model``, an ``Autoencoder`` of the member's config, receives the weights instead of a new one.
        """
        tensors = self.tensors if flat is None else self.views(flat)
        if model is None:  # no default initialization drawn only to be overwritten
            model = empty_model(self.configs[m], self.param.dtype, self.param.device)
        n_layers = len(self.layers)
        with torch.no_grad():
            for i, layer in enumerate(model.linear_layers()):
                layer.weight.copy_(tensors[i][m, : layer.in_features, : layer.out_features].T)
                layer.bias.copy_(tensors[n_layers + i][m, 0, : layer.out_features])
        return model.eval()

    def forward(self, x, cache=None, masks=None, member=None):
        """Outputs (M, B, input_dim) for inputs ``x`` (M, B, input_dim); fills ``cache`` for :meth:`backward`.

        With a ``cache`` the step's buffers are reused: the output and the cached tensors stay valid until the next
        forward with a cache. ``masks`` (dropout) maps a hidden layer's index to a (M, B, width) tensor that
        multiplies its activation; pass the same to :meth:`backward`. ``member``: member ``member`` alone, ``x``
        being its (1, B, input_dim) inputs (no cache; see :meth:`apart`).
        """
        a = x
        M, B = x.shape[:2]
        layers, operands = (self.layers, self._members) if member is None else self._member_layers(member)
        for i, ((W, b, _, _, act), (kernel, _, _)) in enumerate(zip(layers, self.kernels(B))):
            n_out = W.shape[2]
            if kernel == SKINNY:  # z^T = W^T a^T + b^T, an (out, B) product
                out = None if cache is None else self._buffer(("zt", i), (M, n_out, B))
                z = torch.baddbmm(b.transpose(1, 2), W.transpose(1, 2), a.transpose(1, 2), out=out).transpose(1, 2)
            else:  # oneDNN's results are fresh: one member's need no buffer
                out = None if cache is None or (kernel == ONEDNN and M == 1) else self._buffer(("z", i), (M, B, n_out))
                fused = kernel == ONEDNN and act is _RELU  # oneDNN's relu post-op: the same numbers, one pass fewer
                z = (_kernels.linear(a, W, b, out, operands[i][0], relu=fused, rows=M > 1 and self._parts_of(a)[0])
                     if kernel == ONEDNN else torch.baddbmm(b, a, W, out=out))
                if fused:
                    act = None
            if cache is not None:  # layer input, and the pre-activation where the backward needs it
                cache += (a, z if act is not None and act[2] else None)
            a = z if act is None else act[0](z)  # relu_, tanh_, sigmoid_ work in place
            if masks is not None and i in masks:
                if cache is not None:  # the activation's backward needs its output before the mask
                    self._dropped[i] = a
                a = torch.mul(a, masks[i], out=None if cache is None else self._buffer(("drop", i), a.shape))
        return a

    def backward(self, g, cache, masks=None):
        """Write the gradients of the loss into ``self.grad``, given ``g`` = dloss/doutput of shape (M, B, d)."""
        for i in range(len(self.layers) - 1, -1, -1):
            self._weight_grad(i, g, cache[2 * i])
            if i > 0:
                g = self._input_grad(i, g, cache, masks)

    def _weight_grad(self, i, g, a_in):
        W, _, gW, gb, _ = self.layers[i]
        kernel = self.kernels(g.shape[1])[i][2]
        if kernel == SKINNY:  # gW^T = g^T a, then transposed into place
            gWt = self._buffer(("gwt", i), (g.shape[0], W.shape[2], W.shape[1]))
            gW.copy_(torch.bmm(g.transpose(1, 2), a_in, out=gWt).transpose(1, 2))
        elif kernel == BMM and self.stored_t[i]:  # a smaller batch than training's: the same product, copied
            gW.copy_(torch.bmm(a_in.transpose(1, 2), g, out=self._buffer(("gw", i), gW.shape)))
        elif kernel == BMM:
            torch.bmm(a_in.transpose(1, 2), g, out=gW)
        else:
            _kernels.weight_grad(a_in, g, gW, transposed=kernel == ONEDNN_T, members=self._members[i][2],
                                 a_parts=self._parts_of(a_in), g_parts=self._parts_of(g))
        torch.sum(g, 1, keepdim=True, out=gb)

    def _input_grad(self, i, g, cache, masks=None):
        """dloss/d(input of layer i), through layer i - 1's dropout mask and activation, from dloss/d(its output)."""
        W, a_in = self.layers[i][0], cache[2 * i]
        M, B = g.shape[:2]
        if self.kernels(B)[i][1] == ONEDNN:
            g = _kernels.input_grad(g, W, None if M == 1 else self._buffer(("g", i), (M, B, W.shape[1])),
                                    self._members[i][1], rows=M > 1 and self._parts_of(g)[0])
        else:
            g = torch.bmm(g, W.transpose(1, 2), out=self._buffer(("g", i), (M, B, W.shape[1])))
        if masks is not None and i - 1 in masks:
            g.mul_(masks[i - 1])
            a_in = self._dropped[i - 1]
        act = self.layers[i - 1][4]
        return g if act is None else act[1](g, cache[2 * i - 1], a_in)

    def clipped_backward(self, g, cache, clip, denominator=1.0):
        """DP-SGD: the sum over samples of each sample's gradient clipped to L2 norm ``clip``, into ``self.grad``.

        ``g`` (M, B, d) holds every sample's own dloss_b/doutput (rows of padding zero). A linear layer's per-sample
        weight gradient is the outer product g_b a_b^T, of squared norm |g_b|^2 |a_b|^2, and its bias gradient
        g_b: the per-sample norms over all layers cost one reduction per layer, and the clipped sum is the usual
        product with each g_b scaled by min(1, clip / norm_b) (and divided by ``denominator``, DP-SGD's expected
        batch size). ``clip`` is a float or a (M, 1) tensor. Returns the per-sample norms before clipping, (M, B).
        """
        n_layers, live = len(self.layers), self.live_units()
        grads = [None] * n_layers  # each in its own buffer (keyed by layer)
        sq = torch.zeros(g.shape[:2], dtype=g.dtype, device=g.device)
        for i in range(n_layers - 1, -1, -1):
            grads[i] = g
            a_in = cache[2 * i] if live is None else cache[2 * i] * live[i]
            sq.addcmul_(torch.linalg.vector_norm(a_in, dim=2).square_().add_(1),
                        torch.linalg.vector_norm(g, dim=2).square_())
            if i > 0:
                g = self._input_grad(i, g, cache)
        norms = sq.sqrt_()
        factor = torch.clamp(clip / norms, max=1.0).div_(denominator).unsqueeze(2)
        for i in range(n_layers):
            self._weight_grad(i, grads[i].mul_(factor), cache[2 * i])
        return norms

    def live_units(self):
        """Per layer, (M, 1, width) with 1 on each member's own input units: padded sigmoid units output 1/2."""
        if self._live is None and self.needs_pad_mask:
            self._live = []
            for i, width in enumerate(self.widths[:-1]):
                live = torch.zeros(self.M, 1, width, dtype=self.param.dtype, device=self.param.device)
                for m, c in enumerate(self.configs):
                    live[m, :, : _widths(c)[i]] = 1
                self._live.append(live)
        return self._live

    def member_views(self, m, views=None):
        """Member ``m``'s own (unpadded) slots of ``views`` (default the weights'): each layer's (in, out) weight,
        then each bias."""
        views, w = self.tensors if views is None else views, _widths(self.configs[m])
        n_layers = len(self.layers)
        return ([views[i][m, : w[i], : w[i + 1]] for i in range(n_layers)]
                + [views[n_layers + i][m, 0, : w[i + 1]] for i in range(n_layers)])

    def _member_layers(self, m):
        """``self.layers`` and the oneDNN operands of member ``m`` alone (its weights as a stack of one), kept."""
        cached = self._alone.get(m)
        if cached is None:
            layers = [(W[m : m + 1], b[m : m + 1], None, None, act) for W, b, _, _, act in self.layers]
            operands = None if self._members is None else [(([Wt[m]], [bias[m]]), [Ws[m]], None)
                                                           for (Wt, bias), Ws, _ in self._members]
            cached = self._alone[m] = layers, operands
        return cached

    @property
    def apart(self):
        """Whether passes without a cache run member by member: oneDNN's products come back as fresh tensors, and
        stacking several members' would copy every layer's output (measured: 6% of a width-1024 group's time,
        mostly in the curves' passes over the training split)."""
        return self.onednn and self.M > 1

    @torch.no_grad()
    def predict(self, x, out):
        """Outputs of inputs ``x`` (M, B, input_dim) without a cache, into ``out`` (same shape)."""
        if not self.apart:
            out.copy_(self.forward(x))
            return out
        for m in range(self.M):
            out[m : m + 1] = self.forward(x[m : m + 1], member=m)
        return out

    @torch.no_grad()
    def mean_loss(self, X):
        """Per-member mean squared error, shape (M,), of inputs ``X`` of shape (M, n, d) (may be expanded)."""
        M, n, d = X.shape
        chunk = max(1, 2**22 // (M * max(self.widths)))
        total = torch.zeros(M, dtype=self.param.dtype)
        for s in range(0, n, chunk):
            xb = X[:, s : s + chunk]
            if self.apart:  # member by member, as the same reduction of one row
                for m in range(M):
                    total[m : m + 1] += self.forward(xb[m : m + 1], member=m).sub_(xb[m : m + 1]).view(1, -1
                                                                                                  ).square_().sum(1)
            else:
                total += self.forward(xb).sub_(xb).view(M, -1).square_().sum(1)
        return total / (n * d)


class _FusedAdam:
    """``torch.optim.Adam(fused=True)`` on one flat tensor, minus the Python bookkeeping of ``Optimizer.step``.

    Calls the same kernel with the same state layout (float32 step counter), so the arithmetic is identical;
    ``tests/test_batched.py`` checks it bit for bit against ``torch.optim.Adam``.
    """

    def __init__(self, param, grad, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.param, self.grad = param, grad
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.state_steps = [torch.zeros((), dtype=torch.float32)]
        self.kernel = _FUSED_ADAM
        if self.kernel is None:  # a torch without the private op: fall back to the public optimizer
            self.param.requires_grad_(True)
            self.param.grad = grad
            self.optimizer = torch.optim.Adam([param], lr=lr, weight_decay=weight_decay, betas=betas, eps=eps,
                                              fused=True)
            self.optimizer.state[param] = {"step": self.state_steps[0], "exp_avg": self.exp_avg,
                                           "exp_avg_sq": self.exp_avg_sq}

    def step(self, weight_decay=None):
        weight_decay = self.weight_decay if weight_decay is None else weight_decay
        if self.kernel is None:
            self.optimizer.param_groups[0]["weight_decay"] = weight_decay
            with torch.no_grad():
                self.optimizer.step()
            return
        self.state_steps[0].add_(1)
        self.kernel([self.param], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], self.state_steps,
                    amsgrad=False, lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], weight_decay=weight_decay,
                    eps=self.eps, maximize=False, grad_scale=None, found_inf=None)
