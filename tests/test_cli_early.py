"""The study command starts its local workers before its heavy imports; the study then runs on them, and a refused
command leaves none behind."""
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from autoenc_cli import _early

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, jobs", [
    ([], len(os.sched_getaffinity(0))), (["--jobs", "3"], 3), (["--jobs=4", "--quiet"], 4), (["--jobs", "1"], 1),
    (["--jobs", "0"], 1), (["--jobs", "x"], 1), (["--jobs"], 1), (["--help"], 1), (["-h"], 1),
    (["--scheduler", "tcp://h:8786"], 1), (["--scheduler=tcp://h:8786"], 1),
])
def test_requested_jobs(argv, jobs):
    assert _early.requested_jobs(argv) == jobs


def test_the_early_modules_are_the_runners():
    from analysis.study import runner

    assert _early.WORKER_MODULES == runner.WORKER_MODULES


def test_early_workers_run_the_study_and_a_refused_command_leaves_none(tmp_path):
    """One process: the early workers are the ones the study's tasks run on; then a refused command (exit 2) kills
    the workers it started and leaves quickly."""
    script = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
from autoenc_cli._early import start_workers, leave, _workers
early = start_workers(["--jobs", "2"])
early.join()
started = set(_workers())
from analysis.study._parallel import Task, run_tasks
pids = []
run_tasks([Task(os.getpid, (), pids.append) for _ in range(6)], 2)
assert len(started) == 2 and set(pids) <= started, (started, pids)
from analysis.study._parallel import release_workers
release_workers()
early = start_workers(["--jobs", "2"])
import time
time.sleep(0.5)
print(*_workers(), flush=True)
leave(2, early)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "leaked" not in out.stderr and "Traceback" not in out.stderr
    pids = [int(p) for p in out.stdout.split()]
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert not alive
