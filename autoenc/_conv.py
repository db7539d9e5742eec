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
    ``zero=True`` is zeroed when first made, and callers never write its padding (a patch matrix's entries that
    read the zero border), which so stays 0.
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


def _phases(k, s, p, n_small, n_big):
    """One axis of a stride-``s`` convolution split by output phase (sub-pixel decomposition).

    Big-grid position ``h = s * t + r`` (phase ``r``) meets small-grid position ``o`` through kernel offset
    ``i = h + p - s * o``, so each offset lands on a single phase at a fixed shift. Per phase: (the phase's slice
    of the big axis, its length, and its terms (offset, slice of the phase, slice of the small axis)), widest term
    first, so that a term covering the whole phase can be written with a copy.
    """
    phases = []
    for r in range(s):
        n_r, terms = len(range(r, n_big, s)), []
        for i in (i for i in range(k) if (i - p) % s == r):
            d = (i - p - r) // s
            lo, hi = max(0, d), min(n_r, d + n_small)
            if lo < hi:
                terms.append((i, slice(lo, hi), slice(lo - d, hi - d)))
        terms.sort(key=lambda term: term[1].start - term[1].stop)
        phases.append((slice(r, None, s), n_r, terms))
    return phases


class _Geometry:
    """Kernel, stride and padding of one stage on a (height, width) grid (a 1-D input: height 1).

    Activations are channels-last matrices (M, B * H * W, C): a patch is kh * kw runs of C contiguous values.
    Patches and their adjoint are moved one output phase and kernel offset at a time, each a rectangle copied
    straight between the unpadded grid and the patch matrix: PyTorch's strided copies cost per run of contiguous
    values, so this beats a padded copy, one 7-D window copy, a zeroed sum and a crop (measured 1.8x on col2im).
    With one channel the patch matrix is kept as planes, (M, kh * kw, B * Ho * Wo) seen transposed, so that every
    copy writes contiguous rows instead of single values (2.4x on im2col); ``torch.bmm`` reads either layout.
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
        self.phases = [_phases(*a) for a in zip(self.k, self.s, self.p, size_out, size_in)]
        self._plans = {}

    def planar(self, channels):
        """Whether patch matrices of ``channels`` channels are kept as planes (see the class docstring)."""
        return channels == 1 and not self.identity

    def patches(self, work, name, M, B, C):
        """A patch matrix (M, B * Ho * Wo, kh * kw * C) from ``work``, laid out as :meth:`planar` says."""
        n = B * math.prod(self.size_out)
        if self.planar(C):
            return work((self.name, name), (M, self.kk, n), zero=True).transpose(1, 2)
        return work((self.name, name), (M, n, self.kk * C), zero=True)

    def _parts(self, cols, B, C):
        """(M, B, Ho, Wo, kh, kw, C) view of a patch matrix in either layout."""
        (ho, wo), (kh, kw) = self.size_out, self.k
        sm, sn, sk = cols.stride()
        shape = (cols.shape[0], B, ho, wo, kh, kw, C)
        return cols.as_strided(shape, (sm, sn * ho * wo, sn * wo, sn, sk * kw * C, sk * C, sk))

    def _plan(self, grid, cols):
        """How ``grid`` (M, B, H, W, C) and the patch matrix ``cols`` meet, one output phase at a time.

        Per phase: its region of ``grid``, whether its first term covers all of it, and its terms as pairs of
        regions (of ``grid``, of ``cols``). A region is ``as_strided``'s arguments, the offset relative to the
        tensor's own: slicing the views anew costs about 130 us a call, as much as moving a small batch.
        """
        key = (grid.shape, grid.stride(), cols.shape, cols.stride())
        plan = self._plans.get(key)
        if plan is None:
            parts = self._parts(cols, grid.shape[1], grid.shape[-1])
            plan = []
            for rows, n_r, row_terms in self.phases[0]:
                for columns, n_c, col_terms in self.phases[1]:
                    phase = grid[:, :, rows, columns]
                    terms = [((dt, du), _region_of(phase[:, :, dt, du], grid),
                              _region_of(parts[:, :, do, dv, i, j], cols))
                             for i, dt, do in row_terms for j, du, dv in col_terms]
                    full = bool(terms) and terms[0][0] == (slice(0, n_r), slice(0, n_c))
                    plan.append((_region_of(phase, grid), full, [term[1:] for term in terms]))
            self._plans[key] = plan
        return plan

    def im2col(self, x, work, tag):
        """(M, B * H * W, C) -> (M, B * Ho * Wo, kh * kw * C): the patch each output position reads.

        Patches that fall on the zero padding are never written: the buffer is zeroed once, when made.
        """
        if self.identity:
            return x
        M, _, C = x.shape
        x = x.reshape(M, -1, *self.size_in, C)
        cols = self.patches(work, (tag, "cols"), M, x.shape[1], C)
        for _, _, terms in self._plan(x, cols):
            for to, frm in terms:
                _region(cols, frm).copy_(_region(x, to))
        return cols

    def col2im(self, cols, work, tag):
        """(M, B * Ho * Wo, kh * kw * C) -> (M, B * H * W, C): the adjoint of :meth:`im2col` (overlaps summed).

        ``cols`` may be in either layout of :meth:`patches`.
        """
        if self.identity:
            return cols
        M, n, KC = cols.shape
        C, B = KC // self.kk, n // math.prod(self.size_out)
        out = work((self.name, tag, "sum"), (M, B, *self.size_in, C))
        for phase, full, terms in self._plan(out, cols):
            if not full:  # some of the phase gets no patch value (a stride above the kernel, or an edge)
                _region(out, phase).zero_()
            for n_term, (to, frm) in enumerate(terms):
                dst, src = _region(out, to), _region(cols, frm)
                if full and n_term == 0:
                    dst.copy_(src)
                else:
                    dst.add_(src)
        return out.view(M, -1, C)


def _region_of(view, base):
    """The region (shape, strides, offset from ``base``'s) that ``view`` of ``base`` covers."""
    return view.shape, view.stride(), view.storage_offset() - base.storage_offset()


def _region(tensor, region):
    """The view of ``tensor`` that a plan's region names (see ``_Geometry._plan``)."""
    shape, stride, offset = region
    return tensor.as_strided(shape, stride, tensor.storage_offset() + offset)
