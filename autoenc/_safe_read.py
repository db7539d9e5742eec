"""Reads that trust nothing about the file: regular files only (a FIFO or a device never blocks a read), a size
cap before any byte is read, array headers checked before any allocation, decompression bounded.

Each failure is a ``ValueError`` naming the file and what is wrong, so a caller can treat a hostile or damaged file
like any other damaged one.
"""
from __future__ import annotations

import gzip
import math
import os
import stat
import zipfile

import numpy as np

__all__ = ["check_npy", "check_npy_header", "check_npz", "gunzip_bounded", "read_bounded", "regular_file"]

_CHUNK = 1 << 20


def regular_file(path):
    """Whether ``path`` is a regular file (following links); a FIFO, socket or device is not, and is never opened."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_bounded(path, max_bytes, *, what="file"):
    """The bytes of the regular file ``path``, refused unread when larger than ``max_bytes``.

    Opened without blocking (a FIFO in the file's place would otherwise wait for a writer forever) and checked on
    the open descriptor, so a file swapped in between cannot slip through.

    Raises
    ------
    FileNotFoundError
        If nothing is there.
    ValueError
        If it is not a regular file, or is larger than ``max_bytes``.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file (a FIFO, socket, device or folder); refused unread")
        if info.st_size > max_bytes:
            raise ValueError(f"{path} is {info.st_size} bytes, more than a {what} can be ({max_bytes}); refused "
                             "unread")
        chunks, total = [], 0
        while block := os.read(fd, min(_CHUNK, max_bytes + 1 - total)):
            chunks.append(block)
            total += len(block)
            if total > max_bytes:  # it grew since fstat
                raise ValueError(f"{path} grew past {max_bytes} bytes while being read; refused")
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_npy_header(f, name, max_bytes):
    """Read an .npy header from the open binary file ``f`` and refuse arrays over ``max_bytes`` or of object dtype.

    Returns ``(shape, dtype)``; ``f`` is left at the start of the data. Nothing is allocated from the header's claims.
    """
    try:
        version = np.lib.format.read_magic(f)
        header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                  np.lib.format.read_array_header_2_0)(f, max_header_size=10000)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ValueError(f"could not read {name}: it is not a .npy array ({exc})") from None
    shape, _, dtype = header
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects (dtype {dtype}); only numeric arrays are read")
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > max_bytes:
        raise ValueError(f"{name}: its header claims shape {shape} of {dtype} ({_size(n_bytes)}), more than the "
                         f"{_size(max_bytes)} allowed; refused before allocating")
    return shape, dtype


def check_npz(path, max_bytes, *, file_bytes=None):
    """Check every member header of the .npz ``path`` against ``max_bytes`` (their sum too) before loading it.

    ``file_bytes``: the archive's own size cap (default ``max_bytes``). Each member's data must also fit the file:
    an uncompressed member claiming more bytes than it stores is refused, a compressed one is bounded by the cap.
    """
    if not regular_file(path):
        raise ValueError(f"{path} is not a regular file; refused unread")
    size = os.path.getsize(path)
    if size > (max_bytes if file_bytes is None else file_bytes):
        raise ValueError(f"{path} is {_size(size)}, more than the {_size(max_bytes)} allowed; refused unread")
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    shape, dtype = check_npy_header(member, f"{path}:{info.filename}", max_bytes)
                    need = math.prod(shape) * dtype.itemsize
                    if need > info.file_size:
                        raise ValueError(f"{path}:{info.filename} claims shape {shape} of {dtype} ({_size(need)}) "
                                         f"but stores {_size(info.file_size)}; refused before allocating")
                    total += need
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ValueError(f"could not read {path}: it is not a .npz archive ({exc})") from None
    if total > max_bytes:
        raise ValueError(f"{path} holds {_size(total)} of arrays, more than the {_size(max_bytes)} allowed")


def check_npy(path, max_bytes):
    """Check the .npy file ``path``: a regular file whose header's array fits ``max_bytes`` and the file."""
    if not regular_file(path):
        raise ValueError(f"{path} is not a regular file; refused unread")
    with open(path, "rb") as f:
        shape, dtype = check_npy_header(f, str(path), max_bytes)
        stored = os.fstat(f.fileno()).st_size - f.tell()
    need = math.prod(shape) * dtype.itemsize
    if need > stored:
        raise ValueError(f"{path} is truncated: its header claims shape {shape} of {dtype} ({_size(need)}), the "
                         f"file holds {_size(stored)}; refused before allocating")


def gunzip_bounded(path, max_bytes):
    """The decompressed bytes of the gzip file ``path``, refused as soon as they pass ``max_bytes``."""
    chunks, total = [], 0
    with gzip.open(path, "rb") as f:
        while block := f.read(min(_CHUNK, max_bytes + 1 - total)):
            chunks.append(block)
            total += len(block)
            if total > max_bytes:
                raise ValueError(f"{path} inflates to more than {_size(max_bytes)}; refused")
    return b"".join(chunks)


def _size(n):
    """``n`` bytes in words: ``"64 bytes"``, ``"3.55 PiB"``."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
