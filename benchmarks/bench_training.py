"""Training throughput, side by side: a plain DataLoader loop, ``fit``, the batched trainer, and scikit-learn's MLP.

For each data set (digits, 1078 x 64, the default study's training split size; a synthetic 20000 x 784 matrix) and
each hidden width (bottleneck 16), every method trains the same architecture 64 -> h -> 16 -> h -> 64 (or 784)
with batch 128 and Adam, on one thread, and we report model-samples per CPU-second (one model seeing one sample
once counts one), each ratio against the plain loop (a) and against MLPRegressor (d), and the percentage of this
machine's measured float32 matrix-multiply peak for one core, counting 6 * sum(in * out) FLOPs per model-sample
(forward 2, backward 4). Timings are CPU time of this process and include building and initializing the models.
Each measurement is repeated and the best kept (other processes disturb a shared machine); the measurements of one
case, and the peak they are compared with, are interleaved so that ratios compare like with like. On the synthetic
matrix each measurement trains on its first rows (at least 32 steps), enough for a steady rate. The output names the
machine (CPU, torch's kernel level, numpy's BLAS), gives the range of each ratio over the repeats, and ends with
the README's table.

A last row times DP-SGD's batched step (Poisson batches, per-sample clipping from the layers' inputs and output
gradients, Gaussian noise) against the plain batched step, side by side on the same members (digits, width 256,
8 members, batch 128), as CPU time per step; the target is at most 2x.

The very last rows give the batched trainer's GFLOP/s on width-1024 groups (digits, 2 members as ``plan_groups``
makes them at that width, bottleneck 16, batch 64 as in the default study and the 128 above) with the wide layers'
products on oneDNN and on torch's BLAS, side by side, and which of the two the rule of ``autoenc._kernels`` picks
on this CPU (oneDNN where MKL serves an AVX-512 CPU other than Intel's with its AVX2 kernels).

    python benchmarks/bench_training.py              # a few minutes
    python benchmarks/bench_training.py --quick      # under a minute, noisier
    python benchmarks/bench_training.py --dp-only    # only the DP-SGD row
    python benchmarks/bench_training.py --onednn-only  # only the oneDNN rows
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load their thread pools

import autoenc  # noqa: F401  (before torch, as in a study: MKL's kernels are chosen when torch loads)
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader, TensorDataset

from autoenc import Autoencoder, ModelConfig, TrainConfig, fit, training_flops
from autoenc._kernels import cpu_vendor, use_onednn
from autoenc.batched import fit_group
from autoenc.planning import plan_groups
from autoenc.train import dp_schedule

from _machine import machine_line, matmul_peak, span

BOTTLENECK, BATCH = 16, 128


def _timed(fn):
    start = time.process_time()
    fn()
    return time.process_time() - start


def plain_loop(X, h, epochs):
    """(a) The tutorial loop: DataLoader over a TensorDataset, default Adam."""
    def run():
        model = Autoencoder(ModelConfig(X.shape[1], BOTTLENECK, (h,)))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=BATCH, shuffle=True)
        for _ in range(epochs):
            for (xb,) in loader:
                loss = F.mse_loss(model(xb), xb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    return len(X) * epochs / _timed(run)


def package_fit(X, h, epochs):
    """(b) ``autoenc.fit``."""
    config = TrainConfig(epochs=epochs, batch_size=BATCH)
    return len(X) * epochs / _timed(lambda: fit(Autoencoder(ModelConfig(X.shape[1], BOTTLENECK, (h,))), X,
                                                config=config, progress=False))


def batched(X, h, epochs, members=8, planned=False):
    """(c) ``fit_group`` on ``members`` models (seeds 0..members-1); ``planned``: in the groups plan_groups picks."""
    configs = [ModelConfig(X.shape[1], BOTTLENECK, (h,))] * members
    train_configs = [TrainConfig(epochs=epochs, batch_size=BATCH, seed=s) for s in range(members)]
    groups = plan_groups(configs, train_configs) if planned else [list(range(members))]

    def run():
        for g in groups:
            fit_group([configs[i] for i in g], X, train_configs=[train_configs[i] for i in g], progress=False)

    return members * len(X) * epochs / _timed(run), max(len(g) for g in groups)


def sklearn_mlp(X, h, epochs):
    """(d) ``MLPRegressor(hidden_layer_sizes=(h, 16, h)).fit(X, X)`` with one BLAS thread."""
    mlp = MLPRegressor(hidden_layer_sizes=(h, BOTTLENECK, h), batch_size=BATCH, max_iter=epochs, tol=0.0,
                       n_iter_no_change=epochs + 1, random_state=0)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return len(X) * epochs / _timed(lambda: mlp.fit(X, X))


def dp_step_ratio(X, h, members, epochs, repeats):
    """CPU seconds per step of the DP-SGD batched step and of the plain one (same members and data), interleaved;
    returns the per-repeat (plain, dp) pairs."""
    configs = [ModelConfig(X.shape[1], BOTTLENECK, (h,))] * members
    plain = [TrainConfig(epochs=epochs, batch_size=BATCH, seed=s) for s in range(members)]
    dp = [t.replace(dp_clip=1.0, dp_noise=1.0) for t in plain]
    steps_plain = epochs * -(-len(X) // BATCH)
    steps_dp = epochs * dp_schedule(len(X), BATCH)[1]
    pairs = []
    for _ in range(repeats):
        a = _timed(lambda: fit_group(configs, X, train_configs=plain, progress=False)) / steps_plain
        b = _timed(lambda: fit_group(configs, X, train_configs=dp, progress=False)) / steps_dp
        pairs.append((a, b))
    return pairs


def print_dp_row(X, repeats, h=256, members=8, epochs=20):
    pairs = dp_step_ratio(X, h, members, epochs, repeats)
    plain, dp = min(a for a, _ in pairs), min(b for _, b in pairs)
    ratios = [b / a for a, b in pairs]
    print(f"\nDP-SGD batched step vs plain batched step (digits, width {h}, {members} members, batch {BATCH}, "
          f"noise 1.0, clip 1.0; CPU ms per step, best of {repeats}):")
    print(f"  plain {1e3 * plain:.3f} ms, DP-SGD {1e3 * dp:.3f} ms: {dp / plain:.2f}x "
          f"[{span(ratios, '{:.2f}', 'x')}]  [{'met' if dp / plain <= 2 else 'NOT met'}] target <= 2x")


@contextlib.contextmanager
def _onednn(flag):
    """``AUTOENC_ONEDNN`` set to ``flag`` ("0", "1", or None: unset, the rule) for the block, then restored."""
    previous = os.environ.pop("AUTOENC_ONEDNN", None)
    if flag is not None:
        os.environ["AUTOENC_ONEDNN"] = flag
    try:
        yield
    finally:
        os.environ.pop("AUTOENC_ONEDNN", None)
        if previous is not None:
            os.environ["AUTOENC_ONEDNN"] = previous


def onednn_rates(X, batch, repeats, h=1024, members=2, epochs=6):
    """fit_group's GFLOP per CPU-second on ``members`` width-``h`` models with the wide layers' products on torch's
    BLAS and on oneDNN (``AUTOENC_ONEDNN=0`` and ``1``), interleaved; returns the per-repeat (bmm, oneDNN) pairs."""
    configs = [ModelConfig(X.shape[1], BOTTLENECK, (h,))] * members
    train_configs = [TrainConfig(epochs=epochs, batch_size=batch, seed=s) for s in range(members)]
    flops = sum(training_flops(c, len(X), epochs) for c in configs)
    pairs = []
    for _ in range(repeats):
        rates = []
        for flag in ("0", "1"):
            with _onednn(flag):
                seconds = _timed(lambda: fit_group(configs, X, train_configs=train_configs, progress=False))
            rates.append(flops / seconds / 1e9)
        pairs.append(tuple(rates))
    return pairs


def print_onednn_rows(X, repeats, h=1024, members=2):
    with _onednn(None):  # the rule itself, whatever the environment forces
        picked = "oneDNN" if use_onednn(torch.float32, "cpu") else "bmm"
    blas = "MKL" if torch.backends.mkl.is_available() else "not MKL"
    print(f"\nfit_group on width-{h} groups (digits, {members} members, bottleneck {BOTTLENECK}): wide layers' "
          f"products on torch's BLAS (bmm) and on oneDNN, GFLOP per CPU-second, best of {repeats}:")
    for batch in (64, BATCH):
        pairs = onednn_rates(X, batch, repeats, h, members)
        off, on = max(a for a, _ in pairs), max(b for _, b in pairs)
        print(f"  batch {batch:>3}: bmm {off:.1f}, oneDNN {on:.1f} GFLOP/s: {on / off:.2f}x "
              f"[{span([b / a for a, b in pairs], '{:.2f}', 'x')}]")
    print(f"  the rule picks {picked} on this CPU (vendor {cpu_vendor() or 'unknown'}, "
          f"{torch.backends.cpu.get_cpu_capability()}, BLAS {blas})")


def _flops_per_sample(d, h):
    widths = [d, h, BOTTLENECK, h, d]
    return 6 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def run_case(X, h, model_samples, repeats, members):
    """Throughput (model-samples per CPU-second) of each method on ``X`` for width ``h``, and the peak: a list per
    method, one value per repeat."""
    # every method trains on the same rows (big data: the first rows, at least 32 steps), so each call of every
    # method runs as many steps per model; the batched trainer runs fewer epochs, or more models' worth of work
    rows = min(len(X), max(32 * BATCH, model_samples))
    Xs = Xg = X[:rows]
    epochs = max(1, round(model_samples / rows))
    group_epochs = max(1, round(epochs / members))
    every = {"peak": []}
    for _ in range(repeats):
        # measured next to the runs it is compared with: the faster of torch.mm and oneDNN (the batched trainer's
        # wide layers run on oneDNN where MKL has only AVX2 kernels for this CPU, see autoenc/_kernels.py)
        every["peak"].append(max(matmul_peak(), matmul_peak(kernel="onednn") or 0))
        runs = {
            "(a) plain DataLoader loop": lambda: plain_loop(Xs, h, epochs),
            "(b) autoenc.fit": lambda: package_fit(Xs, h, epochs),
            f"(c) fit_group, {members} members": lambda: batched(Xg, h, group_epochs, members)[0],
            "(c') fit_group, planned groups": lambda: batched(Xg, h, group_epochs, members, planned=True),
            "(d) MLPRegressor": lambda: sklearn_mlp(Xs, h, epochs),
        }
        for name, fn in runs.items():
            out = fn()
            if isinstance(out, tuple):
                out, size = out
                name = f"(c') fit_group, planned groups of {size}"
            every.setdefault(name, []).append(out)
    return every


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="less work per measurement, one repeat")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--dp-only", action="store_true", help="only the DP-SGD step against the plain step")
    parser.add_argument("--onednn-only", action="store_true",
                        help="only the width-1024 groups with the oneDNN path off and on")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(1)

    digits = (load_digits().data / 16).astype(np.float32)[:1078]
    synthetic = np.random.default_rng(0).random((20000, 784), dtype=np.float32)
    print(machine_line())
    if args.dp_only:
        dp_step_ratio(digits[:256], 16, 2, 1, 1)  # warm-up
        print_dp_row(digits, repeats)
        return
    if args.onednn_only:
        onednn_rates(digits[:256], 64, 1, epochs=1)  # warm-up
        print_onednn_rows(digits, repeats)
        return
    print(f"torch {torch.__version__}, one thread; CPU time, best of {repeats}; float32 matmul peak of one core "
          "measured per case")
    # model-samples per measurement: about this much arithmetic (about a CPU-second for (a)), capped for tiny models
    work_flops, cap = (5e9, 25000) if args.quick else (2e10, 100000)
    run_case(digits[:256], 16, 512, 1, 2)  # warm-up: first calls pay for thread pools, kernels, imports
    peaks, rows, checks, readme = [], [], [], []
    for name, X in (("digits", digits), ("synthetic", synthetic)):
        for h in args.widths:
            flops = _flops_per_sample(X.shape[1], h)
            work = min(int(work_flops / flops), cap)
            every = run_case(X, h, work, repeats, args.members)
            best = {method: max(values) for method, values in every.items()}
            peak = best.pop("peak")
            peaks.append(peak)
            plain = best["(a) plain DataLoader loop"]
            mlp = best["(d) MLPRegressor"]
            for method, rate in best.items():
                rows.append((name, h, method, rate, rate / plain, rate / mlp, 100 * rate * flops / peak))
            group = best[f"(c) fit_group, {args.members} members"]
            planned = max(v for k, v in best.items() if k.startswith("(c')"))
            checks += [(name, h, group / plain, group / mlp, 100 * group * flops / peak,
                        planned / plain, 100 * planned * flops / peak)]
            c = f"(c) fit_group, {args.members} members"
            per_repeat = [g / p for g, p in zip(every[c], every["(a) plain DataLoader loop"])]
            per_repeat_d = [g / p for g, p in zip(every[c], every["(d) MLPRegressor"])]
            data = "digits" if name == "digits" else f"{X.shape[0]} x {X.shape[1]}"
            readme.append(f"| {data} | {h} | {plain:,.0f} | {best['(b) autoenc.fit']:,.0f} | {group:,.0f} | "
                          f"{group / plain:.1f}x [{span(per_repeat, '{:.1f}', 'x')}] | "
                          f"{group / mlp:.1f}x [{span(per_repeat_d, '{:.1f}', 'x')}] | "
                          f"{100 * group * flops / peak:.0f}% |")
            print(f"  done: {name} width {h}", flush=True)
    print(f"float32 matmul peak of one core (2048 x 2048, the faster of torch.mm and oneDNN), best per case: "
          f"{', '.join(f'{p / 1e9:.1f}' for p in peaks)} GFLOP/s\n")

    header = f"{'data':<10}{'h':>6}  {'method':<38}{'samples/CPU-s':>14}{'vs (a)':>9}{'vs (d)':>9}{'% peak':>9}"
    print(header)
    print("-" * len(header))
    for name, h, method, rate, ra, rd, pct in rows:
        print(f"{name:<10}{h:>6}  {method:<38}{rate:>14,.0f}{ra:>8.2f}x{rd:>8.2f}x{pct:>8.1f}%")

    print("\ntargets (c = fit_group with the given members; c' = the groups plan_groups picks)")
    results = {(name, h): (ra, rd, pct, pra, ppct) for name, h, ra, rd, pct, pra, ppct in checks}

    def target(label, ok, value):
        print(f"  [{'met' if ok else 'NOT met'}] {label}: {value}")

    if ("digits", 64) in results:
        ra, rd, pct, *_ = results["digits", 64]
        target("c vs plain loop >= 5x on digits, width 64", ra >= 5, f"{ra:.2f}x")
        target("c vs MLPRegressor >= 3x on digits, width 64", rd >= 3, f"{rd:.2f}x")
    if ("digits", 256) in results:
        ra = results["digits", 256][0]
        target("c vs plain loop >= 2x on digits, width 256", ra >= 2, f"{ra:.2f}x")
    worst = min((v[3], k) for k, v in results.items())
    target("c' never slower than the plain loop", worst[0] >= 1,
           f"worst {worst[0]:.2f}x ({worst[1][0]}, width {worst[1][1]})")
    for (name, h), (ra, rd, pct, pra, ppct) in results.items():
        if name == "digits":
            target(f"c' >= 50% of peak on digits, width {h}", ppct >= 50, f"{ppct:.1f}% (c: {pct:.1f}%)")
        elif h >= 256:
            target(f"c' >= 80% of peak on synthetic, width {h}", ppct >= 80, f"{ppct:.1f}% (c: {pct:.1f}%)")

    print(f"\nfor the README (best of {repeats}; in brackets the range of the per-repeat ratios)\n"
          f"{machine_line().removeprefix('machine: ')}:\n")
    print("| data | width | (a) DataLoader loop | (b) `fit` | (c) batched | (c) vs (a) | (c) vs (d) | % of peak |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(readme))
    print_dp_row(digits, repeats)
    print_onednn_rows(digits, repeats)


if __name__ == "__main__":
    main()
