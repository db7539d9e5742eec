"""Start a study's local workers the moment the command starts, before it imports anything heavy.

A local worker spends about 1.5 s starting and importing torch and the training code before its first task; the
study command spends about 3 s importing those and the rest in its own process. Started first, the workers import
while the command does, instead of after it (about 1.5 s of a 25 s default study here). Only this module's light imports
come first: the arguments are read as plainly as possible here, and a command that asks for help, a cluster or a
single job starts nothing. The study later finds the same workers (joblib's reusable executor).
"""
from __future__ import annotations

import os
import threading

# analysis.study.runner.WORKER_MODULES, written out: importing it would import everything first
WORKER_MODULES = ("analysis.study.training", "analysis.study.references")


def _warm(modules, parent):
    """Import ``modules`` in a worker; a worker whose command has already left (refused) leaves too."""
    for name in modules:
        if os.getppid() != parent:
            os._exit(1)
        __import__(name)
    if os.getppid() != parent:
        os._exit(1)
    from analysis.study._parallel import _exit_with_parent

    _exit_with_parent()
    return os.getpid()


def requested_jobs(argv):
    """The local worker processes a study command line asks for (``--jobs N``, default every core), or 1 where it
    asks for none: help, a Dask scheduler, or anything this plain reading cannot tell."""
    jobs = None
    for i, arg in enumerate(argv):
        if arg in ("-h", "--help") or arg.startswith("--scheduler") or arg == "--":
            return 1
        if arg == "--jobs" or arg.startswith("--jobs="):
            value = arg.partition("=")[2] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            try:
                jobs = int(value)
            except ValueError:
                return 1  # the parser will say what is wrong
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(jobs, 1)


def start_workers(argv):
    """Start the workers in a background thread when ``argv`` asks for more than one; returns the thread or None."""
    jobs = requested_jobs(argv)
    if jobs <= 1:
        return None

    def start():
        try:
            from joblib import Parallel, delayed

            Parallel(n_jobs=jobs)(delayed(_warm)(WORKER_MODULES, os.getpid()) for _ in range(jobs))
        except Exception:  # noqa: BLE001 - an early start is only a head start: the study starts its own workers
            pass

    thread = threading.Thread(target=start, name="autoenc-early-workers", daemon=True)
    thread.start()
    return thread


def leave(status, early, whole_process=True):
    """End the study command with ``status``, without the seconds of an interpreter's teardown.

    A refused command (status 2) first stops the workers it started early, however far they got (killed as they
    appear, which ends the early call). Then the local workers are stopped as joblib stops them, and a command that
    succeeded leaves once the exit handlers have run (joblib's and multiprocessing's clean-up), its output flushed: every file is written and closed by now, and tearing down a heap
    that holds torch, pandas and the study's tables took 0.9-1.7 s of a 27 s study here. Other statuses exit as
    usual. Only where the process is the command's own (``whole_process``); otherwise the status is returned.
    """
    import signal
    import sys

    while early is not None and early.is_alive():
        for pid in _workers() if status == 2 else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        early.join(timeout=0.05)
    if not whole_process:
        return status
    reusable = sys.modules.get("joblib.externals.loky.reusable_executor")
    if reusable is not None and reusable._executor is not None:
        reusable._executor.shutdown(wait=True, kill_workers=status == 2)
    if status != 0:  # joblib's locks are released at a normal exit only (a killed pool leaves some behind)
        sys.exit(status)
    import atexit

    atexit._run_exitfuncs()  # what a normal exit runs (joblib's and multiprocessing's clean-up), minus the teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _workers():
    """The PIDs of this process's joblib (loky) workers, read from /proc."""
    me, out = str(os.getpid()), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                ppid = stat.read().rpartition(")")[2].split()[1]
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                loky = b"popen_loky" in cmdline.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and loky:
            out.append(int(entry))
    return out
