"""Measures on large data take their float64 temporaries chunk by chunk of rows: memory stays near the data's size.

numpy's allocations are traced by ``tracemalloc``, so the peak below counts every array the measures make.
"""
import tracemalloc

import numpy as np
import pytest
from sklearn.decomposition import PCA

import analysis.measures.reconstruction as reconstruction
from analysis.measures.dynamics import measure_curves
from analysis.measures.errors import measure_split


@pytest.fixture
def data(rng):
    clean = rng.random((20000, 50)).astype(np.float32)
    X = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    return X, clean, PCA(5, random_state=0).fit(X[:2000])


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_measure_split_stays_near_the_size_of_its_inputs(data, monkeypatch):
    X, clean, pca = data
    whole = measure_split(pca, X, clean=clean)  # one chunk: the plain arithmetic
    monkeypatch.setattr(reconstruction, "CHUNK_VALUES", 2**14)
    (row, samples), peak = _peak(lambda: measure_split(pca, X, clean=clean))
    # the reconstruction (float32, like X) and the sklearn transform's centred copy; no float64 copies of the data
    assert peak < 2.5 * X.nbytes
    pd_equal = samples[["error", "error_clean"]].to_numpy() == whole[1][["error", "error_clean"]].to_numpy()
    assert pd_equal.all()  # per-row errors do not depend on the chunks
    assert row["noise_memorization"] == pytest.approx(whole[0]["noise_memorization"], rel=1e-12)
    noise = X - clean  # the noise taken as X - clean agrees with the noise given
    assert measure_split(pca, X, noise=noise)[0]["noise_memorization"] == pytest.approx(row["noise_memorization"])


def test_curve_recorder_keeps_references_not_copies(data):
    X, clean, _ = data
    noise = X - clean
    measure_curves(X[:10], X[10:20])  # first-call imports are not the recorder's memory
    recorder, peak = _peak(lambda: measure_curves(X[:15000], X[15000:], clean_train=clean[:15000],
                                                  clean_val=clean[15000:], noise_train=noise[:15000],
                                                  noise_val=noise[15000:]))
    assert peak < X.nbytes  # the views given are kept (copies of X, clean and noise would be 3x); a float64 chunk
    recorder(1, lambda rows: rows[None])  # the identity, split by split and chunk by chunk: noise memorization 1
    row = recorder.frame().iloc[0]
    assert row["noise_memorization_train"] == pytest.approx(1) and row["noise_memorization_val"] == pytest.approx(1)
