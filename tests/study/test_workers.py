"""Local workers started early: the tasks run on them, and a block that fails leaves none behind."""
import os

import psutil
import pytest

from analysis.study._parallel import Task, release_workers, run_tasks, warm_workers


def test_tasks_run_on_the_warmed_workers():
    release_workers()
    with warm_workers(2, ("analysis.study.training",)) as warm:
        warm.wait()
    assert len(warm.pids) == 2 and os.getpid() not in warm.pids
    pids = []
    run_tasks([Task(os.getpid, (), pids.append) for _ in range(8)], 2)
    assert set(pids) <= set(warm.pids)  # no new processes were started for them
    release_workers()


def test_a_failing_block_stops_the_workers():
    release_workers()
    with pytest.raises(ValueError, match="refused"):
        with warm_workers(2, ("analysis.study.training",)) as warm:
            raise ValueError("refused")
    assert len(warm.pids) == 2  # they had started, and are gone
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in warm.pids if psutil.pid_exists(p)], timeout=10)
    assert not alive


def test_one_job_starts_nothing():
    with warm_workers(1) as warm:
        warm.wait()
    assert warm.thread is None and warm.pids == []
