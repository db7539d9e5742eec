"""The study folder lock: one holder at a time, named in the refusal, gone when its process is (even SIGKILLed)."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import analysis.study.lock as lock_module
from analysis.study.lock import LOCK_FILE, StudyLock, StudyLockedError

LOCK_PY = Path(lock_module.__file__)

# A separate process holding the lock: loads lock.py by path (no heavy package import), says "locked", then holds
# the lock until its stdin closes.
HOLDER = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("lock", {str(LOCK_PY)!r})
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
if len(sys.argv) > 2:
    lock.fcntl = None
held = lock.StudyLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def _spawn_holder(folder, *extra):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture(params=["flock", "exclusive"])
def mode(request, monkeypatch):
    """Both implementations: flock where fcntl exists, the O_EXCL lock file where it does not (Windows)."""
    if request.param == "exclusive":
        monkeypatch.setattr(lock_module, "fcntl", None)
    return request.param


def test_a_second_lock_in_this_process_is_refused_naming_our_pid(tmp_path, mode):
    folder = tmp_path / "study"
    with StudyLock(folder) as held:
        assert held.held and (folder / LOCK_FILE).read_text().split() == [str(os.getpid()), socket.gethostname()]
        with pytest.raises(StudyLockedError, match=f"study folder '{folder}' is in use by process {os.getpid()}; "
                                                   "wait for it to finish or use another folder") as info:
            StudyLock(folder).acquire()
        assert info.value.pid == os.getpid() and "\n" not in str(info.value)
        assert isinstance(info.value, RuntimeError)
    assert not held.held
    with StudyLock(folder):  # free again once released
        pass


def test_release_on_error_and_release_twice(tmp_path, mode):
    folder = tmp_path / "study"
    lock = StudyLock(folder)
    with pytest.raises(KeyError):
        with lock:
            raise KeyError("boom")
    assert not lock.held
    lock.release()  # nothing held: nothing happens
    lock.acquire()
    with pytest.raises(RuntimeError, match="already held by this object"):
        lock.acquire()
    lock.release()
    StudyLock(folder).acquire().release()


def test_a_lock_held_by_another_process_names_its_pid_and_is_freed_when_it_exits(tmp_path, mode):
    folder = tmp_path / "study"
    holder = _spawn_holder(folder, *(["exclusive"] if mode == "exclusive" else []))
    try:
        with pytest.raises(StudyLockedError, match=f"is in use by process {holder.pid};") as info:
            StudyLock(folder).acquire()
        assert info.value.pid == holder.pid and info.value.host == socket.gethostname()
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    with StudyLock(folder):
        pass


def test_a_sigkilled_holder_leaves_no_lock_behind(tmp_path, mode):
    folder = tmp_path / "study"
    holder = _spawn_holder(folder, *(["exclusive"] if mode == "exclusive" else []))
    with pytest.raises(StudyLockedError, match=f"process {holder.pid}"):
        StudyLock(folder).acquire()
    holder.kill()
    assert holder.wait(timeout=30) == -signal.SIGKILL
    holder.stdin.close()
    holder.stdout.close()
    with StudyLock(folder) as lock:  # flock: dropped by the kernel; O_EXCL: the dead PID's file is taken over
        assert (folder / LOCK_FILE).read_text().split()[0] == str(os.getpid()) and lock.held


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    folder = tmp_path / "study"
    lock = StudyLock(folder).acquire()
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: say it runs (its fork handlers are done), wait for the parent, exit without cleanup
        os.close(write)
        os.write(ready_write, b"1")
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    os.close(ready_write)
    try:
        assert os.read(ready_read, 1) == b"1"
        lock.release()
        with StudyLock(folder):  # the child still lives, with its copy of the descriptor closed at fork
            pass
    finally:
        os.close(write)
        os.close(ready_read)
        os.waitpid(pid, 0)


def test_exclusive_mode_refuses_a_live_or_foreign_holder_and_takes_over_a_dead_one(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "fcntl", None)
    folder = tmp_path / "study"
    folder.mkdir()
    file = folder / LOCK_FILE
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    file.write_text(f"{int(dead.stdout)} {socket.gethostname()}\n")  # that process has exited
    with StudyLock(folder):
        assert file.read_text().split()[0] == str(os.getpid())
    assert not file.exists()  # removed on release
    file.write_text(f"{os.getppid()} {socket.gethostname()}\n")  # alive
    with pytest.raises(StudyLockedError, match=f"process {os.getppid()}; .*if no such process runs, delete"):
        StudyLock(folder).acquire()
    file.write_text("12345 another-host\n")  # cannot tell whether it runs: never stolen
    with pytest.raises(StudyLockedError, match="process 12345 on host another-host"):
        StudyLock(folder).acquire()
    file.write_text("")  # its holder may still be writing its PID
    with pytest.raises(StudyLockedError, match="in use by an unknown process"):
        StudyLock(folder).acquire()
    os.utime(file, (0, 0))  # an unreadable file from long ago: stale
    with StudyLock(folder):
        pass


def test_a_folder_that_cannot_be_created_is_an_os_error_naming_it(tmp_path, mode):
    blocker = tmp_path / "study"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(OSError, match=f"cannot create study folder '{blocker}'"):
        StudyLock(blocker).acquire()
    with pytest.raises(OSError, match=f"cannot create study folder '{blocker / 'sub'}'"):
        StudyLock(blocker / "sub").acquire()
