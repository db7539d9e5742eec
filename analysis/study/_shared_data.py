"""One copy of a study's data for the study process and all its local workers: memory-mapped ``.npy`` files.

A task reaches a local worker pickled. A :class:`~.prepare.StudyData` pickled whole cost every worker its own copy
of the data, and each split it indexed out (``X[train]``) another: at MNIST size (60,000 x 784) 3.0 GB of
proportional memory with two workers. :class:`DataShare` writes the arrays once to a temporary folder, in dataset
order and, for each split and the reference pool, as a contiguous block; what travels is a :class:`MappedStudyData`
whose pickle is the folder's path and the small fields, and which opens the files as memory maps where it lands.
Every process then reads the same pages of the operating system's page cache, and ``split_arrays`` and
``inputs`` hand out views of the blocks instead of copies. A Dask worker on another machine cannot read a local
file: the study sends it the arrays, as before (:func:`~._parallel.run_tasks` shares only with local workers).

The maps are copy-on-write (``mmap_mode="c"``): as writeable as the arrays they stand for, so torch takes them
without a copy, while nothing written reaches the file or another process.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from .prepare import StudyData

__all__ = ["DataShare", "MappedStudyData"]

BLOCKS = ("train", "val", "test", "pool")  # row sets whose inputs are stored contiguous (views, not copies)
_ARRAYS = ("X", "clean", "denoise_noise")  # the large fields, stored as files; the rest travels in the pickle


class MappedStudyData(StudyData):
    """A :class:`StudyData` read from a :class:`DataShare` folder; pickles as the folder's path and small fields."""

    def __init__(self, folder, **small):
        self.folder = Path(folder)
        arrays = {name: _load(self.folder / f"{name}.npy") for name in _ARRAYS}
        super().__init__(**arrays, **small)
        self.blocks = {b: tuple(_load(self.folder / f"{a}_{b}.npy") for a in ("X", "clean", "noise")) for b in BLOCKS}

    def __reduce__(self):
        small = {f.name: getattr(self, f.name) for f in fields(StudyData) if f.name not in _ARRAYS}
        return _open, (str(self.folder), small)

    def _block(self, rows):
        """The stored block whose rows are ``rows`` (in this order), or None."""
        return next((self.blocks[b] for b in BLOCKS if _same_rows(rows, self.rows_of(b))), None)

    def rows_of(self, block):
        return self.pool if block == "pool" else getattr(self, block)

    def inputs(self, rows):
        block = self._block(rows)
        return self.X[rows] if block is None else block[0]

    def noise_of(self, idx):
        block = self._block(idx)
        return super().noise_of(idx) if block is None or block[2] is None else block[2]

    def split_arrays(self, split_name):
        return self.blocks[split_name]


def _open(folder, small):
    return MappedStudyData(folder, **small)


def _load(path):
    return np.load(path, mmap_mode="c") if path.exists() else None


def _same_rows(a, b):
    return a is b or (len(a) == len(b) and np.array_equal(a, b))


def _remove_orphans():
    """Remove the folders of studies killed before they could (SIGKILL): their process is gone."""
    for folder in Path(tempfile.gettempdir()).glob("autoenc-data-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


class DataShare:
    """A temporary folder holding the data of a study's local workers, removed on exit.

    Use as ``with DataShare() as share: run_tasks(tasks, n_jobs, share=share)``. Each :class:`StudyData` is
    written once (:meth:`share`); the study's own object then reads the same files, so that the data lives once.
    """

    def __init__(self, enabled=True):
        self.enabled, self.folder, self._shared = enabled, None, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.folder is not None:  # open maps stay valid: an unlinked file lives while mapped
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def share(self, data):
        """``data`` as a :class:`MappedStudyData` (written on first use); ``data`` itself reads the files after."""
        if not self.enabled or isinstance(data, MappedStudyData):
            return data
        if id(data) not in self._shared:
            if self.folder is None:
                _remove_orphans()
                self.folder = Path(tempfile.mkdtemp(prefix=f"autoenc-data-{os.getpid()}-"))
            folder = self.folder / str(len(self._shared))
            folder.mkdir()
            for name in _ARRAYS:
                if getattr(data, name) is not None:
                    np.save(folder / f"{name}.npy", getattr(data, name))
            for block in BLOCKS:
                rows = data.pool if block == "pool" else getattr(data, block)
                np.save(folder / f"X_{block}.npy", data.inputs(rows))
                if block != "pool":  # the references train and are measured on inputs only
                    np.save(folder / f"clean_{block}.npy", data.clean[rows])
                    if data.noisy:  # X - clean, as StudyData.noise_of computes it
                        np.save(folder / f"noise_{block}.npy", data.noise_of(rows))
            small = {f.name: getattr(data, f.name) for f in fields(StudyData) if f.name not in _ARRAYS}
            mapped = MappedStudyData(folder, **small)
            # The study's own copy gives way to the shared pages (the same values): the data lives once.
            data.X, data.clean, data.denoise_noise = mapped.X, mapped.clean, mapped.denoise_noise
            self._shared[id(data)] = (data, mapped)  # holding data keeps its id from being reused
        return self._shared[id(data)][1]

    def args(self, args):
        """A task's arguments with every :class:`StudyData` shared."""
        return tuple(self.share(a) if isinstance(a, StudyData) else a for a in args)
