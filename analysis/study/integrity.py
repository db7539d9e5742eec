"""Trust nothing read back from a study folder: content hashes of files and arrays, and safe child paths.

- :func:`file_digest` and :func:`array_fingerprint` are SHA-256 hex digests, streamed (no copy of a large file or
  memory-mapped array is made). A fingerprint depends on the arrays' content only (dtype, shape, values), never on
  the path they were read from.
- :func:`folder_checksums` records the size and digest of some files of a folder; :func:`verify_checksums` lists,
  in words, every file that is missing or changed since.
- :func:`safe_child` is the only way to turn a name read from a file (a run id in ``result.json``) into a path: it
  refuses anything but one plain path component, so a folder written by someone else cannot point outside itself.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

__all__ = ["array_fingerprint", "file_digest", "folder_checksums", "safe_child", "safe_relative",
           "verify_checksums"]

_CHUNK = 1 << 20


def file_digest(path):
    """SHA-256 of the file's bytes as 64 hex digits, read in 1 MiB chunks.

    Examples
    --------
    >>> file_digest(tmp_path / "empty")  # doctest: +SKIP
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def array_fingerprint(*arrays):
    """SHA-256 content hash (64 hex digits) of one or more arrays: their number, dtypes, shapes and values.

    Equal content gives the equal fingerprint wherever it was read from (a copy under another path, a memory map);
    any change of a value, the dtype, the shape or the order of the arrays changes it. Values are hashed in
    little-endian byte order, so the fingerprint is the same on every platform; ``-0.0`` and ``0.0`` (and NaNs with
    different payloads) differ, as their bytes do.

    Parameters
    ----------
    *arrays : array-like
        Numeric or boolean; ``None`` entries (an absent label vector) are hashed as absent.

    Returns
    -------
    str

    Examples
    --------
    >>> X = np.arange(6.0).reshape(2, 3)
    >>> array_fingerprint(X) == array_fingerprint(X.copy()) != array_fingerprint(X * 100 + 5)
    True
    """
    h = hashlib.sha256(f"arrays:{len(arrays)}".encode())
    for i, a in enumerate(arrays):
        if a is None:
            h.update(b"|none")
            continue
        arr = np.asarray(a)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"arrays[{i}] must be numeric or boolean, got dtype {arr.dtype}")
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        h.update(f"|{arr.dtype.str}{arr.shape}".encode())
        if arr.size == 0:
            continue
        rows = arr.reshape(len(arr), -1) if arr.ndim > 1 else arr.reshape(1, -1)
        step = max(1, _CHUNK // max(1, rows[:1].nbytes))
        for start in range(0, len(rows), step):  # chunked: a memory-mapped or strided array is never copied whole
            h.update(np.ascontiguousarray(rows[start : start + step]).data)
    return h.hexdigest()


def safe_child(root, name):
    """``root / name`` for a ``name`` that is one plain path component; raise ValueError for anything else.

    Refused: non-strings, ``""``, ``"."``, ``".."``, names holding ``/``, ``\\``, ``:`` (Windows drives and
    streams), NUL or other control characters, and a child that exists as a symbolic link (it could lead anywhere).

    Parameters
    ----------
    root : str or PathLike
    name : str
        Typically read from a file, such as a run id.

    Returns
    -------
    Path

    Examples
    --------
    >>> safe_child("runs/study/models", "ae-k8-h64-s0").as_posix()
    'runs/study/models/ae-k8-h64-s0'
    >>> safe_child("models", "../../elsewhere")
    Traceback (most recent call last):
    ValueError: unsafe name '../../elsewhere': a name read from a file must be one plain path component (...)
    """
    if not isinstance(name, str):
        raise ValueError(f"unsafe name {name!r}: expected a string, got {type(name).__name__}")
    why = None
    if name in ("", ".", ".."):
        why = "it is empty or a relative reference"
    elif any(c in name for c in "/\\:"):
        why = "it holds a path separator or drive"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        why = "it holds a control character"
    if why is not None:
        raise ValueError(f"unsafe name {name!r}: a name read from a file must be one plain path component ({why})")
    child = Path(root) / name
    if child.is_symlink():
        raise ValueError(f"unsafe name {name!r}: {str(child)!r} is a symbolic link")
    return child


def safe_relative(root, relpath):
    """``root / relpath`` for a ``/``-separated relative path whose every component passes :func:`safe_child`.

    Examples
    --------
    >>> safe_relative("study", "models/ae-k8-h64-s0/config.json").as_posix()
    'study/models/ae-k8-h64-s0/config.json'
    """
    if not isinstance(relpath, str):
        raise ValueError(f"unsafe path {relpath!r}: expected a string, got {type(relpath).__name__}")
    path = Path(root)
    for part in relpath.split("/"):
        path = safe_child(path, part)
    return path


def folder_checksums(folder, names):
    """Size and SHA-256 of each named file of ``folder``, to store beside them and check with :func:`verify_checksums`.

    Parameters
    ----------
    folder : str or PathLike
    names : iterable of str
        ``/``-separated paths relative to ``folder`` (each component checked by :func:`safe_child`).

    Returns
    -------
    dict
        ``{name: {"bytes": int, "sha256": str}}``, JSON-ready.

    Raises
    ------
    FileNotFoundError
        If a named file is missing.
    ValueError
        If a name is not a safe relative path.

    Examples
    --------
    >>> folder_checksums(run_folder, ["config.json", "weights.safetensors"])  # doctest: +SKIP
    {'config.json': {'bytes': 312, 'sha256': '9f2c...'}, 'weights.safetensors': {...}}
    """
    out = {}
    for name in names:
        path = safe_relative(folder, name)
        if not path.is_file():
            raise FileNotFoundError(f"cannot checksum {str(path)!r}: no such file")
        out[name] = {"bytes": os.stat(path).st_size, "sha256": file_digest(path)}
    return out


def verify_checksums(folder, checksums):
    """Every way the files of ``folder`` differ from ``checksums`` (as written by :func:`folder_checksums`).

    Parameters
    ----------
    folder : str or PathLike
    checksums : dict
        Read back from a file, so it is checked too: a malformed entry or an unsafe name is a problem, never read.

    Returns
    -------
    list of str
        One sentence per problem, naming the file; empty when every file is present and unchanged. A size change
        is reported without hashing the file.

    Examples
    --------
    >>> verify_checksums(run_folder, {"weights.safetensors": {"bytes": 10, "sha256": "00"}})  # doctest: +SKIP
    ["weights.safetensors is 4620 bytes, expected 10 (truncated or replaced)"]
    """
    if not isinstance(checksums, dict) or not checksums:
        return [f"the checksums of {str(folder)!r} are missing or malformed"]
    problems = []
    for name, entry in checksums.items():
        try:
            path = safe_relative(folder, name)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if not (isinstance(entry, dict) and type(entry.get("bytes")) is int and isinstance(entry.get("sha256"), str)):
            problems.append(f"{name}: its checksum entry is malformed")
            continue
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        size = os.stat(path).st_size
        if size != entry["bytes"]:
            problems.append(f"{name} is {size} bytes, expected {entry['bytes']} (truncated or replaced)")
        elif file_digest(path) != entry["sha256"]:
            problems.append(f"{name} has changed (its SHA-256 differs from the one recorded)")
    return problems
