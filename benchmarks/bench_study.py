"""Wall time and peak memory of the default study, as a new user runs it.

    python benchmarks/bench_study.py            # the default study (target: <= 60 s wall, < 1.5 GB peak)
    python benchmarks/bench_study.py -- --widths 16,64   # extra arguments go to scripts/study.py

Peak memory is the largest sum of resident memory over the study process and its workers, sampled every 50 ms.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc):
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("extra", nargs="*", help="arguments passed on to scripts/study.py")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "scripts" / "study.py"), "--out", tmp, "--quiet", *args.extra]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        watched, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        output = proc.stdout.read()
        if proc.returncode:
            sys.exit(f"study failed with status {proc.returncode}")
        phases = (Path(tmp) / "timings.json").read_text() if (Path(tmp) / "timings.json").exists() else ""
    print(output.strip().splitlines()[-2])
    if phases:
        print(f"phases (s): {phases.strip()}")
    print(f"default study: wall {wall:.1f} s (target <= 60 s), peak memory {peak / 2**30:.2f} GB (target < 1.5 GB)")
    print(f"targets met: wall {'yes' if wall <= 60 else 'NO'}, memory {'yes' if peak < 1.5 * 2**30 else 'NO'}")


if __name__ == "__main__":
    main()
