"""Which members of a sweep train together in ``autoenc.batched``: compatibility, padding cost and cache budget.

A group shares everything but seeds, widths and per-member remedies (kind, input shape, kernel size, stride,
``input_dim``, depth, activation, ``linear`` and every training setting but ``seed``, ``weight_decay``,
``dropout``, ``input_noise``, ``dp_clip`` and ``dp_noise``, device included; DP-SGD or not is shared); :func:`plan_groups` cuts a grid
into groups whose zero padding and working set stay affordable.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import _kernels
from .config import ModelConfig, TrainConfig
from ._conv_batched import conv_macs, conv_padded_macs, conv_state_bytes
from ._stacked import _padded_widths, _widths

__all__ = ["CACHE_BYTES", "MAX_MEMBERS", "MAX_PADDING", "can_group", "conv_batching_pays", "forward_macs",
           "plan_groups", "training_flops"]

# Measured on the default grid's groups (digits, batch 64, one AVX-512 core; per model-sample against groups of 8):
# width 16, 15 members 1.22x; width 64, 15 members 1.05x; wider groups are held back by CACHE_BYTES instead
# (width 256: 4 members 69.6 GFLOP/s, 8 66.6, 15 55.9; width 1024: 2 members 75.2, 8 61.0).
MAX_MEMBERS = 16
MAX_PADDING = 2.0  # a member may cost at most twice its own arithmetic once padded to the group's widths
CACHE_BYTES = 10 * 2**20  # working-set budget of one group (measured: see plan_groups)
# what members of a group share; they may differ in seed and in weight_decay, dropout, input_noise, dp_clip and
# dp_noise (per-member remedies), but DP-SGD itself (Poisson batches) is shared: see _key
_TRAIN_FIELDS = ("epochs", "batch_size", "lr", "patience", "restore_best", "threads", "device")
_CONV_FIELDS = ("input_shape", "kernel_size", "stride")  # what convolutional members share besides the MLP's


def _matmul_size(widths):
    """Sum of in * out over the linear layers: a step costs 6 times this many FLOPs per sample."""
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def _working_set_bytes(widths, batch_size, itemsize=4):
    """Bytes one member touches per step: weights, gradients, two Adam moments, and the cached activations."""
    n_params = _matmul_size(widths) + sum(widths[1:])
    return itemsize * (4 * n_params + 3 * batch_size * sum(widths))


def _key(config, train_config):
    """What members of one group must share (seeds and bottleneck/hidden widths may differ)."""
    return (config.kind, *(getattr(config, f) for f in _CONV_FIELDS), config.input_dim, config.depth, config.linear,
            None if config.linear else config.activation, *(getattr(train_config, f) for f in _TRAIN_FIELDS),
            train_config.dp)


def _size(config):
    """One member's matrix-multiply work per sample, the unit of the padding rule."""
    return conv_macs(config) if config.kind == "conv" else _matmul_size(_widths(config))


def forward_macs(config):
    """Multiply-adds of one forward pass of one sample through ``config``'s weight layers (biases not counted).

    An MLP layer counts ``in * out``; a convolution counts its im2col product, ``positions_out * kernel_size**dims
    * c_in * c_out``, and a transposed convolution the same as the convolution it mirrors.

    Examples
    --------
    >>> forward_macs(ModelConfig(64, 2, (16,)))  # 64*16 + 16*2 + 2*16 + 16*64
    2112
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    return _size(config)


def training_flops(model_config, n_samples, epochs):
    """FLOPs of training one model: 6 per forward multiply-add (forward 2, backward 4), per sample, per epoch.

    Counts the matrix products only (an MLP's ``in * out`` per layer, a convolution's im2col product); biases,
    activations, the loss and the optimizer are left out, as are validation passes. Use it to express a measured
    training time as a fraction of the machine's matrix-multiply peak.

    Parameters
    ----------
    model_config : ModelConfig
    n_samples : int
        Training samples seen per epoch.
    epochs : int
        Epochs trained (``History.epochs`` where training stopped early).

    Returns
    -------
    int

    Examples
    --------
    >>> training_flops(ModelConfig(64, 2, (16,)), n_samples=1000, epochs=10)  # 6 * 2112 * 1000 * 10
    126720000
    """
    for name, value in (("n_samples", n_samples), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return 6 * forward_macs(model_config) * n_samples * epochs


# Whether a group of convolutional members should train batched (an im2col product per layer over the members) or
# one by one on PyTorch's native convolution kernels. Batching saves per-operator overhead, which dominates small
# models; large ones are bound by arithmetic, where the native kernels of an AVX-512 CPU beat the im2col product.
# A deterministic function of the CPU's kernel level and the shapes, never of a timing: a batched member is not bit
# for bit its solo self (float rounding), so a timed choice would make the numbers depend on the machine's load.
# Measured (one thread, 8 members, 1024 rows, batch 128 on 28 x 28 / 64 on the others; batched time over the
# one-by-one time, range over 3 repeats) on an AMD EPYC with AVX512 kernels: (1, 8, 8) channels (16, 32), 43.5k
# MACs: 0.32-0.39; (1, 28, 28) (8, 16), 166k: 0.89-0.96; (3, 16, 16) (16, 32), 219k: 0.85-0.98; (1, 28, 28)
# (16, 32), 558k: 1.10-1.16. On an AVX2 machine batched members ran 1.44x the per-model loop at 558k.
# Remeasured on (1, 28, 28) with `bench_conv.py --quick --repeats 3 --width W` (8 members, 1024 rows, batch 128; each
# path over the tutorial loop, best [range]): (12, 24), 334k: batched 1.12x [1.12-1.19], one by one 1.04x
# [1.04-1.12]; (13, 26), 385k: batched 1.10x [1.07-1.10]; (14, 28), 439k: batched 0.98x [0.98-1.08], one by one
# 1.07x [1.06-1.19]; (16, 32), 558k: batched 1.00x [0.98-1.01], one by one 1.09x [1.07-1.12]. The crossover lies
# between 334k and 439k: 400k. All of this with MKL's AVX2 kernels under the im2col products: with its AVX-512 ones
# (Intel CPUs, or AMD ones told they are Intel's: ``autoenc._mkl``) batched members ran 1.51x the loop at (16, 32),
# 558k, 1.32-1.36x at (32, 64) and 1.25-1.38x at (64, 128) (`bench_conv.py --quick --repeats 2 --width W`), where
# one by one ran 0.97-1.07x: there every size trains batched.
_CONV_SOLO_MACS = {"AVX512": 400_000}  # kernel level -> forward MACs per member from which one by one is faster


def _cpu_capability():
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return get() if get else "DEFAULT"


def conv_batching_pays(configs, train_config=None):
    """Whether convolutional ``configs`` train faster batched than one by one on this CPU (always True for MLPs).

    A rule of the CPU's kernel level (``torch.backends.cpu.get_cpu_capability()``), MKL's (always batched on its
    AVX-512 kernels) and the members' padded multiply-adds, measured once (see ``_CONV_SOLO_MACS``); where ``train_config.device`` is not ``"cpu"``,
    batching always pays (an accelerator wants every member in one launch).
    """
    configs = [configs] if isinstance(configs, ModelConfig) else list(configs)
    if configs[0].kind != "conv":
        return True
    if train_config is not None and train_config.device != "cpu":
        return True
    limit = None if _kernels.mkl_avx512() else _CONV_SOLO_MACS.get(_cpu_capability())
    return limit is None or _padded_size(configs) < limit


def _padded_size(configs):
    return conv_padded_macs(configs) if configs[0].kind == "conv" else _matmul_size(_padded_widths(configs))


def _member_bytes(configs, batch_size):
    """Working set of one padded member (convolutions: its weights and optimizer state; see conv_state_bytes)."""
    if configs[0].kind == "conv":
        return conv_state_bytes(configs)
    return _working_set_bytes(_padded_widths(configs), batch_size)


def _as_lists(configs, train_configs):
    if isinstance(configs, ModelConfig) or not isinstance(configs, Sequence) or len(configs) == 0:
        raise ValueError(f"configs must be a non-empty sequence of ModelConfig, got {configs!r}")
    for i, c in enumerate(configs):
        if not isinstance(c, ModelConfig):
            raise TypeError(f"configs[{i}] must be a ModelConfig, got {type(c).__name__}")
    train_configs = TrainConfig() if train_configs is None else train_configs
    if isinstance(train_configs, TrainConfig):
        train_configs = [train_configs] * len(configs)
    train_configs = list(train_configs)
    if len(train_configs) != len(configs):
        raise ValueError(f"got {len(train_configs)} train_configs for {len(configs)} configs; pass one TrainConfig "
                         "or one per config")
    for i, t in enumerate(train_configs):
        if not isinstance(t, TrainConfig):
            raise TypeError(f"train_configs[{i}] must be a TrainConfig, got {type(t).__name__}")
    return list(configs), train_configs


def _padding_ok(configs, max_padding):
    padded = _padded_size(configs)
    return all(padded <= max_padding * _size(c) for c in configs)


def can_group(configs, train_configs=None, *, max_padding=MAX_PADDING):
    """Whether ``configs`` can train as one group, and should.

    They can when they share ``kind``, ``input_dim``, depth, activation, ``linear``, and (convolutional members)
    ``input_shape``, ``kernel_size`` and ``stride``, and every training setting but ``seed`` and the per-member
    remedies ``weight_decay``, ``dropout``, ``input_noise``, ``dp_clip``, ``dp_noise`` (``device`` included; whether
    DP-SGD is on is shared);
    they should when padding each member to the group's widths costs at most ``max_padding`` times its own
    matrix-multiply work (for convolutions, its multiply-accumulates).

    Parameters
    ----------
    configs : sequence of ModelConfig
    train_configs : TrainConfig or sequence of TrainConfig, optional
        One for all members or one per member; default ``TrainConfig()``.
    max_padding : float, default 2.0

    Returns
    -------
    bool

    Examples
    --------
    >>> can_group([ModelConfig(64, 2, (64,)), ModelConfig(64, 32, (64,))])
    True
    >>> can_group([ModelConfig(64, 2, (16,)), ModelConfig(64, 2, (1024,))])
    False
    """
    configs, train_configs = _as_lists(configs, train_configs)
    keys = {_key(c, t) for c, t in zip(configs, train_configs)}
    return len(keys) == 1 and _padding_ok(configs, max_padding)


def plan_groups(configs, train_configs=None, max_members=MAX_MEMBERS, *, max_padding=MAX_PADDING,
                cache_bytes=CACHE_BYTES):
    """Partition member indices into groups for :func:`fit_group`.

    Compatible members are sorted by size and cut into runs whose padding waste is acceptable; each run is split
    into near-equal groups of at most ``max_members`` whose working set (weights, gradients, Adam moments and
    activations, float32) fits ``cache_bytes``. Groups of one mean "train this model alone": so are convolutional
    members where one by one is faster on this CPU (:func:`conv_batching_pays`; ``fit_group`` then runs a lone
    member on PyTorch's native kernels).

    Parameters
    ----------
    configs : sequence of ModelConfig
    train_configs : TrainConfig or sequence of TrainConfig, optional
    max_members : int, default 16
    max_padding : float, default 2.0
    cache_bytes : int, default 10 MiB
        Measured on one core with 512 KiB L2 and a shared 32 MiB L3: groups whose working set passes ~10 MiB
        run slower per model (digits, width 256: 4 members 49 GFLOP/s, 8 members 45; 784 features, width 64:
        2 members 52, 8 members 39), and compute-bound models run fastest alone.

    Returns
    -------
    list of list of int
        Every index exactly once, each group in increasing size order; groups ordered by first appearance.

    Examples
    --------
    >>> grid = [ModelConfig(64, k, (h,)) for h in (16, 256) for k in (2, 4, 8)]
    >>> plan_groups(grid)
    [[0, 1, 2], [3, 4, 5]]
    >>> plan_groups([ModelConfig(784, 16, (1024,))] * 2)  # 30 MB each: too big to share the cache
    [[0], [1]]
    """
    configs, train_configs = _as_lists(configs, train_configs)
    if max_members < 1:
        raise ValueError(f"max_members must be >= 1, got {max_members}")
    buckets = {}
    for i, (c, t) in enumerate(zip(configs, train_configs)):
        buckets.setdefault(_key(c, t), []).append(i)
    groups = []
    for idx in buckets.values():
        idx.sort(key=lambda i: (_size(configs[i]), _widths(configs[i]), train_configs[i].seed, i))
        runs, run = [], [idx[0]]
        for i in idx[1:]:
            if _padding_ok([configs[j] for j in (*run, i)], max_padding):
                run.append(i)
            else:
                runs.append(run)
                run = [i]
        runs.append(run)
        for run in runs:
            members = [configs[i] for i in run]
            per_member = _member_bytes(members, train_configs[run[0]].batch_size)
            cap = max(1, min(max_members, cache_bytes // per_member))
            if not conv_batching_pays(members, train_configs[run[0]]):
                cap = 1
            n_groups = -(-len(run) // cap)
            size, extra = divmod(len(run), n_groups)
            start = 0
            for g in range(n_groups):
                stop = start + size + (g < extra)
                groups.append(run[start:stop])
                start = stop
    return sorted(groups, key=min)
