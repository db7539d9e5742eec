"""The tables' files written on a thread: the same bytes as written in line, waited for, and their errors raised."""
import errno

import pandas as pd
import pytest

from analysis.study.store import StudyStore
from tiny_study import study, tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return study(tmp_path_factory.mktemp("tables"), tiny(bottlenecks=(2, 4), seeds=(0,))).path


def test_tables_written_on_a_thread_are_those_written_in_line(folder):
    names = ("results", "samples", "history")
    inline = StudyStore(folder).write_tables()
    before = {n: (folder / f"{n}.csv").read_bytes() for n in names}
    for n in names:
        (folder / f"{n}.csv").unlink()
    store = StudyStore(folder)
    frames = store.write_tables(wait=False)
    for frame, expected in zip(frames, inline):
        pd.testing.assert_frame_equal(frame, expected)
    store.wait_tables()
    assert {n: (folder / f"{n}.csv").read_bytes() for n in names} == before
    assert len(frames[0]) == 2 * 3 * 2  # two bottlenecks, AE and PCA, three splits


def test_a_failed_write_on_the_thread_is_raised_when_waited_for(folder, monkeypatch):
    def full(path, frame):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("analysis.study.store.write_csv", full)
    store = StudyStore(folder)
    store.write_tables(wait=False)
    with pytest.raises(OSError, match="No space"):
        store.wait_tables()
    store.wait_tables()  # raised once; nothing left pending
    with pytest.raises(OSError, match="No space"):
        store.write_tables(wait=False)
        store.write_tables()  # the next write waits for the pending one first, and raises its error


def test_wait_must_be_a_bool(folder):
    with pytest.raises(TypeError, match="wait must be True or False, got 'no'"):
        StudyStore(folder).write_tables(wait="no")
