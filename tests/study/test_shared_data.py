"""Local workers read one shared, memory-mapped copy of a study's data: small task arguments, views not copies."""
import pickle

import numpy as np
import pytest

from analysis import StudyConfig
from analysis.study._shared_data import DataShare, MappedStudyData
from analysis.study.prepare import prepare_data


@pytest.fixture(scope="module")
def data():
    return prepare_data(StudyConfig(noise_std=0.3, fractions=(0.5, 0.25, 0.25)))


def test_shared_data_pickles_small_and_maps_the_same_values(data):
    expected = {name: data.split_arrays(name) for name in ("train", "val", "test")}
    pool, nm = data.X[data.pool], data.nm_reference(4)
    with DataShare() as share:
        mapped = share.share(data)
        assert share.share(data) is mapped  # written once
        payload = pickle.dumps(mapped)
        assert len(payload) < data.X.nbytes / 4  # the path and the small fields, not the arrays
        opened = pickle.loads(payload)
        assert isinstance(opened, MappedStudyData)
        for name, arrays in expected.items():
            for got, want in zip(opened.split_arrays(name), arrays):
                assert isinstance(got, np.memmap) and got.tobytes() == want.tobytes()
        assert isinstance(opened.inputs(opened.pool), np.memmap)
        assert opened.inputs(opened.pool).tobytes() == pool.tobytes()
        assert opened.inputs(opened.val[:3]).tobytes() == data.X[data.val[:3]].tobytes()  # any other rows: a copy
        opened._nm_references.clear()
        assert opened.nm_reference(4) == nm
        assert isinstance(data.X, np.memmap)  # the study's own copy gave way to the shared pages
        folder = share.folder
    assert not folder.exists()


def test_a_disabled_share_passes_the_arrays(data):
    """(Local workers getting the memory maps is checked on the warmed workers' pool, in test_workers.py.)"""
    with DataShare(enabled=False) as share:
        assert share.share(data) is data and share.folder is None


def test_a_killed_study_s_folder_is_removed_by_the_next(tmp_path, monkeypatch, data):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orphan, mine = tmp_path / "autoenc-data-999999999-x", tmp_path / "autoenc-data-1-y"  # no such pid; init
    orphan.mkdir(), mine.mkdir()
    with DataShare() as share:
        share.share(data)
        assert not orphan.exists() and mine.exists() and share.folder.parent == tmp_path
