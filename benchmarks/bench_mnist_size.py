"""Peak memory and wall time of a study on MNIST-size data: 60,000 images of 28 x 28 in an IDX file.

    python benchmarks/bench_mnist_size.py             # every measure on one small model (about 4 minutes here)
    python benchmarks/bench_mnist_size.py --quick     # no per-sample memorization, no landscape (about 1 minute)
    python benchmarks/bench_mnist_size.py -- --jobs 1 --architecture conv   # extra arguments go to the study

The images are generated (low-rank structure, 8-bit like MNIST) unless ``--idx PATH`` names a real
``train-images-idx3-ubyte`` file. The study runs as a user runs it, with every core. Peak memory is sampled
every 50 ms over the study process and its workers, as the sum of resident memory (a page shared by two
processes counts twice) and as the sum of proportional memory (PSS: shared pages split between their users,
the machine's real cost). Target: under 3 GB proportional on a 2-core machine (two workers), which counts the
data the workers share (one memory-mapped copy, ``analysis.study._shared_data``) once.
"""
import argparse
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import autoenc  # noqa: F401  (before torch, as in a study: the machine line names MKL's kernels as the study runs them)
import numpy as np
import psutil

from _machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--bottlenecks", "16", "--widths", "64", "--depths", "1", "--seeds", "0", "--epochs", "1"]


def write_images(path, n=60000, side=28, rank=10, seed=0):
    """An IDX3 file of ``n`` 8-bit images with low-rank structure."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, rank), dtype=np.float32) @ rng.standard_normal((rank, side * side),
                                                                                    dtype=np.float32)
    images = (images - images.min()) / (images.max() - images.min()) * 255
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", n, side, side)
    Path(path).write_bytes(header + images.astype(np.uint8).tobytes())


def peaks(proc):
    """(peak summed RSS, peak summed PSS) in bytes of ``proc`` and its children until it exits."""
    watched, rss, pss, tick = psutil.Process(proc.pid), 0, 0, 0
    while proc.poll() is None:
        total = proportional = 0
        for p in [watched, *watched.children(recursive=True)]:
            try:
                total += p.memory_info().rss
                if tick % 4 == 0:  # PSS reads every mapping: every 200 ms
                    proportional += p.memory_full_info().pss
            except psutil.Error:
                pass
        rss, pss, tick = max(rss, total), max(pss, proportional), tick + 1
        time.sleep(0.05)
    return rss, pss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="leave out memorization and the landscape")
    parser.add_argument("--idx", metavar="PATH", help="a real MNIST train-images-idx3-ubyte file")
    parser.add_argument("extra", nargs="*", help="arguments passed on to scripts/study.py")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.idx or str(Path(tmp) / "train-images-idx3-ubyte")
        if not args.idx:
            write_images(data)
        cmd = [sys.executable, str(ROOT / "scripts" / "study.py"), "--data", data, "--out", str(Path(tmp) / "study"),
               "--quiet", *GRID, *(["--no-memorization", "--no-landscape"] if args.quick else []), *args.extra]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        rss, pss = peaks(proc)
        wall = time.perf_counter() - start
        out = proc.stdout.read()
        if proc.returncode:
            sys.exit(f"study failed with status {proc.returncode}:\n{out[-2000:]}")
        phases = (Path(tmp) / "study" / "timings.json").read_text().strip()
    print(machine_line())
    print(f"{' '.join(cmd[2:])}\nwall {wall:.1f} s (one run); phases (s): {phases}")
    print(f"peak memory: {rss / 2**30:.2f} GB resident summed over processes, {pss / 2**30:.2f} GB proportional "
          f"(target < 3 GB proportional): {'met' if pss < 3 * 2**30 else 'NOT met'}")


if __name__ == "__main__":
    main()
