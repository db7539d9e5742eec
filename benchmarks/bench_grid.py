"""The default study's grid as the batched trainer runs it: time per group width and percent of the matrix-multiply peak.

The grid (bottlenecks 2-32 x widths 16-1024 x seeds 0-2, 60 models) trains on digits-sized data (1078 x 64, batch
64, Adam) in the groups ``plan_groups`` picks, one ``fit_group`` call per group with validation data, one thread, as
a study's worker runs each task. With ``--sizes`` the models of each width are also cut into groups of the given
sizes, to show which group width trains fastest per model-sample. FLOPs are ``autoenc.training_flops`` (6 per
multiply-add, matrix products only); the peak is one core's float32 ``torch.mm`` on two 1024 x 1024 matrices,
measured between the repeats. CPU time of this process, best of the repeats, range in brackets; the output names the
machine.

    python benchmarks/bench_grid.py                     # the planned groups, 10 epochs, 3 repeats
    python benchmarks/bench_grid.py --sizes 1,2,4,8,15  # and every width cut into groups of these sizes
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load their thread pools

import autoenc  # noqa: F401  (before torch, as in a study: MKL's kernels are chosen when torch loads)
import numpy as np
import torch
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from autoenc import ModelConfig, TrainConfig, training_flops
from autoenc.batched import fit_group
from autoenc.planning import plan_groups

from _machine import machine_line, matmul_peak, span

WIDTHS, BOTTLENECKS, SEEDS, N_TRAIN, N_VAL, BATCH = (16, 64, 256, 1024), (2, 4, 8, 16, 32), (0, 1, 2), 1078, 359, 64


def seconds(groups, configs, train_configs, X, X_val):
    """CPU seconds per width of training ``groups`` one ``fit_group`` call each."""
    out = dict.fromkeys(WIDTHS, 0.0)
    for g in groups:
        start = time.process_time()
        fit_group([configs[i] for i in g], X, X_val, [train_configs[i] for i in g], progress=False)
        out[configs[g[0]].hidden[0]] += time.process_time() - start
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="", help="comma-separated group sizes to compare with the plan")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    threadpool_limits(1)
    X = (load_digits().data / 16).astype(np.float32)
    X = X[np.random.default_rng(0).permutation(len(X))]
    X_train = X[:N_TRAIN] + np.random.default_rng(1).normal(0, 0.2, (N_TRAIN, X.shape[1])).astype(np.float32)
    X_val = X[N_TRAIN : N_TRAIN + N_VAL]
    grid = [(ModelConfig(64, k, (h,)), TrainConfig(epochs=args.epochs, batch_size=BATCH, seed=s))
            for k in BOTTLENECKS for h in WIDTHS for s in SEEDS]
    configs, train_configs = map(list, zip(*grid))
    flops = {h: sum(training_flops(c, N_TRAIN, args.epochs) for c in configs if c.hidden == (h,)) for h in WIDTHS}
    plans = {"planned": plan_groups(configs, train_configs)}
    for size in (int(s) for s in args.sizes.split(",") if s):
        plans[f"groups of {size}"] = [idx[s : s + size] for h in WIDTHS
                                      for idx in [[i for i, c in enumerate(configs) if c.hidden == (h,)]]
                                      for s in range(0, len(idx), size)]
    print(machine_line())
    print(f"torch {torch.__version__}, one thread; the default grid ({len(configs)} models), {args.epochs} epochs, "
          f"{sum(flops.values()) / 1e9:.0f} GFLOP; CPU time, best of {args.repeats} [range]")
    planned = plans["planned"]
    print("planned groups (width: sizes):", {h: sorted(len(g) for g in planned if configs[g[0]].hidden == (h,))
                                             for h in WIDTHS})
    fit_group(configs[:2], X_train[:128], train_configs=train_configs[:2], progress=False)  # warm-up
    runs, peaks = {name: [] for name in plans}, []
    for _ in range(args.repeats):  # interleaved, so that a busy machine slows every plan alike
        peaks.append(matmul_peak(1024))
        for name, groups in plans.items():
            runs[name].append(seconds(groups, configs, train_configs, X_train, X_val))
    top = max(peaks)
    print(f"peak {top / 1e9:.1f} GFLOP/s (one core)")
    print(f"{'plan':<14}" + "".join(f"{'width ' + str(h):>22}" for h in WIDTHS) + f"{'grid':>22}")
    for name, repeats in runs.items():
        cells = []
        for h in (*WIDTHS, None):
            secs = [sum(r.values()) if h is None else r[h] for r in repeats]
            work = sum(flops.values()) if h is None else flops[h]
            cells.append(f"{min(secs):.2f}s {100 * work / min(secs) / top:.0f}% [{span(secs)}]")
        print(f"{name:<14}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
