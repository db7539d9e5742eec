"""analysis.measures.latent: 2-D embeddings (PCA, UMAP), the kNN probe and trustworthiness."""
import multiprocessing
import os
import sys
import threading

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from analysis import embed_latents, knn_probe, trustworthiness
from analysis.measures import latent


def blobs(rng, n, d=8, centers=4, spread=10.0):
    """Well-separated Gaussian clusters: labels are recoverable from any neighbourhood-preserving picture."""
    means = spread * rng.standard_normal((centers, d))
    y = rng.integers(0, centers, n)
    return means[y] + rng.standard_normal((n, d)), y


# --- PCA pictures ---------------------------------------------------------------------------------------------

def test_pca_embedding_is_the_training_codes_principal_plane(rng):
    Z = rng.standard_normal((60, 5)).astype(np.float32)
    train_2d, test_2d = embed_latents(Z[:40], Z[40:], method="pca")
    pca = PCA(2).fit(Z[:40])
    assert train_2d.shape == (40, 2) and test_2d.shape == (20, 2)
    assert train_2d.dtype == np.float32 and test_2d.dtype == np.float32
    np.testing.assert_allclose(test_2d, pca.transform(Z[40:]), rtol=1e-5, atol=1e-5)
    assert embed_latents(Z[:40], method="pca").shape == (40, 2)  # no Z_test: one array


def test_pca_embedding_of_one_dimensional_codes_gets_a_zero_column(rng):
    Z = rng.standard_normal((30, 1))
    out = embed_latents(Z, method="pca")
    assert out.shape == (30, 2) and np.all(out[:, 1] == 0)
    np.testing.assert_allclose(np.abs(out[:, 0]), np.abs(Z[:, 0] - Z.mean()))


# --- UMAP -----------------------------------------------------------------------------------------------------

def _embed_in_child(queue, Z):
    queue.put(embed_latents(Z, method="umap", n_epochs=10).shape)


@pytest.mark.slow  # the first UMAP call in a process compiles numba code (18 s here): CI's slow step runs it
def test_umap_places_test_codes_beside_their_training_neighbours(rng, monkeypatch):
    monkeypatch.delenv("NUMBA_THREADING_LAYER", raising=False)
    Z, y = blobs(rng, 260)
    train_2d, test_2d = embed_latents(Z[:200], Z[200:], method="umap", n_epochs=30, random_state=0)
    assert train_2d.shape == (200, 2) and test_2d.shape == (60, 2) and train_2d.dtype == np.float64
    assert np.isfinite(train_2d).all() and np.isfinite(test_2d).all()
    # A test code should land among training codes of its own cluster.
    agreement = KNeighborsClassifier(5).fit(train_2d, y[:200]).score(test_2d, y[200:])
    assert agreement >= 0.95
    # Seeded UMAP is reproducible.
    again = embed_latents(Z[:200], Z[200:], method="umap", n_epochs=30, random_state=0)
    np.testing.assert_array_equal(again[0], train_2d)
    np.testing.assert_array_equal(again[1], test_2d)

    # Threads take turns (numba's fork-safe layer would abort the process on concurrent use).
    results = []
    threads = [threading.Thread(target=lambda: results.append(embed_latents(Z[:80], method="umap", n_epochs=10)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(r.shape == (80, 2) for r in results)

    # numba runs on a fork-safe threading layer, so a process forked now can run UMAP again without hanging
    # (GNU OpenMP, the default here, would kill or hang the child).
    import numba

    assert numba.threading_layer() != "omp"
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_embed_in_child, args=(queue, Z[:50]))
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
        pytest.fail("UMAP hung in a forked process")
    assert child.exitcode == 0 and queue.get(timeout=5) == (50, 2)


@pytest.mark.slow  # UMAP's numba compilation, as above
def test_umap_with_fewer_codes_than_neighbours(rng):
    out = embed_latents(rng.standard_normal((8, 3)), method="umap", n_neighbors=15, n_epochs=10)
    assert out.shape == (8, 2) and np.isfinite(out).all()


def test_numba_setup_respects_the_user_and_falls_back_to_a_private_cache(monkeypatch, tmp_path):
    numba = sys.modules.get("numba")
    if numba is not None:  # restore whatever the function tells an already imported numba
        monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
        monkeypatch.setattr(numba.config, "THREADING_LAYER", numba.config.THREADING_LAYER)
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    monkeypatch.setenv("NUMBA_THREADING_LAYER", "tbb")
    latent._prepare_numba()
    assert os.environ["NUMBA_CACHE_DIR"] == "/somewhere/else" and os.environ["NUMBA_THREADING_LAYER"] == "tbb"

    # A read-only install: numba cannot cache beside umap's sources, so it gets a private temporary directory.
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.delenv("NUMBA_THREADING_LAYER")
    monkeypatch.setattr(latent.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(latent, "_writable", lambda path: str(path).startswith(str(tmp_path)))
    latent._prepare_numba()
    cache = os.environ["NUMBA_CACHE_DIR"]
    assert cache.startswith(str(tmp_path)) and os.path.isdir(cache)
    assert os.environ["NUMBA_THREADING_LAYER"] == "forksafe"
    if numba is not None:
        assert numba.config.CACHE_DIR == cache


# --- probes ---------------------------------------------------------------------------------------------------

def test_knn_probe_reads_labels_from_separated_codes(rng):
    Z, y = blobs(rng, 200)
    assert knn_probe(Z[:150], y[:150], Z[150:], y[150:]) == 1.0
    shuffled = rng.permutation(y)
    # Labels unrelated to the codes: accuracy near chance (1/4); 50 test samples, binomial std about 0.06.
    assert knn_probe(Z[:150], shuffled[:150], Z[150:], shuffled[150:]) < 0.6
    assert knn_probe(Z[:150], np.array(["a", "b"])[y[:150] % 2], Z[150:], np.array(["a", "b"])[y[150:] % 2]) == 1.0


def test_trustworthiness_of_exact_and_random_pictures(rng):
    X, _ = blobs(rng, 100)
    assert trustworthiness(X, X) == pytest.approx(1.0)
    assert trustworthiness(X, X[:, :2] * 0 + rng.standard_normal((100, 2))) < 0.75


def test_bad_input_is_refused(rng):
    Z, y = rng.standard_normal((20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match=r"y_train must have shape \(20,\) to match Z_train of shape \(20, 3\)"):
        knn_probe(Z, y[:19], Z, y)
    with pytest.raises(ValueError, match="y_test must have shape"):
        knn_probe(Z, y, Z[:5], y)
    with pytest.raises(ValueError, match=r"same number of columns, got shapes \(20, 3\) and \(20, 2\)"):
        knn_probe(Z, y, Z[:, :2], y)
    with pytest.raises(ValueError, match="n_neighbors=21 is larger than the number of training codes 20"):
        knn_probe(Z, y, Z, y, n_neighbors=21)
    with pytest.raises(ValueError, match=r"X and Z must have the same number of samples"):
        trustworthiness(Z, Z[:10])
    with pytest.raises(ValueError, match="n_neighbors must be < n_samples / 2 = 10.0, got n_neighbors=10"):
        trustworthiness(Z, Z, n_neighbors=10)
    with pytest.raises(ValueError, match="method must be one of"):
        embed_latents(Z, method="tsne")
    with pytest.raises(ValueError, match="Z_train and Z_test must have the same number of columns"):
        embed_latents(Z, Z[:, :2], method="pca")
    with pytest.raises(ValueError, match="UMAP needs at least 3 training codes"):
        embed_latents(Z[:2], method="umap")
    with pytest.raises(ValueError, match="n_neighbors must be >= 2"):
        embed_latents(Z, method="umap", n_neighbors=1)
    with pytest.raises(ValueError, match="Z_train contains 1 NaN"):
        embed_latents(np.r_[Z[:-1], [[np.nan, 0, 0]]], method="pca")
