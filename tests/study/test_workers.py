"""Local workers started early: the tasks run on them, reading the study's data as memory maps, and a block that
fails leaves none behind."""
import os

import psutil
import pytest

from analysis.study._parallel import Task, release_workers, run_tasks, warm_workers


def _kinds(data):
    """What a worker sees: its pid and the types of the arrays a task reads."""
    X_train, clean_train, noise_train = data.split_arrays("train")
    return os.getpid(), type(data).__name__, [type(a).__name__ for a in (X_train, clean_train, noise_train,
                                                                        data.inputs(data.pool))]


def test_tasks_run_on_the_warmed_workers_and_get_memory_maps():
    """One pool for both: the tasks run on the warmed workers (none started for them), a task's data arrives as
    the shared memory maps, and releasing the workers shuts the pool down."""
    from analysis import StudyConfig
    from analysis.study._shared_data import DataShare
    from analysis.study.prepare import prepare_data

    data = prepare_data(StudyConfig(noise_std=0.3, fractions=(0.5, 0.25, 0.25)))
    release_workers()
    with warm_workers(2, ("analysis.study.training",)) as warm:
        warm.wait()
    assert len(warm.pids) == 2 and os.getpid() not in warm.pids
    pids = []
    run_tasks([Task(os.getpid, (), pids.append) for _ in range(8)], 2)
    assert set(pids) <= set(warm.pids)  # no new processes were started for them
    seen = []
    with DataShare() as share:
        run_tasks([Task(_kinds, (data,), seen.append)] * 2, n_jobs=2, share=share)
    assert [kinds for _, *kinds in seen] == [["MappedStudyData", ["memmap"] * 4]] * 2
    assert {pid for pid, *_ in seen} <= set(warm.pids)
    from joblib.externals.loky import reusable_executor

    pool = reusable_executor._executor
    release_workers()  # the pool joblib made is shut down as it is, not first replaced by a new one
    assert reusable_executor._executor is pool and pool._flags.shutdown
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in warm.pids)


def test_a_failing_block_kills_its_idle_workers_and_leaves_nothing_behind(recwarn):
    """A block that fails (a refused study) kills the workers it started, as the study's end kills its idle ones
    (no interpreter teardown to wait for): gone, the pool shut down, no leaked semaphore. One pool for both: the
    workers have run tasks and are idle when the block fails."""
    release_workers()
    pids = []
    with pytest.raises(ValueError, match="refused"):
        with warm_workers(2, ("analysis.study.training",)) as warm:
            warm.wait()
            run_tasks([Task(os.getpid, (), pids.append) for _ in range(4)], 2)
            from joblib.externals.loky import reusable_executor

            pool = reusable_executor._executor
            raise ValueError("refused")
    assert len(warm.pids) == 2 and set(pids) <= set(warm.pids)  # they had started, and ran the tasks
    assert pool._flags.shutdown and pool._flags.kill_workers
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in warm.pids if psutil.pid_exists(p)], timeout=10)
    assert not alive and not [w for w in recwarn if "leaked" in str(w.message)]


def test_one_job_starts_nothing():
    with warm_workers(1) as warm:
        warm.wait()
    assert warm.thread is None and warm.pids == []


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, "2"])
def test_finish_threads_reject_a_bad_n_jobs(n_jobs):
    from analysis.study.finish import run_in_threads

    with pytest.raises((ValueError, TypeError), match="n_jobs"):
        run_in_threads([Task(os.getpid, (), print)] * 2, n_jobs)


def test_membership_audit_rejects_a_non_bool_warn_unresolved():
    import numpy as np

    from analysis.measures.audit import membership_audit

    rng = np.random.default_rng(0)
    masks = np.tile([True, False], (4, 5))
    masks[1::2] = ~masks[1::2]
    with pytest.raises(TypeError, match="warn_unresolved"):
        membership_audit(rng.random(10), masks[0], rng.random((4, 10)), masks, warn_unresolved="no")


def test_tasks_marked_here_run_in_this_process_and_one_that_fails_stops_the_workers():
    """One pool for both: tasks marked ``here`` run in the calling process while the workers run the rest; a task
    here that fails kills the workers rather than leave them running for nobody."""
    release_workers()
    pids, here = [], []
    tasks = [Task(os.getpid, (), pids.append) for _ in range(4)]
    tasks += [Task(os.getpid, (), here.append, here=True) for _ in range(3)]
    run_tasks(tasks, 2)
    assert here == [os.getpid()] * 3
    assert len(pids) == 4 and os.getpid() not in pids
    with pytest.raises(ZeroDivisionError):
        run_tasks([Task(os.getpid, (), pids.append), Task(divmod, (1, 0), print, here=True)], 2)
    from joblib.externals.loky import reusable_executor

    assert reusable_executor._executor._flags.shutdown and reusable_executor._executor._flags.kill_workers
