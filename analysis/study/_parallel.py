"""Where a study's tasks run: in this process, in local worker processes (joblib/loky), or on a Dask cluster.

Workers only compute; every task's output comes back to the study process, which alone writes files. A local
worker exits by itself when the study process dies (even by SIGKILL): it would otherwise train for nobody.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["ClusterError", "Task", "dask_client", "default_jobs", "one_thread", "release_workers", "run_in_threads",
           "run_tasks", "warm_workers"]


@dataclass
class Task:
    """``fn(*args)`` runs on a worker; ``on_done(output)`` runs in the study process as soon as it is back.

    ``here``: where the other tasks go to local worker processes, this one runs in the study process instead, one
    after the other, while they work. For tasks that need scikit-learn (PCA, the latent measures): the study process has it,
    and a worker that imported it for them would spend about 1 s of a core doing so (the workers import torch and
    the training code only).
    """

    fn: Callable
    args: tuple
    on_done: Callable[[Any], None]
    here: bool = False


def default_jobs():
    """Every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def one_thread():
    """Run the block with every thread pool of this process at one thread: torch's, OpenMP's and the BLAS's.

    A matrix product split over two threads adds its partial sums in another order than one thread does (1e-8
    relative, measured on PCA-derived columns), enough to flip ties in a rank statistic. A study's numbers must not
    depend on where a task runs (this process, a local worker, a Dask worker) nor on what the caller set before,
    so every task, and the study's own process, computes on one thread; parallelism is across processes.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(previous)


class ClusterError(RuntimeError):
    """The Dask cluster cannot be reached, has no workers, or lost them: one line for the command line."""


@contextlib.contextmanager
def dask_client(scheduler, timeout=30):
    """A ``distributed.Client`` for an address (closed afterwards), the given client itself, or None.

    Waits at most ``timeout`` seconds for the scheduler to answer and for a first worker; either failure is a
    :class:`ClusterError` naming the address.
    """
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError("a Dask scheduler needs the 'distributed' package: pip install 'autoenc[distributed]'")
    if not isinstance(scheduler, str):
        yield scheduler
        return
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
                           f"({type(exc).__name__}); is `dask scheduler` running there?") from None
    except Exception as exc:  # noqa: BLE001 - another service answered: its bytes decode as anything (3 EiB frames)
        raise ClusterError(f"{scheduler} does not answer as a Dask scheduler ({type(exc).__name__}); is another "
                           "service listening there?") from None
    client.autoenc_timeout = timeout  # how long a study waits for a worker to come back once all are gone
    with client, _quiet_lost_results():
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise ClusterError(f"the Dask scheduler at {scheduler} has no workers after {timeout:g} s; start some "
                               f"with `dask worker {scheduler}`") from None
        yield client


class _LostResultFilter(logging.Filter):
    """Drops what distributed logs when a worker dies holding a finished result ("Couldn't gather ... keys", an
    abandoned gather's ``AllExit``): the study says it in one line of its own, or waits for another worker."""

    def filter(self, record):
        text = record.getMessage()
        return "Couldn't gather" not in text and "AllExit" not in text


@contextlib.contextmanager
def _quiet_lost_results():
    loggers, quiet = [logging.getLogger("distributed.client"), logging.getLogger("asyncio")], _LostResultFilter()
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def _exit_with_parent():
    """Exit this local worker when the study process that started it dies: it would train for nobody."""
    if any(t.name == "autoenc-parent-watch" for t in threading.enumerate()):
        return
    parent = os.getppid()
    # A worker draws no bars: a thread lock for tqdm instead of its process-shared semaphore, which a worker stopped
    # with the study would leave registered (a "leaked semaphore" warning at the study's exit).
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="autoenc-parent-watch", daemon=True).start()


def _local(index, fn, *args):
    _exit_with_parent()
    with one_thread():
        return index, fn(*args)


def _warm(modules):
    _exit_with_parent()
    for name in modules:
        __import__(name)
    return os.getpid()


class warm_workers:
    """Start the local workers and import ``modules`` in them while this process does something else.

    A worker's first task otherwise waits for the worker to start and to import torch and the training code (about
    2 s of a 20 s study). ``with warm_workers(n_jobs, modules): ...`` starts them in a thread, on the same reusable
    executor that :func:`run_tasks` then finds, and waits for them when the block ends; a block that raises stops
    them again (a refused study leaves no workers behind).
    """

    def __init__(self, n_jobs, modules=()):
        self.n_jobs, self.modules, self.thread, self.pids = n_jobs, tuple(modules), None, []

    def _start(self):
        from joblib import Parallel, delayed

        with contextlib.suppress(Exception):  # a worker that cannot start fails the first real task, loudly
            self.pids = Parallel(n_jobs=self.n_jobs)(delayed(_warm)(self.modules) for _ in range(self.n_jobs))

    def __enter__(self):
        if self.n_jobs > 1:
            self.thread = threading.Thread(target=self._start, name="autoenc-warm-workers", daemon=True)
            self.thread.start()
        return self

    def wait(self):
        """Wait until the workers have started (or failed to)."""
        if self.thread is not None:
            self.thread.join()

    def __exit__(self, kind, value, tb):
        self.wait()
        if kind is not None and self.thread is not None:
            release_workers(kill=True)
        return False


def _remote(index, fn, *args):
    with one_thread():
        return index, fn(*args)


def run_tasks(tasks, n_jobs=1, client=None, share=None):
    """Run every :class:`Task`, calling its ``on_done`` in this process as each completes (completion order).

    Parameters
    ----------
    tasks : list of Task
        Long tasks first: the short ones fill the gaps at the end.
    n_jobs : int
        Local worker processes; 1 runs every task here, in order.
    client : distributed.Client, optional
        Run on this Dask cluster instead (through joblib's Dask backend).
    share : DataShare, optional
        Local workers get the tasks' data through it: one memory-mapped copy for all (see ``_shared_data``).
    """
    if client is not None:
        return _run_on_dask(tasks, client)
    if n_jobs == 1:
        for task in tasks:
            with one_thread():
                output = task.fn(*task.args)
            task.on_done(output)
        return
    from joblib import Parallel, delayed

    here, tasks = [t for t in tasks if t.here], [t for t in tasks if not t.here]
    # The workers get an index, not the handler: handlers write files and stay in this process.
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    calls = [delayed(_local)(i, t.fn, *(t.args if share is None else share.args(t.args)))  # shared here, at once
             for i, t in enumerate(tasks)]
    outputs = parallel(calls)  # dispatching starts now, on joblib's thread
    try:
        run_tasks(here, 1)  # one at a time: one task's temporaries beside the workers' memory, not several
        for index, output in outputs:
            tasks[index].on_done(output)
    except BaseException:  # Ctrl-C, SIGTERM, a full disk: stop the workers now, and say nothing of unread outputs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs.close()
        release_workers(kill=True)  # shut down, not abandoned: no leaked-semaphore warning at exit
        raise


def run_in_threads(tasks, n_jobs=None):
    """Every :class:`Task` on up to ``n_jobs`` threads of this process (default: every core), each ``on_done`` in
    the calling thread as its task completes; each task on one thread of torch, OpenMP and the BLAS.

    torch's layers, the BLAS and scikit-learn's neighbour searches run without Python's lock, so threads use the
    cores a study's workers have left idle, with no data copied and nothing imported again; the rest (model
    loading, pandas, argument checks) takes turns. Measured on the default study's finish with both of 2 cores
    free: 0.78 s on two threads, 1.02 s on one (worker processes: 0.57 s); with one core free, 5-10% slower.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from autoenc.validation import check_int

    n_jobs = min(len(tasks), default_jobs() if n_jobs is None else check_int(n_jobs, "n_jobs", minimum=1))
    if n_jobs <= 1:
        return run_tasks(tasks, 1)
    with one_thread(), ThreadPoolExecutor(n_jobs, thread_name_prefix="autoenc-here") as pool:
        futures = {pool.submit(_alone, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                futures[future].on_done(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _alone(task):
    """A task on a thread of the pool, on one thread of its own: OpenMP and MKL keep their thread counts per thread,
    and a new thread starts with every core (torch's matrix products would use them all), whatever this process
    set."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # this thread's OpenMP and MKL; the process-wide count is one already (one_thread)
    with threadpool_limits(1):
        return task.fn(*task.args)


def _run_on_dask(tasks, client):
    """Every task goes to the cluster, however few threads it has; the queue is cancelled if this process stops.

    (joblib's Dask backend runs tasks in the calling process when the cluster counts a single thread.) A task
    left queued when the study process dies is released with its client by the scheduler. A cluster left without
    workers for the client's timeout (``dask_client``'s, else 30 s), or that cannot finish a task, is a
    :class:`ClusterError`: what finished is committed already.
    """
    from distributed import as_completed

    futures = [client.submit(_remote, i, t.fn, *t.args, pure=False, key=f"autoenc-task-{i}-{os.getpid()}-"
                             f"{time.monotonic_ns()}") for i, t in enumerate(tasks)]
    timeout = getattr(client, "autoenc_timeout", 30.0)
    pending = as_completed(futures)
    watch = _WorkerWatch(client, timeout)
    try:
        while not pending.is_empty():
            batch = pending.next_batch(block=False)
            for future in batch:
                index, output = _output(future, client, watch)
                tasks[index].on_done(output)
            if not batch:
                watch.check()
                time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):  # the cluster may be gone: nothing left to cancel there
            client.cancel([f for f in futures if not f.done()])


def _where(client):
    return getattr(client, "scheduler", None) and client.scheduler.address or "the Dask cluster"


def _output(future, client, watch):
    """A finished future's output; a task the cluster gave up on (its workers died running it) is one line.

    Never waits unwatched: a future reported finished goes back to pending when the worker holding its result dies
    before handing it over, and then only another worker can finish it.
    """
    while True:
        try:
            return future.result(timeout=watch.every)
        except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError (scheduler gone), a lost connection
            if isinstance(exc, TimeoutError) and future.status != "error":
                watch.check()  # pending again: raises once the cluster has had no worker for its timeout
                continue
            if future.status == "error" and not _is_cluster_failure(exc):
                raise  # the task itself failed: its own error
            raise ClusterError(f"the Dask cluster at {_where(client)} could not finish a task ({type(exc).__name__}"
                               f": {str(exc).splitlines()[0] if str(exc) else 'no detail'}); finished runs are saved,"
                               " run the same command again to resume") from None


def _is_cluster_failure(exc):
    return type(exc).__name__ in ("KilledWorker", "CancelledError", "CommClosedError", "FutureCancelledError")


class _WorkerWatch:
    """Raises :class:`ClusterError` once the cluster has had no worker (or no answer) for ``timeout`` seconds."""

    def __init__(self, client, timeout, every=0.5):
        self.client, self.timeout, self.every = client, timeout, every
        self.alone_since, self.last = None, 0.0

    def check(self):
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        try:
            workers = len(self.client.nthreads())
        except Exception:  # noqa: BLE001 - the scheduler itself is gone or not answering
            workers = 0
        if workers:
            self.alone_since = None
            return
        self.alone_since = self.alone_since or now
        if now - self.alone_since >= self.timeout:
            raise ClusterError(f"the Dask cluster at {_where(self.client)} has had no worker for {self.timeout:g} s "
                               "(all lost); finished runs are saved, start workers and run the same command again to "
                               "resume")


def release_workers(kill=False, wait=True):
    """Stop joblib's idle local workers: each holds its own torch, and the study is done with them (``kill``: busy
    ones too, and idle ones at once, without their interpreter's teardown: 0.07 s against 0.6 s for two workers
    that have trained, measured; ``wait=False``: without waiting for them to exit).

    The executor joblib made is shut down as it is: ``get_reusable_executor()`` with other arguments than joblib's
    would first replace it with a new one (0.9 s here), only to shut that down.
    """
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=wait, kill_workers=kill)
