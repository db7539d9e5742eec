"""Wall time and peak memory of the default study, as a new user runs it, with and without the membership audit.

    python benchmarks/bench_study.py            # both, side by side (targets: <= 20 s wall, < 1.5 GB peak,
                                                # audit <= 1.5x the study without it)
    python benchmarks/bench_study.py --repeats 2 -- --widths 16,64   # extra arguments go to scripts/study.py
    python benchmarks/bench_study.py --remedies # the widest architecture with each remedy against without one
                                                # (targets: <= 1.5x, DP-SGD <= 2x)
    python benchmarks/bench_study.py --breakdown  # where the study's CPU time goes: its tasks on one thread, the
                                                # imports, the figures, one training step of the widest groups;
                                                # the tasks' and the step's FLOP rates against one core's peak

"Without the audit" is the study as it ran before reference models existed: no audit, per-sample memorization by
K-fold cross-fitting. The two are run alternately, so that a busy machine slows both alike. Peak memory is the
largest sum of resident memory over the study process and its workers, sampled every 50 ms. The output names the
machine (CPU, torch's kernel level, numpy's BLAS) and ends with a line in the README's words, with the range over
repeats.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import autoenc  # noqa: F401  (before torch, as in a study: MKL's kernels are chosen when torch loads)
import psutil

from _machine import machine_line, matmul_peak, span

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc):
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


WITHOUT_AUDIT = ["--audit", "none", "--memorization-method", "kfold"]


def busy_seconds():
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat; None elsewhere): the difference
    over a run is the study's CPU work, on an otherwise idle machine."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_once(extra):
    """(wall seconds, peak bytes, phases, busy core-seconds or None) of one study in a fresh folder."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "scripts" / "study.py"), "--out", tmp, "--quiet", *extra]
        busy = busy_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        watched, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        busy = None if busy is None else busy_seconds() - busy
        proc.stdout.read()
        if proc.returncode:
            sys.exit(f"study failed with status {proc.returncode}")
        phases = (Path(tmp) / "timings.json").read_text() if (Path(tmp) / "timings.json").exists() else ""
    return wall, peak, phases.strip(), busy


REMEDIES = "weight-decay=1e-4 dropout=0.1 denoise=0.1 early-stop dp=1"


def remedies_row(repeats=1):
    """The default study's widest architecture (3 seeds) trained as the study trains it, plain and with each remedy
    (one value of each), one thread, in this process: each remedy's time against the plain group's."""
    sys.path.insert(0, str(ROOT))
    from analysis import StudyConfig
    from analysis.study._parallel import one_thread
    from analysis.study.prepare import prepare_data
    from analysis.study.remedies import Remedy
    from analysis.study.runspec import Run, RunSpec
    from analysis.study.training import train_group

    config = StudyConfig(remedies=REMEDIES)
    data = prepare_data(config)
    widest = config.widest_run()
    groups = {"none": "", **{text: Remedy.parse(text).tag for text in REMEDIES.split()}}
    seconds = {name: [] for name in groups}
    with one_thread():
        for _ in range(repeats):
            for name, tag in groups.items():
                runs = [Run.of(RunSpec(widest.bottleneck, widest.hidden, s, remedy=tag), config, data)
                        for s in config.seeds]
                start = time.perf_counter()
                train_group(runs, data, config)
                seconds[name].append(time.perf_counter() - start)
    plain = min(seconds["none"])
    print(f"remedies of {widest.architecture} ({len(config.seeds)} seeds, {config.train.epochs} epochs, one thread): "
          f"plain {plain:.1f} s")
    for name in list(groups)[1:]:
        ratio = min(seconds[name]) / plain
        target = 2.0 if name.startswith("dp") else 1.5
        print(f"  {name:<18} {min(seconds[name]):6.1f} s  {ratio:.2f}x plain  [{'met' if ratio <= target else 'NOT met'}"
              f"] target <= {target:g}x")
    total = sum(min(v) for k, v in seconds.items() if k != "none")
    print(f"  all five together: {total:.1f} s, {total / plain:.2f}x the architecture's own training")


def import_seconds(modules, repeats=3):
    """CPU seconds (user + system, best of ``repeats``) a fresh interpreter spends importing ``modules``, beyond
    what one that imports nothing spends."""
    def cpu(code):
        best = math.inf
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        return best

    return cpu("import " + ", ".join(modules)) - cpu("pass")


# What the study process imports by the end (its report, the latent measures, the pair measures' scipy.stats)
STUDY_MODULES = ("autoenc_cli.study", "analysis.study.runner", "analysis.report.html", "analysis.measures.latent",
                 "scipy.stats")


PRODUCTS = {"aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm", "mkldnn::_linear_pointwise"}


def step_row(steps=300):
    """One training step of a width-1024 group of two members (k = 32, batch 64) as the study trains it: its time,
    fused Adam's share, its matrix products' share (torch.profiler's self CPU time of the product kernels), its
    FLOPs, and how many oneDNN calls it makes (each with a fixed cost, measured on a 4 x 4 product)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from autoenc import ModelConfig, _kernels, training_flops
    from autoenc.batched import _FusedAdam, _make_stack, _step
    from autoenc.config import TrainConfig

    configs = [ModelConfig(64, 32, (1024,)) for _ in range(2)]
    stack = _make_stack(configs, [TrainConfig(batch_size=64, seed=s) for s in (0, 1)], torch.float32,
                        torch.device("cpu"))
    adam = _FusedAdam(stack.param, stack.grad, 2e-3, 0.0)
    X, sumsq = torch.rand(2, 1024, 64), torch.zeros(2)
    calls, linear = [0], _kernels._LINEAR

    def counted(*args):
        calls[0] += 1
        return linear(*args)

    def best_of(fn, n, repeats=5):
        fn(n // 4)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(n)
            times.append((time.perf_counter() - start) / n)
        return min(times)

    def train(n):
        for j in range(n):
            _step(stack, adam, X[:, (j % 16) * 64:(j % 16 + 1) * 64], sumsq, None)

    def adam_only(n):
        for _ in range(n):
            adam.step()

    small = (torch.rand(4, 4), torch.rand(4, 4), torch.rand(4))
    from analysis.study._parallel import one_thread

    with torch.no_grad(), one_thread():  # one thread, as each of the study's workers trains
        step, adam_time = best_of(train, steps), best_of(adam_only, steps)
        fixed = best_of(lambda n: [linear(*small, "none", [], "") for _ in range(n)], 20 * steps) if linear else 0.0
        _kernels._LINEAR = counted if linear else None
        try:
            train(10)
        finally:
            _kernels._LINEAR = linear
        products = []
        for _ in range(3):  # the products' own time, best of three profiled runs
            with profile(activities=[ProfilerActivity.CPU]) as profiled:
                train(steps)
            products.append(sum(e.self_cpu_time_total for e in profiled.key_averages() if e.key in PRODUCTS)
                            / 1e6 / steps)
    flops = sum(training_flops(c, n_samples=64, epochs=1) for c in configs)  # one step: one batch of 64
    return step, adam_time, min(products), flops, calls[0] / 10, fixed


def breakdown():
    """Where a default study's CPU time goes: the study once (busy core-seconds), then on one thread in this
    process every training task back to back (with their measures, and the grid's without them), the imports of
    the study process and of a worker, the report's figures, and one step of the widest groups."""
    sys.path.insert(0, str(ROOT))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        busy, start = busy_seconds(), time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "study.py"), "--out", tmp, "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        busy = None if busy is None else busy_seconds() - busy
        print(f"the default study: wall {wall:.1f} s" + ("" if busy is None else f", CPU busy {busy:.1f} core-s "
                                                           f"({cores} cores)"), flush=True)
        from analysis.report._drawing import Drawing
        from analysis.report.html import _figure_plan

        plan = _figure_plan(Path(tmp))
        cpu = time.process_time()
        with Drawing(plan, Path(tmp), 110, processes=1) as drawing:
            drawing.finish()
        figures = time.process_time() - cpu
    print(f"the report's {len(plan)} figures on one process: {figures:.1f} CPU s", flush=True)

    from analysis import StudyConfig
    from analysis.study._parallel import one_thread
    from analysis.study.prepare import prepare_data
    from analysis.study.references import early_references, plan_references, reference_flops, reference_tasks
    from analysis.study.runspec import Run
    from analysis.study.training import train_group
    from autoenc import training_flops
    from autoenc.batched import fit_group
    from autoenc.planning import plan_groups

    config = StudyConfig()
    data = prepare_data(config)
    runs = [Run.of(s, config, data) for s in config.runs()]
    groups = [[runs[i] for i in g] for g in plan_groups([r.model for r in runs], [r.train for r in runs])]
    with tempfile.TemporaryDirectory() as tmp, one_thread():
        tasks = [t for s in early_references(config) for t in reference_tasks(plan_references(s, data, config, tmp),
                                                                             data, config)]
        train_group(groups[-1], data, config)  # imports and first-call set-up, as a worker's first task has them
        grid, bare, references = 0.0, 0.0, 0.0
        X_train = data.split_arrays("train")[0]
        for group in groups:
            cpu = time.process_time()
            train_group(group, data, config)
            grid += time.process_time() - cpu
            cpu = time.process_time()
            fit_group([r.model for r in group], X_train, None, [r.train for r in group])
            bare += time.process_time() - cpu
        for task in tasks:
            cpu = time.process_time()
            task.fn(*task.args)
            references += time.process_time() - cpu
    trained = (sum(training_flops(r.model, len(X_train), r.train.epochs) for r in runs) + reference_flops(tasks))
    peak = matmul_peak()  # one core's, measured beside
    rate = trained / (grid + references)

    def share(flops, seconds):
        return f"{flops / seconds / 1e9:.0f} GFLOP/s, {100 * flops / seconds / peak:.0f}% of one core's peak"

    print(f"training tasks on one thread, back to back: {grid + references:.1f} CPU s (the {len(groups)} grid groups "
          f"{grid:.1f} s, {bare:.1f} s without their validation loss, curves and measures; the {len(tasks)} early "
          f"reference tasks {references:.1f} s): {trained / 1e12:.2f} TFLOP at {share(trained, grid + references)} "
          f"({peak / 1e9:.0f} GFLOP/s, torch.mm 2048 x 2048, measured beside), the most the training phase could "
          f"reach on any number of cores with no time lost between tasks", flush=True)
    study_imports = import_seconds(STUDY_MODULES)
    worker_imports = import_seconds(runner_worker_modules())
    print(f"imports: the study process {study_imports:.1f} CPU s, a worker {worker_imports:.1f} CPU s", flush=True)
    step, adam, products, flops, calls, fixed = step_row()
    onednn = (f" and {calls:.0f} oneDNN calls at a fixed {1e6 * fixed:.0f} us each ({1e3 * calls * fixed:.2f} ms)"
              if calls else " (no oneDNN calls)")
    print(f"a training step of a width-1024 group of two (k = 32, batch 64, one thread): {1e3 * step:.2f} ms "
          f"({share(flops, step)}), of which its matrix products {1e3 * products:.2f} ms ({share(flops, products)}) "
          f"and fused Adam {1e3 * adam:.2f} ms{onednn}")
    print(f"\nfor the README:\n`python benchmarks/bench_study.py --breakdown`: the default study took {wall:.1f} s"
          + ("" if busy is None else f" and {busy:.1f} core-s") + f"; its training tasks take {grid + references:.1f} "
          f"s run back to back on one thread (the {len(groups)} grid groups {grid:.1f} s, {grid - bare:.1f} s of it "
          f"their validation loss, curves and measures; the {len(tasks)} early reference tasks {references:.1f} s), "
          f"{rate / 1e9:.0f} GFLOP/s, {100 * rate / peak:.0f}% of one core's peak ({peak / 1e9:.0f} GFLOP/s): the "
          f"most the training phase could reach with no time lost between tasks; the imports {study_imports:.1f} "
          f"CPU s in the study process and {worker_imports:.1f} in each worker, the {len(plan)} figures "
          f"{figures:.1f}; a width-1024 step of two members takes {1e3 * step:.2f} ms on one thread "
          f"({100 * flops / step / peak:.0f}% of the peak), {1e3 * products:.2f} of it its matrix products "
          f"({100 * flops / products / peak:.0f}% of the peak) and {1e3 * adam:.2f} fused Adam"
          + (f" and {1e3 * calls * fixed:.2f} the fixed cost of its {calls:.0f} oneDNN calls" if calls else "")
          + f"; on {machine_line().removeprefix('machine: ')}.")


def runner_worker_modules():
    sys.path.insert(0, str(ROOT))
    from analysis.study.runner import WORKER_MODULES

    return WORKER_MODULES


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each (default 1)")
    parser.add_argument("--remedies", action="store_true",
                        help=f"only the remedies row: the widest architecture with each of {REMEDIES}")
    parser.add_argument("--breakdown", action="store_true",
                        help="where the default study's CPU time goes (its tasks on one thread, imports, figures)")
    parser.add_argument("extra", nargs="*", help="arguments passed on to scripts/study.py")
    args = parser.parse_args(argv)
    if args.breakdown and (args.extra or args.remedies):
        parser.error("--breakdown measures the default study: it takes no study arguments and no --remedies")
    print(machine_line(), flush=True)
    if args.remedies:
        return remedies_row(args.repeats)
    if args.breakdown:
        return breakdown()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    walls, peaks, shares, fastest_shares, busy = {"with": [], "without": []}, [], [], [], []
    for _ in range(args.repeats):
        for name, extra in (("without", WITHOUT_AUDIT), ("with", [])):
            wall, peak, phases, cpu = run_once([*args.extra, *extra])
            walls[name].append(wall)
            peaks.append(peak)
            used = "" if cpu is None else f", CPU busy {cpu:.1f} core-s ({100 * cpu / (cores * wall):.0f}% of the cores)"
            print(f"study {name} the audit: wall {wall:.1f} s{used}, peak memory {peak / 2**30:.2f} GB; phases (s): "
                  f"{phases}")
            if name == "with" and cpu is not None:
                busy.append(cpu)
            if name == "with":
                timings = json.loads(phases)
                peak_flops = cores * matmul_peak()  # measured beside the run it is held against
                fastest = cores * max(matmul_peak(kernel="onednn") or 0, peak_flops / cores)
                rate = timings["training_flops"] / timings["training"]
                shares.append(100 * rate / peak_flops)
                fastest_shares.append(100 * rate / fastest)
                print(f"training phase: {timings['training_flops'] / 1e12:.2f} TFLOP in {timings['training']:.1f} s, "
                      f"{rate / 1e9:.1f} GFLOP/s, {shares[-1]:.0f}% of the {cores}-core float32 peak of torch.mm "
                      f"({peak_flops / 1e9:.0f} GFLOP/s; target >= 60%), {fastest_shares[-1]:.0f}% of the fastest "
                      f"large float32 product torch has here ({fastest / 1e9:.0f} GFLOP/s)")
                print(f"targets met: wall {'yes' if wall <= 20 else 'NO'} (<= 20 s), memory "
                      f"{'yes' if peak < 1.5 * 2**30 else 'NO'} (< 1.5 GB), training phase "
                      f"{'yes' if shares[-1] >= 60 else 'NO'} (>= 60% of the peak; --breakdown gives the most its "
                      f"training tasks reach on this machine, run back to back on one thread)")
    ratio = min(walls["with"]) / min(walls["without"])
    print(f"audit cost: {ratio:.2f}x the study without it (best of {args.repeats}; target <= 1.5x): "
          f"{'met' if ratio <= 1.5 else 'NOT met'}")
    ratios = [w / wo for w, wo in zip(walls["with"], walls["without"])]
    print(f"\nfor the README:\n`python benchmarks/bench_study.py --repeats {args.repeats}"
          f"{' -- ' + ' '.join(args.extra) if args.extra else ''}`: {span(walls['with'], '{:.1f}', ' s')} wall with "
          f"the audit against {span(walls['without'], '{:.1f}', ' s')} without it ({ratio:.2f}x, best of "
          f"{args.repeats}; {span(ratios, unit='x')} run by run), the training phase at {span(shares, '{:.0f}', '%')} of "
          f"the {cores}-core float32 peak of torch.mm ({span(fastest_shares, '{:.0f}', '%')} of the fastest large float32 "
          f"product torch has here), {span(busy, '{:.0f}', ' core-s of CPU busy with the audit, ') if busy else ''}"
          f"peak memory {max(peaks) / 2**30:.2f} GB over all processes, "
          f"on {machine_line().removeprefix('machine: ')}.")


if __name__ == "__main__":
    main()
