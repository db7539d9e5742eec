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


@pytest.mark.parametrize("n, d, k", [(300, 12, 3), (2000, 40, 8), (50, 64, 5)])  # 50 x 64: fewer rows than features
def test_principal_axes_span_what_sklearn_pca_keeps(rng, n, d, k):
    """The noise references' projection: onto the span of scikit-learn's PCA components, fitted on float32 data with
    clearly separated variances (a rank-k projection of the same subspace within float32 rounding)."""
    from sklearn.decomposition import PCA

    from analysis.study.prepare import principal_axes

    scales = np.geomspace(4.0, 0.05, d)
    X = (rng.standard_normal((n, d)) * scales @ np.linalg.qr(rng.standard_normal((d, d)))[0] + 3.0).astype(np.float32)
    axes = principal_axes(X, chunk=97)  # chunks that do not divide n
    np.testing.assert_allclose(axes @ axes.T, np.eye(d), atol=1e-12)  # orthonormal rows
    ours, theirs = axes[:k], PCA(n_components=k, random_state=0).fit(X).components_.astype(np.float64)
    np.testing.assert_allclose(ours.T @ ours, theirs.T @ theirs, atol=2e-5)
    variances = np.var(X.astype(np.float64) @ axes.T, axis=0)
    assert np.all(np.diff(variances) <= 1e-9)  # largest variance first


def test_principal_axes_and_unfitted_pca_refuse_nonsense_by_name():
    from analysis.measures import unfitted_pca
    from analysis.study.prepare import principal_axes

    with pytest.raises(ValueError, match="chunk"):
        principal_axes(np.ones((5, 3)), chunk=0)
    with pytest.raises(ValueError, match="X"):
        principal_axes(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="bottleneck"):
        unfitted_pca(0)
    with pytest.raises(TypeError, match="bottleneck"):
        unfitted_pca(2.5)
