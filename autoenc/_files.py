"""Readers for user data files (.npy, .npz, CSV, MNIST-style IDX): raw arrays out; ``data.load_dataset``
validates them. A CSV column named like a label but loaded as a feature is warned about."""
from __future__ import annotations

import csv
import gzip
import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._safe_read import check_npy, check_npz

def _memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return 64 << 30


# No data set larger than this machine's memory can be studied on it: a header claiming more is refused unread.
MAX_DATA_BYTES = _memory_bytes()
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(r"idx\d[-.]ubyte(\.gz)?$")
_FILE_TYPES = ".npy, .npz, .csv or MNIST-style IDX (*-images-idx3-ubyte[.gz])"
# CSV headers that usually hold labels; loaded as a feature, such a column is learned and reconstructed like the rest.
_LABEL_NAMES = ("label", "labels", "target", "targets", "class", "classes", "y")


def _kind(path):
    if _IDX_NAME.search(path.name):
        return "idx"
    return {".npy": "npy", ".npz": "npz", ".csv": "csv"}.get(path.suffix.lower())


def _read_file(path, label_column):
    """``(X, y, name, image_shape)`` as read from a supported file (``data._as_path`` checked it); unvalidated."""
    kind = _kind(path)
    if label_column is not None and kind != "csv":
        raise ValueError(f"label_column applies to .csv files only, not {path}")
    name, image_shape, y = Path(path.name.removesuffix(".gz")).stem, None, None
    try:
        if kind == "npy":
            check_npy(path, MAX_DATA_BYTES)  # a header's claims are checked before anything is allocated
            X = np.load(path, allow_pickle=False)
        elif kind == "npz":
            check_npz(path, MAX_DATA_BYTES)
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.files)
                if "X" not in keys and len(keys) != 1:
                    raise ValueError(f"{path} holds arrays {keys}; expected one named 'X' (and optionally 'y')")
                X = archive["X" if "X" in keys else keys[0]]
                y = archive["y"] if "X" in keys and "y" in keys else None
        elif kind == "csv":
            X, y = _read_csv(path, label_column)
            if label_column is None:
                _warn_label_like(path, X)
        else:
            X, y, image_shape = _read_idx_pair(path)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"could not read {path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(str(exc) if str(path) in str(exc) else f"could not read {path}: {exc}") from None
    return X, y, name, image_shape


def _warn_label_like(path, X):
    """Warn when a CSV column loaded as a feature is named like a label (``y`` only when it holds class ids)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next((row for row in csv.reader(f) if row), [])
    if not header or any(_is_number(cell) for cell in header):
        return  # no header row: no names to go by
    for j, column in enumerate(cell.strip() for cell in header):
        if column.lower() not in _LABEL_NAMES or j >= X.shape[1]:
            continue
        values = X[:, j]
        if column.lower() == "y" and not (np.all(values == np.round(values))
                                          and len(np.unique(values)) <= min(50, len(values) // 2)):
            continue  # a coordinate called y, not class ids
        warnings.warn(f"column {column!r} of {path} looks like labels but is loaded as a feature; pass "
                      f"label_column={column!r} (--label-column {column} on the command line) to keep it out of "
                      "the features and use it for the split, the colours and the probes", UserWarning, stacklevel=4)
        return


def _read_csv(path, label_column):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if row]
    if not rows:
        raise ValueError(f"{path} is empty")
    header = rows[0] if not any(_is_number(cell) for cell in rows[0]) else None
    body = rows[1:] if header else rows
    width = len(rows[0])
    for i, row in enumerate(body, start=2 if header else 1):
        if len(row) != width:
            raise ValueError(f"{path}, line {i}: {len(row)} fields, expected {width}")
    names = header or [f"column {j}" for j in range(width)]
    if label_column is not None and label_column not in names:
        has = f"columns {names}" if header else "no header row"
        raise ValueError(f"label_column={label_column!r} is not a column of {path}, which has {has}")
    cells = np.array(body, dtype=str).reshape(len(body), width)
    cells = np.where(cells == "", "nan", cells)  # an empty cell is a missing value; check_array reports where
    columns, y = [], None
    for j, col in enumerate(names):
        if col == label_column:
            y = cells[:, j]
            for kind in (np.int64, np.float64):
                try:
                    y = y.astype(kind)
                    break
                except ValueError:
                    pass
            continue
        try:
            columns.append(cells[:, j].astype(np.float64))
        except ValueError:
            bad = next(str(v) for v in cells[:, j] if not _is_number(v))
            raise TypeError(f"column {col!r} of {path} is not numeric (value {bad!r}); drop it, "
                            "or name it with label_column if it holds the labels") from None
    return np.stack(columns, axis=1) if columns else np.empty((len(body), 0)), y


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_idx_pair(path):
    """Images (flattened, uint8 scaled to [0, 1]) and, when the labels file sits beside them, the labels."""
    images = _read_idx(path)
    image_shape = tuple(images.shape[1:]) if images.ndim == 3 else None
    X = images.reshape(len(images), -1) if images.ndim >= 3 else images
    X = X.astype(np.float32) / np.float32(255) if X.dtype == np.uint8 else X
    stem, found = re.subn(r"images([-.])idx3", r"labels\1idx1", path.name.removesuffix(".gz"))
    labels = [p for p in (path.with_name(stem), path.with_name(stem + ".gz")) if found and p.is_file()]
    y = _read_idx(labels[0]).astype(np.int64) if labels else None
    if y is not None and y.shape != (len(X),):
        raise ValueError(f"labels file {labels[0]} has shape {y.shape}, expected ({len(X)},) for {path}")
    return X, y, image_shape


def _read_idx(path):
    """An IDX array; the header's size is checked before reading on, and a gzip file is inflated no further than
    the header says (a small file that inflates to gigabytes is refused early)."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
            raise ValueError(f"{path} is not an IDX file (bad magic number)")
        raw_dims = f.read(4 * magic[3])
        if len(raw_dims) < 4 * magic[3]:
            raise ValueError(f"{path} is truncated: its header is incomplete")
        dims = struct.unpack(f">{magic[3]}I", raw_dims)
        dtype = np.dtype(_IDX_DTYPES[magic[2]])
        need = math.prod(dims) * dtype.itemsize
        if need > MAX_DATA_BYTES:
            raise ValueError(f"{path}: its header claims shape {dims} ({need} bytes), more than the {MAX_DATA_BYTES} "
                             "allowed; refused before reading on")
        body = f.read(need + 1)  # one byte more: trailing data is damage too
    if len(body) != need:
        raise ValueError(f"{path} is truncated or corrupt: the header says shape {dims}, "
                         f"which needs {need} bytes of data, found {len(body) if len(body) < need else 'more'}")
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))
