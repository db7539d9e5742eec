"""One study process per folder: an OS-level exclusive lock on ``<folder>/.lock``, naming its holder.

Where ``fcntl`` exists (Linux, macOS, the BSDs) the lock is ``flock(LOCK_EX | LOCK_NB)`` on the open lock file:
the kernel drops it when the holder exits, however it exits (SIGKILL and power loss included), so a lock is never
stale. The file itself stays in the folder between studies (removing it would let two processes lock two different
files of the same name); it holds the PID and host of the current holder, and nothing when free.

Where ``fcntl`` is missing (Windows), the lock is the creation of ``.lock`` with ``O_CREAT | O_EXCL``, holding the
holder's PID and host, removed on release. A lock file left by a process that died without releasing it is taken
over when its PID is no longer running on this host. Limitation: if that PID has since been reused by an unrelated
process, the folder reads as locked until the file is deleted by hand (the error says so).

Network file systems: ``flock`` over NFS is emulated with byte-range locks on Linux (NFSv4) and may be a no-op on
older setups; run one study per folder there.
"""
from __future__ import annotations

import errno
import os
import socket
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["LOCK_FILE", "StudyLock", "StudyLockedError"]

LOCK_FILE = ".lock"
_FRESH_SECONDS = 10.0  # an unreadable O_EXCL lock file younger than this may be one whose holder is still writing
_HELD = set()  # the locks this process holds (kept alive until released): closed in a forked child
_GUARD = threading.Lock()


class StudyLockedError(RuntimeError):
    """The study folder is locked by another process (or another :class:`StudyLock` in this one).

    A RuntimeError rather than a ValueError: nothing is wrong with the arguments, the folder is busy. ``pid`` is
    the holder's PID (None when unknown), ``host`` its host name; ``str(error)`` is one line for a command line.
    """

    def __init__(self, message, pid=None, host=None):
        super().__init__(message)
        self.pid, self.host = pid, host


def _after_fork_in_child():
    # The child shares the parent's open file description: closing its copy keeps the lock the parent's alone.
    global _GUARD
    _GUARD = threading.Lock()  # another thread may have held it at the fork
    for lock in list(_HELD):
        lock._forget()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _parse(text):
    """``(pid, host)`` from a lock file's text ``"<pid> <host>\\n"``; ``(None, None)`` when unreadable."""
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return None, None
    return int(parts[0]), (parts[1] if len(parts) > 1 else None)


def _pid_alive(pid):
    """Whether a process with this PID runs on this host (True when unsure: never steal a live lock)."""
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.GetLastError() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StudyLock:
    """Exclusive lock on a study folder, held from :meth:`acquire` to :meth:`release` (or the process's end).

    Parameters
    ----------
    folder : str or PathLike
        The study folder; created if missing. The lock file is ``folder / ".lock"``.

    Raises
    ------
    StudyLockedError
        From :meth:`acquire` (and ``with``), at once, when another process or another ``StudyLock`` of this
        process holds the folder; the message names the holder's PID.
    OSError
        When the lock file cannot be created (read-only folder, a file in the folder's place); the message names it.

    Examples
    --------
    >>> with StudyLock(tmp_path / "study"):  # doctest: +SKIP
    ...     StudyLock(tmp_path / "study").acquire()
    Traceback (most recent call last):
    StudyLockedError: study folder '.../study' is in use by process 4242; ...
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd = None
        self._mode = None

    @property
    def held(self):
        """Whether this object holds the lock."""
        return self._fd is not None

    def __repr__(self):
        return f"StudyLock({str(self.folder)!r}, held={self.held})"

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

    @classmethod
    def check_free(cls, folder):
        """Raise :class:`StudyLockedError` now if an existing ``folder`` is locked (nothing is created): lets a
        command refuse before slow work of its own, such as reading the data."""
        if Path(folder).is_dir() and (Path(folder) / LOCK_FILE).is_file():
            cls(folder).acquire().release()

    def acquire(self):
        """Take the lock or raise :class:`StudyLockedError` at once (never waits); returns ``self``."""
        if self.held:
            raise RuntimeError(f"{self!r} is already held by this object")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot create study folder {str(self.folder)!r}: {exc.strerror}") from None
        with _GUARD:
            if fcntl is not None:
                self._acquire_flock()
            else:
                self._acquire_exclusive()
            _HELD.add(self)
        return self

    def release(self):
        """Give the lock up (nothing happens when it is not held)."""
        with _GUARD:
            fd, mode = self._fd, self._mode
            if fd is None:
                return
            self._fd = self._mode = None
            _HELD.discard(self)
            if mode == "flock":
                try:
                    os.ftruncate(fd, 0)  # free: no PID to mislead a reader
                except OSError:
                    pass  # a stale PID line is harmless: the lock itself goes with the descriptor
                os.close(fd)  # drops the flock
                return
            os.close(fd)  # first: Windows cannot delete an open file
            if self._holder() == self._identity():
                try:
                    os.unlink(self.path)
                except OSError:
                    pass

    def _forget(self):
        """In a forked child: drop this copy of the descriptor without touching the file or the parent's lock."""
        fd, self._fd, self._mode = self._fd, None, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _identity(self):
        return os.getpid(), socket.gethostname()

    def _open_error(self, exc):
        return type(exc)(exc.errno, f"cannot create the lock file {str(self.path)!r}: {exc.strerror}")

    def _locked(self, pid, host):
        here = socket.gethostname()
        who = "an unknown process" if pid is None else f"process {pid}"
        if host and host != here:
            who += f" on host {host}"
        hint = "wait for it to finish or use another folder"
        if fcntl is None:
            hint += f" (if no such process runs, delete {str(self.path)!r})"
        return StudyLockedError(f"study folder {str(self.folder)!r} is in use by {who}; {hint}", pid, host)

    def _acquire_flock(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise self._open_error(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            finally:
                os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._locked(*_parse(text)) from None
            raise self._open_error(exc) from None
        try:
            os.ftruncate(fd, 0)
            pid, host = self._identity()
            os.pwrite(fd, f"{pid} {host}\n".encode(), 0)
        except OSError as exc:  # a full disk must not keep the folder locked by nobody
            os.close(fd)
            raise self._open_error(exc) from None
        self._fd, self._mode = fd, "flock"

    def _acquire_exclusive(self):
        for _ in range(3):  # a stale file removed by another process in between: try again
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                self._clear_if_stale()
                continue
            except OSError as exc:
                raise self._open_error(exc) from None
            pid, host = self._identity()
            try:
                os.write(fd, f"{pid} {host}\n".encode())
            except OSError as exc:
                os.close(fd)
                os.unlink(self.path)
                raise self._open_error(exc) from None
            self._fd, self._mode = fd, "exclusive"
            return
        raise self._locked(*self._holder())

    def _holder(self):
        try:
            return _parse(self.path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None, None

    def _clear_if_stale(self):
        """Remove an O_EXCL lock file whose holder is gone; raise StudyLockedError when it may still run."""
        pid, host = self._holder()
        if pid is None:
            try:
                age = time.time() - os.stat(self.path).st_mtime
            except FileNotFoundError:
                return
            if age < _FRESH_SECONDS:  # its holder may not have written its PID yet
                raise self._locked(None, None)
        elif host != socket.gethostname() or _pid_alive(pid):
            raise self._locked(pid, host)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
