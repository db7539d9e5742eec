"""Building blocks of the convolutional autoencoder: strided convolutions down, transposed convolutions back up.

Shapes follow :func:`autoenc.config.conv_geometry`: kernel ``k``, stride ``s`` and zero padding ``(k - 1) // 2`` on
every spatial axis; each transposed convolution gets the output padding that restores its stage's input size
exactly. 2-D inputs ``(channels, height, width)`` use ``nn.Conv2d``, 1-D inputs ``(channels, length)``
``nn.Conv1d``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import conv_geometry

__all__ = ["conv_stacks", "fan_in", "output_padding"]  # and, for the batched trainer, _Geometry and _Workspace


def fan_in(weight):
    """PyTorch's fan-in of a weight: ``weight.shape[1]`` times the kernel size (what its default init uses).

    For a transposed convolution (weight ``(in, out, *kernel)``) this is ``out * kernel``, as in PyTorch.
    """
    return weight.shape[1] * math.prod(weight.shape[2:])


def output_padding(size, out, kernel_size, stride):
    """Per-axis output padding that makes a transposed convolution map ``out`` back to ``size``."""
    padding = (kernel_size - 1) // 2
    return tuple(n - ((o - 1) * stride - 2 * padding + kernel_size) for n, o in zip(size, out))


def conv_stacks(config, activation):
    """Encoder and decoder ``nn.Sequential`` of a ``kind="conv"`` config, mapping (n, d) -> (n, k) -> (n, d).

    ``activation`` is a module factory or None (linear); it follows every hidden layer, never the code or the
    output.
    """
    shape, widths = config.input_shape, (config.input_shape[0], *config.hidden)
    sizes = conv_geometry(shape, config.depth, config.kernel_size, config.stride)
    conv, conv_t = (nn.Conv2d, nn.ConvTranspose2d) if len(shape) == 3 else (nn.Conv1d, nn.ConvTranspose1d)
    k, s, p = config.kernel_size, config.stride, (config.kernel_size - 1) // 2
    act = [] if activation is None else [activation]
    flat = widths[-1] * math.prod(sizes[-1])

    encoder = [nn.Unflatten(1, shape)]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        encoder += [conv(c_in, c_out, k, s, p), *(a() for a in act)]
    encoder += [nn.Flatten(), nn.Linear(flat, config.bottleneck)]

    decoder = [nn.Linear(config.bottleneck, flat)]
    if config.depth:
        decoder += [*(a() for a in act), nn.Unflatten(1, (widths[-1], *sizes[-1]))]
    for i in range(config.depth, 0, -1):
        pad = output_padding(sizes[i - 1], sizes[i], k, s)
        decoder.append(conv_t(widths[i], widths[i - 1], k, s, p, output_padding=pad))
        if i > 1:
            decoder += [a() for a in act]
    decoder.append(nn.Flatten())
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


# --- the batched trainer's im2col and col2im (autoenc._conv_batched) ---------------------------------------------
class _Workspace:
    """Buffers reused from step to step, by name and shape.

    Fresh large tensors cost page faults on every step (the allocator hands big blocks back to the system), which
    measured here as slow as the arithmetic; reusing them keeps a step's memory warm. A buffer asked for with
    ``zero=True`` is zeroed when first made, and callers only ever write its interior (padding borders stay 0).
    """

    def __init__(self, dtype, device, reuse=True):
        self.dtype, self.device, self.reuse, self.buffers = dtype, device, reuse, {}

    def __call__(self, name, shape, zero=False):
        key = (name, tuple(shape))
        buffer = self.buffers.get(key) if self.reuse else None
        if buffer is None:
            make = torch.zeros if zero else torch.empty
            buffer = make(shape, dtype=self.dtype, device=self.device)
            if self.reuse:
                self.buffers[key] = buffer
        return buffer


class _Geometry:
    """Kernel, stride and padding of one stage on a (height, width) grid (a 1-D input: height 1).

    Activations are channels-last matrices (M, B * H * W, C): a patch is kh * kw runs of C contiguous values.
    """

    def __init__(self, config, size_in, size_out, name):
        one_d = len(config.input_shape) == 2
        k, s, p = config.kernel_size, config.stride, (config.kernel_size - 1) // 2
        self.k = (1, k) if one_d else (k, k)
        self.s = (1, s) if one_d else (s, s)
        self.p = (0, p) if one_d else (p, p)
        self.size_in, self.size_out, self.name = size_in, size_out, name
        self.kk = self.k[0] * self.k[1]
        self.identity = self.kk == 1 and self.s == (1, 1)

    def _windows(self, x):
        """(M, B, Ho, Wo, kh, kw, C) view of the padded (M, B, Hp, Wp, C) tensor ``x``."""
        M, B, _, _, C = x.shape
        st = x.stride()
        (sh, sw), (ho, wo) = self.s, self.size_out
        return x.as_strided((M, B, ho, wo, *self.k, C), (st[0], st[1], sh * st[2], sw * st[3], st[2], st[3], st[4]))

    def im2col(self, x, work, tag):
        """(M, B * H * W, C) -> (M, B * Ho * Wo, kh * kw * C): the patch each output position reads."""
        if self.identity:
            return x
        M, _, C = x.shape
        (h, w), (ph, pw) = self.size_in, self.p
        x = x.reshape(M, -1, h, w, C)
        B = x.shape[1]
        if ph or pw:
            padded = work((self.name, tag, "pad"), (M, B, h + 2 * ph, w + 2 * pw, C), zero=True)
            padded[:, :, ph : ph + h, pw : pw + w].copy_(x)
            x = padded
        cols = work((self.name, tag, "cols"), (M, B, *self.size_out, *self.k, C))
        cols.copy_(self._windows(x))
        return cols.view(M, -1, self.kk * C)

    def col2im(self, cols, work, tag):
        """(M, B * Ho * Wo, kh * kw * C) -> (M, B * H * W, C): the adjoint of :meth:`im2col` (overlaps summed)."""
        if self.identity:
            return cols
        M, n, KC = cols.shape
        C, B = KC // self.kk, n // math.prod(self.size_out)
        (ph, pw), (h, w) = self.p, self.size_in
        out = work((self.name, tag, "sum"), (M, B, h + 2 * ph, w + 2 * pw, C)).zero_()
        windows = self._windows(out)
        parts = cols.view(M, B, *self.size_out, *self.k, C)
        for i in range(self.k[0]):
            for j in range(self.k[1]):
                windows[:, :, :, :, i, j] += parts[:, :, :, :, i, j]
        if ph or pw:
            out = work((self.name, tag, "crop"), (M, B, h, w, C)).copy_(out[:, :, ph : ph + h, pw : pw + w])
        return out.view(M, -1, C)
