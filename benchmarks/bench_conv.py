"""Throughput of MLP and convolutional members on 28 x 28 inputs: the batched trainer against a plain per-model loop.

For each architecture (an MLP 784 -> h -> 16 -> h -> 784; a convolutional autoencoder on (1, 28, 28) with channels
(16, 32), kernel 3, stride 2, a linear code of 16), M models (seeds 0..M-1) train on the same synthetic images with
batch 128 and Adam on one thread, either (a) one after another in the tutorial loop (DataLoader over a
TensorDataset, default Adam), (c) together as one ``fit_group`` call, or (p) as the planner trains them: the groups
``plan_groups`` picks, each a ``fit_group`` call (on CPUs whose native convolution kernels beat the batched im2col
product on large members, each member alone on those kernels). We report samples per CPU-second per model
(model-samples per CPU-second over M), the ratio c / a, and the percentage of this machine's float32 matrix-multiply
peak for one core (2048 x 2048 ``torch.mm``), counting 6 FLOPs per forward multiply-add (forward 2, backward 4).
Timings are CPU time of this process, best of the
repeats, measured interleaved with the peak so that ratios compare like with like; a shared machine makes single
numbers noisy, the ratios less so. With ``--device cuda`` (or ``auto``) the same runs go to the GPU (wall-clock
time; no percentage of peak). The output names the machine (CPU, torch's kernel level, numpy's BLAS), gives the
range over repeats beside each best, and ends with a line in the README's words.

    python benchmarks/bench_conv.py            # a few minutes
    python benchmarks/bench_conv.py --quick    # about a minute, noisier
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load their thread pools

import autoenc  # noqa: F401  (before torch, as in a study: MKL's kernels are chosen when torch loads)
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from autoenc import Autoencoder, ModelConfig, TrainConfig
from autoenc._conv_batched import conv_macs
from autoenc.batched import fit_group
from autoenc.planning import plan_groups
from autoenc.train import resolve_device

from _machine import machine_line, span

BOTTLENECK, BATCH, SHAPE = 16, 128, (1, 28, 28)


def configs(kind, width):
    if kind == "conv":
        return ModelConfig(784, BOTTLENECK, (width // 2, width), kind="conv", input_shape=SHAPE)
    return ModelConfig(784, BOTTLENECK, (width,))


def macs(config):
    """Forward multiply-adds per sample."""
    if config.kind == "conv":
        return conv_macs(config)
    widths = [config.input_dim, *config.hidden, config.bottleneck, *config.hidden[::-1], config.input_dim]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def matmul_peak(size=2048, repeats=3):
    """Best float32 FLOP per CPU-second of ``torch.mm`` on two (size, size) matrices, one thread."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    return max(2 * size**3 / _timed(lambda: torch.mm(a, b, out=out), "cpu") for _ in range(repeats))


def _timed(fn, device):
    if device == "cpu":
        start = time.process_time()
        fn()
        return time.process_time() - start
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def plain_loop(X, config, members, epochs, device):
    """(a) Each model in turn: DataLoader over a TensorDataset, default Adam, data moved batch by batch."""
    def run():
        for seed in range(members):
            torch.manual_seed(seed)  # the tutorial's way; this script owns its process
            model = Autoencoder(config).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=BATCH, shuffle=True)
            for _ in range(epochs):
                for (xb,) in loader:
                    xb = xb.to(device)
                    loss = F.mse_loss(model(xb), xb)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

    return members * len(X) * epochs / _timed(run, device.type)


def batched(X, config, members, epochs, device):
    """(c) ``fit_group`` on ``members`` copies of ``config`` with seeds 0..members-1."""
    train_configs = [TrainConfig(epochs=epochs, batch_size=BATCH, seed=s, device=str(device)) for s in range(members)]
    run = lambda: fit_group([config] * members, X, train_configs=train_configs, progress=False)  # noqa: E731
    return members * len(X) * epochs / _timed(run, device.type)


def planned(X, config, members, epochs, device):
    """(p) The groups ``plan_groups`` picks for ``members`` copies of ``config``, one ``fit_group`` call each."""
    train_configs = [TrainConfig(epochs=epochs, batch_size=BATCH, seed=s, device=str(device)) for s in range(members)]
    groups = plan_groups([config] * members, train_configs)

    def run():
        for g in groups:
            fit_group([config] * len(g), X, train_configs=[train_configs[i] for i in g], progress=False)

    return members * len(X) * epochs / _timed(run, device.type)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples per measurement, one repeat")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--width", type=int, default=32, help="MLP width and the conv model's last channel count")
    parser.add_argument("--samples", type=int, default=None, help="training rows (default 4096; 1024 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto (GPU runs report wall-clock time)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    rows = args.samples or (1024 if args.quick else 4096)
    device = resolve_device(args.device)
    torch.set_num_threads(1)
    X = np.random.default_rng(0).random((rows, 784), dtype=np.float32)
    print(machine_line())
    print(f"torch {torch.__version__}, one thread, {device}; {rows} rows of 28 x 28, batch {BATCH}, "
          f"{args.members} models; {'CPU' if device.type == 'cpu' else 'wall-clock'} time, best of {repeats} "
          "(range over repeats in brackets)")

    batched(X[:256], configs("mlp", 16), 2, 1, device)  # warm-up: thread pools, kernels, imports
    lines, summary = [], {}
    for kind, width in (("mlp", 4 * args.width), ("conv", args.width)):
        config = configs(kind, width)
        flops = 6 * macs(config)
        plain_loop(X[:256], config, 1, 1, device)  # warm-up of this shape's kernels: else the first repeat pays
        batched(X[:256], config, 2, 1, device)
        planned(X[:256], config, 2, 1, device)
        runs = {"peak": [], "loop": [], "batched": [], "planned": []}
        for _ in range(repeats):  # interleaved, so that each repeat's ratio compares like with like
            if device.type == "cpu":
                runs["peak"].append(matmul_peak())
            runs["loop"].append(plain_loop(X, config, args.members, 1, device))
            runs["batched"].append(batched(X, config, args.members, 1, device))
            runs["planned"].append(planned(X, config, args.members, 1, device))
        peak = max(runs["peak"], default=0.0)
        ratios = {m: [b / a for a, b in zip(runs["loop"], runs[m])] for m in ("batched", "planned")}
        groups = plan_groups([config] * args.members,
                             [TrainConfig(batch_size=BATCH, device=str(device))] * args.members)
        for method in ("loop", "batched", "planned"):
            rate = max(runs[method])
            pct = f"{100 * rate * flops / peak:.1f}%" if peak else "-"
            ratio = (f"{rate / max(runs['loop']):.2f}x [{span(ratios[method], unit='x')}]" if method != "loop"
                     else "1.00x")
            spread = f"[{span([r / args.members for r in runs[method]], '{:,.0f}')}]"
            lines.append((kind, config.hidden, method, rate, spread, ratio, pct))
            summary[kind, method] = pct
        summary[kind] = (max(runs["batched"]) / max(runs["loop"]), span(ratios["batched"], unit="x"))
        summary[kind, "plan"] = (max(runs["planned"]) / max(runs["loop"]), span(ratios["planned"], unit="x"),
                                 "one batched group" if len(groups) == 1 else
                                 "one by one" if all(len(g) == 1 for g in groups) else f"groups {groups}")
        print(f"  done: {kind}", flush=True)
    header = (f"{'model':<6}{'hidden':>10}  {'method':<10}{'samples/s per model':>21} {'[range]':<17}"
              f"{'vs loop [range]':>21}{'% peak':>9}")
    print(header)
    print("-" * len(header))
    for kind, hidden, method, rate, spread, ratio, pct in lines:
        print(f"{kind:<6}{str(hidden):>10}  {method:<10}{rate / args.members:>21,.0f} {spread:<17}{ratio:>21}{pct:>9}")
    conv_ratio = summary["conv"][0]
    plan_ratio, plan_span, plan = summary["conv", "plan"]
    print(f"\nthe planner trains {args.members} conv members {plan} on this CPU "
          f"({torch.backends.cpu.get_cpu_capability()} kernels)")
    print(f"target: conv members as planned never slower than the loop: {'met' if plan_ratio >= 1 else 'NOT met'} "
          f"({plan_ratio:.2f}x [{plan_span}]; batched alone {conv_ratio:.2f}x)")
    peak_words = lambda kind: ("" if device.type != "cpu" else  # noqa: E731
                               f" ({summary[kind, 'batched']} of peak against the loop's {summary[kind, 'loop']})")
    print(f"\nfor the README:\n`python benchmarks/bench_conv.py{' --quick' if args.quick else ''}` "
          f"({rows} rows of 28 x 28, batch {BATCH}, {args.members} models, one thread, best of {repeats}, "
          f"range over repeats in brackets): batched MLP members run {summary['mlp'][0]:.2f}x "
          f"[{summary['mlp'][1]}] the per-model loop{peak_words('mlp')}; batched convolutional members, exact to "
          f"solo training, run {conv_ratio:.2f}x [{summary['conv'][1]}] the loop{peak_words('conv')}, and as "
          f"planned ({plan}) {plan_ratio:.2f}x [{plan_span}]"
          f"{'' if device.type != 'cpu' else ' (' + summary['conv', 'planned'] + ' of peak)'}. "
          f"Measured on {machine_line().removeprefix('machine: ')}.")

if __name__ == "__main__":
    main()
