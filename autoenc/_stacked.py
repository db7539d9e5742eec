"""The stacked model behind ``autoenc.batched``: M zero-padded MLP autoencoders as (M, in, out) views of one flat
buffer, a hand-written forward and backward (``torch.baddbmm``/``torch.bmm``, autograd's own activation kernels), and
PyTorch's fused Adam kernel over that buffer."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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

def _skinny(n_in, n_out):
    """Whether a layer's products run faster transposed: (out, batch) rather than (batch, out).

    Measured with batch 64 on one AVX-512 core, 1-8 members: the forward product 2-3x faster and the weight
    gradient 6-20x for 2-8 outputs from 256 or 1024 inputs; no gain from 16 outputs on, nor from 64 inputs.
    """
    return n_out <= 8 and n_in >= 128


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

    ``weights[l]`` has shape (M, widths[l], widths[l + 1]) (transposed relative to ``nn.Linear.weight``) and
    ``biases[l]`` (M, 1, widths[l + 1]); ``grads`` mirrors them in ``self.grad``.
    """

    def __init__(self, configs, dtype):
        M, widths = len(configs), _padded_widths(configs)
        self.M, self.widths, self.configs = M, widths, configs
        n_layers = len(widths) - 1
        self.shapes = [(M, a, b) for a, b in zip(widths[:-1], widths[1:])] + [(M, 1, b) for b in widths[1:]]
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
        # layers with a few outputs from many inputs (the code layer of a wide model) run as (out, batch) products
        self.skinny = [_skinny(a, b) and i < n_layers - 1 for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
        self._work = {}  # a training step's activations and gradients, reused from step to step (see _buffer)

    def _buffer(self, key, shape):
        """A reusable buffer for a step: allocating the activations anew each step costs as much as the product
        that fills them (measured: 131 us against 65 us for 2 x 64 x 1024 values)."""
        buf = self._work.get((key, shape))
        if buf is None:
            buf = self._work[key, shape] = torch.empty(shape, dtype=self.param.dtype, device=self.param.device)
        return buf

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
        """Split a flat buffer like ``self.param`` into the per-layer weight and bias views."""
        return flat_views(flat, self.shapes)

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

    def forward(self, x, cache=None):
        """Outputs (M, B, input_dim) for inputs ``x`` (M, B, input_dim); fills ``cache`` for :meth:`backward`.

        With a ``cache`` the step's buffers are reused: the output and the cached tensors stay valid until the next
        forward with a cache.
        """
        a = x
        M, B = x.shape[:2]
        for i, (W, b, _, _, act) in enumerate(self.layers):
            n_out = W.shape[2]
            if self.skinny[i]:  # z^T = W^T a^T + b^T, an (out, B) product
                out = None if cache is None else self._buffer(("zt", i), (M, n_out, B))
                z = torch.baddbmm(b.transpose(1, 2), W.transpose(1, 2), a.transpose(1, 2), out=out).transpose(1, 2)
            else:
                z = torch.baddbmm(b, a, W, out=None if cache is None else self._buffer(("z", i), (M, B, n_out)))
            if cache is not None:  # layer input, and the pre-activation where the backward needs it
                cache += (a, z if act is not None and act[2] else None)
            a = z if act is None else act[0](z)  # relu_, tanh_, sigmoid_ work in place
        return a

    def backward(self, g, cache):
        """Write the gradients of the loss into ``self.grad``, given ``g`` = dloss/doutput of shape (M, B, d)."""
        M, B = g.shape[:2]
        for i in range(len(self.layers) - 1, -1, -1):
            W, _, gW, gb, _ = self.layers[i]
            a_in = cache[2 * i]
            if self.skinny[i]:  # gW^T = g^T a, then transposed into place
                gWt = self._buffer(("gwt", i), (M, W.shape[2], W.shape[1]))
                gW.copy_(torch.bmm(g.transpose(1, 2), a_in, out=gWt).transpose(1, 2))
            else:
                torch.bmm(a_in.transpose(1, 2), g, out=gW)
            torch.sum(g, 1, keepdim=True, out=gb)
            if i > 0:
                g = torch.bmm(g, W.transpose(1, 2), out=self._buffer(("g", i), (M, B, W.shape[1])))
                act = self.layers[i - 1][4]
                if act is not None:
                    g = act[1](g, cache[2 * i - 1], a_in)

    @torch.no_grad()
    def mean_loss(self, X):
        """Per-member mean squared error, shape (M,), of inputs ``X`` of shape (M, n, d) (may be expanded)."""
        M, n, d = X.shape
        chunk = max(1, 2**22 // (M * max(self.widths)))
        total = torch.zeros(M, dtype=self.param.dtype)
        for s in range(0, n, chunk):
            xb = X[:, s : s + chunk]
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
