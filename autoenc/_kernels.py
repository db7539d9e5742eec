"""Which kernel runs each matrix product of a stacked layer, and the oneDNN products, member by member.

torch's float32 ``bmm`` goes to MKL, which runs its AVX-512 kernels on Intel CPUs only: on others with AVX-512 (AMD
Zen 4 and 5) it takes its AVX2 ones, about 100 GFLOP/s on one Zen 5 core, where oneDNN's AVX-512 kernels (torch's
``mkldnn._linear_pointwise``: X @ W^T + b on ordinary dense float32 tensors) reach 130-240 GFLOP/s on wide layers.
Where ``autoenc._mkl`` told MKL the CPU is Intel's (the default on AMD CPUs, when autoenc is imported before torch),
MKL's own AVX-512 kernels run every product in one batched call, and none of this is used.
oneDNN has no batched call and no ``out=`` there: its products run member by member (about 11 us of overhead a call,
measured) into fresh tensors. One member's are the step's tensors as they are; several members' are stacked into the
step's buffers, a plain copy (a few us for 2 x 64 x 1024 values; training the members one at a time instead, to skip
it, measured no faster for 2 members of width 1024 and 12% slower for 8 of width 256); passes without a cache
(validation, curves, reconstructions) go member by member instead, where stacking would copy every layer's output
for nothing; weight gradients are copied into the flat gradient buffer. All this pays only for large enough products (:func:`layer_kernels`). The choice is
a fixed rule of the machine and the shapes, never a timing taken at run time: the same machine always computes the
same numbers. ``AUTOENC_ONEDNN=0`` or ``1`` overrides the rule.
"""
from __future__ import annotations

import os

import torch

from . import _mkl
from ._mkl import cpu_vendor

BMM, SKINNY, ONEDNN, ONEDNN_T = "bmm", "skinny", "onednn", "onednn_t"

try:  # the dense oneDNN linear behind torch.compile's CPU fusions; absent from builds without oneDNN
    _LINEAR = torch.ops.mkldnn._linear_pointwise.default
except (AttributeError, RuntimeError):
    _LINEAR = None

# Per member and product, the batch * in * out multiply-adds from which oneDNN is faster than bmm, measured on one
# Zen 5 core (EPYC, AVX-512, torch 2.13, MKL 2024.2, oneDNN 3.12) for 1 and 2 members with the copies above, batches
# 32-256, widths 4-1024, repeated and interleaved. Forward and input gradient: 0.5-0.95x bmm's speed at 2^20,
# 0.9-1.3x at 2^21 (64 x 1024 x 32: 1.1-1.3x), 1.2-1.6x from 2^22 (64 x 64 x 1024: 1.4-1.6x), 2x from 2^23. The
# weight gradient a^T g makes oneDNN copy the transposed activations first: 0.9-1.1x at 2^21, 1.2-1.5x from 2^22.
# With many more inputs than outputs (in >= 16 out) it runs as (g^T a)^T, copying only the narrow g before and the
# result after (a plain copy where the stack keeps the layer's weights (out, in), as it does for these layers; it
# was a transposed copy, 28 us for 1024 x 64): 1.1-1.3x from 2^21 (64 x 1024 x 32), below 2^21 0.6-1.2x. The narrow
# layers of ``skinny`` keep their transposed bmm (2-20x faster than plain bmm).
_FORWARD_MACS = 2**21
_WEIGHT_MACS = 2**22
_NARROW_WEIGHT_MACS, _NARROW_RATIO = 2**21, 16


def skinny(n_in, n_out):
    """Whether a layer's products run faster transposed: (out, batch) rather than (batch, out).

    Measured with batch 64 on one AVX-512 core, 1-8 members, with MKL's AVX2 kernels: the forward product 2-3x faster
    and the weight gradient 6-20x for 2-8 outputs from 256 or 1024 inputs; no gain from 16 outputs on, nor from 64
    inputs. With MKL's AVX-512 kernels (:func:`mkl_avx512`) only the weight gradient gains (1.5-5x from 256 inputs),
    and the transposed forward product is 2-7x slower: there :func:`layer_kernels` keeps the forward plain.
    """
    return n_out <= 8 and n_in >= 128


def layer_kernels(n_in, n_out, batch, narrow, onednn, mkl_avx512=False):
    """The kernels of a layer's (forward, input gradient, weight gradient) products for ``batch`` samples a member.

    ``BMM`` (one batched call), ``SKINNY`` (transposed, where ``narrow``, see :func:`skinny`; the forward product
    only without ``mkl_avx512``), ``ONEDNN`` (member by member) or, for the weight gradient, ``ONEDNN_T`` (its
    transpose, member by member). oneDNN only where ``onednn`` (see :func:`use_onednn`) and the product is large
    enough (the thresholds above).
    """
    macs = batch * n_in * n_out
    wide = onednn and macs >= _FORWARD_MACS
    if narrow:
        return BMM if mkl_avx512 else SKINNY, ONEDNN if wide else BMM, SKINNY
    if not onednn:
        weight = BMM
    elif n_in >= _NARROW_RATIO * n_out:
        weight = ONEDNN_T if macs >= _NARROW_WEIGHT_MACS else BMM
    else:
        weight = ONEDNN if macs >= _WEIGHT_MACS else BMM
    return ONEDNN if wide else BMM, ONEDNN if wide else BMM, weight


def mkl_avx512():
    """Whether torch's float32 products run MKL's AVX-512 kernels: on Intel CPUs with AVX-512, and on AMD ones that
    MKL was told are Intel's (``autoenc._mkl``), unless ``MKL_ENABLE_INSTRUCTIONS`` caps MKL below AVX-512."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")()
    capped = (os.environ.get("MKL_ENABLE_INSTRUCTIONS") or "AVX512").upper()
    return (torch.backends.mkl.is_available() and capability.startswith("AVX512") and capped.startswith("AVX512")
            and (_mkl.ACTIVE or cpu_vendor() == "GenuineIntel"))


def onednn_rule(vendor, capability, mkl, onednn, dtype, device_type, mkl_intel=False):
    """Whether oneDNN beats torch's BLAS on wide products, from facts about the machine (a pure function).

    Yes only for float32 on the CPU, where torch has oneDNN (``onednn``) and its BLAS is MKL (``mkl``), the CPU runs
    AVX-512 (``capability``, as ``torch.backends.cpu.get_cpu_capability()`` names it) and is not Intel's
    (``vendor``, /proc/cpuinfo's vendor_id; '' where unknown): MKL dispatches its AVX-512 kernels to Intel CPUs only,
    and there it is as fast as oneDNN, in one batched call. ``mkl_intel``: MKL was told the CPU is Intel's
    (``autoenc._mkl``), so it runs those kernels here too.
    """
    return (onednn and mkl and dtype == torch.float32 and device_type == "cpu" and capability.startswith("AVX512")
            and vendor not in ("", "GenuineIntel") and not mkl_intel)


def use_onednn(dtype, device):
    """Whether a stack of ``dtype`` on ``device`` runs its wide products on oneDNN (:func:`onednn_rule` here).

    The environment variable ``AUTOENC_ONEDNN`` overrides the rule: ``0`` never, ``1`` wherever oneDNN can run
    (float32 on the CPU, with a torch that has it), whatever the CPU.
    """
    forced = os.environ.get("AUTOENC_ONEDNN", "")
    if forced not in ("", "0", "1"):
        raise ValueError(f"AUTOENC_ONEDNN must be 0, 1 or unset, got {forced!r}")
    onednn = _LINEAR is not None and torch.backends.mkldnn.is_available()
    if forced:
        return forced == "1" and onednn and dtype == torch.float32 and torch.device(device).type == "cpu"
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")()
    return onednn_rule(cpu_vendor(), capability, torch.backends.mkl.is_available(), onednn, dtype,
                       torch.device(device).type, _mkl.ACTIVE and mkl_avx512())


def linear(a, W, b, out=None, members=None, relu=False, rows=None):
    """a @ W + b of every member on oneDNN: a (M, B, in), W (M, in, out), b (M, 1, out) -> (M, B, out).

    ``relu``: max(0, a @ W + b) instead, oneDNN's own post-op on the same sums (the same numbers as ``torch.relu_``
    after it, without another pass over the output).

    One member's result is returned as it is (no copy); several are stacked into ``out`` (fresh if None).
    ``members``: W and b's per-member operands as :func:`member_operands` made them (views kept from step to step:
    indexing them anew costs a few us a call); ``rows``: ``a``'s per-member views (:func:`parts`), likewise.
    """
    Wt, bias = members or member_operands(W, b)
    post = "relu" if relu else "none"
    if len(Wt) == 1:
        return _LINEAR(a[0], Wt[0], bias[0], post, [], "").unsqueeze(0)
    return torch.stack([_LINEAR(x, w, c, post, [], "") for x, w, c in zip(rows or a.unbind(0), Wt, bias)], out=out)


def parts(t):
    """``t`` (M, B, n)'s per-member views and their transposes: made once for a buffer a stack reuses every step,
    they spare each product of each step its own (about 1 us a view)."""
    rows = t.unbind(0)
    return rows, [r.T for r in rows]


def member_operands(W, b=None):
    """Per member, oneDNN's (out, in) weight view W[m]^T and bias b[m, 0] (None without ``b``)."""
    return [w.T for w in W.unbind(0)], (b[:, 0].unbind(0) if b is not None else [None] * W.shape[0])


def input_grad(g, W, out=None, members=None, rows=None):
    """g @ W^T of every member on oneDNN: g (M, B, out), W (M, in, out) -> (M, B, in); ``out`` as in linear;
    ``members``: W's per-member views ``W.unbind(0)``, kept; ``rows``: g's (:func:`parts`)."""
    Ws = members or W.unbind(0)
    if len(Ws) == 1:
        return _LINEAR(g[0], Ws[0], None, "none", [], "").unsqueeze(0)
    return torch.stack([_LINEAR(x, w, None, "none", [], "") for x, w in zip(rows or g.unbind(0), Ws)], out=out)


def weight_grad(a, g, out, transposed=False, members=None, a_parts=None, g_parts=None):
    """a^T g of every member on oneDNN into ``out`` (M, in, out), from a (M, B, in) and g (M, B, out).

    ``transposed`` computes g^T a and copies it into ``out`` (a plain copy where ``out`` is a transposed view of
    (M, out, in) memory, as ``_Stack`` keeps these layers; a transposed one otherwise): oneDNN first copies its
    transposed first operand into contiguous memory, which is then the narrow g rather than the wide a.
    ``members``: ``out.unbind(0)``, kept; ``a_parts``, ``g_parts``: a's and g's :func:`parts`, kept.
    """
    _, a_t = a_parts or parts(a)
    _, g_t = g_parts or parts(g)
    for x_t, y_t, o in zip(a_t, g_t, members or out.unbind(0)):
        if transposed:
            o.copy_(_LINEAR(y_t, x_t, None, "none", [], "").T)
        else:
            o.copy_(_LINEAR(x_t, y_t, None, "none", [], ""))
    return out
