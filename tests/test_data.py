import gzip
import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoenc.data import DATASETS, Dataset, Scaler, Split, add_noise, load_dataset, split


def write_idx(path, array):
    """A minimal IDX writer: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(header + array.tobytes())


# ---------------------------------------------------------------- built-in datasets

def test_names():
    assert DATASETS == ("digits", "mnist1d", "noise", "lowrank", "swissroll", "patches")


def test_digits():
    data = load_dataset("digits")
    assert isinstance(data, Dataset) and data.name == "digits" and data.image_shape == (8, 8)
    assert data.X.shape == (1797, 64) and data.X.dtype == np.float32
    assert data.X.min() == 0 and data.X.max() == 1
    assert data.y.dtype == np.int64 and set(data.y) == set(range(10))
    head = load_dataset("digits", n_samples=100)
    np.testing.assert_array_equal(head.X, data.X[:100])
    np.testing.assert_array_equal(head.y, data.y[:100])


def test_digits_are_scikit_learns_values_read_without_importing_it():
    from sklearn.datasets import load_digits

    from autoenc.data import _digits

    pixels, labels = _digits()
    reference = load_digits()
    np.testing.assert_array_equal(pixels, reference.data)  # the same file, the same np.loadtxt: bit for bit
    np.testing.assert_array_equal(labels, reference.target)
    assert labels.dtype == np.int64


def test_patches_are_grayscale_tiles_of_the_sample_photographs():
    data = load_dataset("patches")
    assert data.name == "patches" and data.image_shape == (8, 8)
    assert data.X.shape == (2 * 53 * 80, 64) and data.X.dtype == np.float32
    assert 0 <= data.X.min() < 0.05 and 0.95 < data.X.max() <= 1
    assert data.y.dtype == np.int64 and np.bincount(data.y).tolist() == [4240, 4240]  # china, flower
    assert len(np.unique(data.X, axis=0)) > 8000  # real texture, not a constant background
    assert set(data.y[:200]) == {0, 1}  # a fixed shuffle: the first rows sample both photographs


def test_patches_are_the_same_numbers_every_call():
    from sklearn.datasets import load_sample_image

    a, b = load_dataset("patches"), load_dataset("patches", seed=7)  # no randomness: the seed changes nothing
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    head = load_dataset("patches", n_samples=500)
    np.testing.assert_array_equal(head.X, a.X[:500])
    # each patch is an 8x8 tile of its photograph's luma on the 8-pixel grid, row-major
    gray = load_sample_image("china.jpg").astype(np.float64) @ [0.299, 0.587, 0.114] / 255
    tile = a.X[np.flatnonzero(a.y == 0)[0]].reshape(8, 8).astype(np.float64)
    hits = [(r, c) for r in range(0, 424, 8) for c in range(0, 640, 8)
            if np.allclose(gray[r:r + 8, c:c + 8], tile, atol=1e-6)]
    assert len(hits) == 1
    with pytest.raises(ValueError, match=r"rank does not apply to dataset 'patches', which accepts n_samples"):
        load_dataset("patches", rank=2)
    with pytest.raises(ValueError, match=r"n_samples=9000 exceeds the 8480 samples in patches"):
        load_dataset("patches", n_samples=9000)


def test_a_study_config_accepts_patches():
    from analysis.study.config import StudyConfig
    from analysis.study.prepare import prepare_data

    config = StudyConfig(dataset="patches", bottlenecks=(4,), widths=(16,), seeds=(0,))
    assert StudyConfig.from_json(config.to_json()).dataset == "patches"
    assert prepare_data(config).image_shape == (8, 8)


def test_mnist1d_is_offline_seeded_and_leaves_global_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    random.seed(123)
    np.random.seed(456)
    py_state, np_state = random.getstate(), np.random.get_state()
    data = load_dataset("mnist1d", n_samples=95, seed=3)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert list(tmp_path.iterdir()) == []  # nothing cached in the working directory
    assert data.X.shape == (95, 40) and data.X.dtype == np.float32 and data.image_shape is None
    assert data.y.dtype == np.int64 and set(data.y) <= set(range(10)) and len(set(data.y)) == 10
    assert abs(data.X.mean()) < 0.2 and 0.8 < data.X.std() < 1.2  # mnist1d's own standardization
    again = load_dataset("mnist1d", n_samples=95, seed=3)
    np.testing.assert_array_equal(again.X, data.X)
    np.testing.assert_array_equal(again.y, data.y)
    assert not np.array_equal(load_dataset("mnist1d", n_samples=95, seed=4).X, data.X)
    assert load_dataset("mnist1d", n_samples=20, n_features=16).X.shape == (20, 16)


@pytest.mark.parametrize("name", ["noise", "lowrank", "swissroll"])
def test_generated_datasets_are_seeded(name):
    a, b = load_dataset(name, n_samples=300, seed=1), load_dataset(name, n_samples=300, seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, load_dataset(name, n_samples=300, seed=2).X)
    assert a.X.dtype == np.float32 and a.name == name and a.image_shape is None
    assert a.X.shape == ((300, 3) if name == "swissroll" else (300, 64))


def test_noise_is_standard_gaussian():
    data = load_dataset("noise", n_samples=2000, n_features=8)
    assert data.X.shape == (2000, 8) and data.y is None
    assert abs(data.X.mean()) < 0.05 and abs(data.X.std() - 1) < 0.05


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_lowrank_has_exact_rank(rank):
    data = load_dataset("lowrank", n_samples=200, n_features=20, rank=rank, noise_std=0)
    assert np.linalg.matrix_rank(data.X) == rank
    noisy = load_dataset("lowrank", n_samples=200, n_features=20, rank=rank, noise_std=0.1)
    assert np.linalg.matrix_rank(noisy.X) == 20
    # same seed, same signal: the noise is all that differs
    assert 0.05 < np.std(noisy.X - data.X) < 0.15


def test_swissroll_labels_are_positions():
    data = load_dataset("swissroll", n_samples=500, noise_std=0.5)
    assert data.y.shape == (500,) and data.y.dtype == np.float64
    assert 1.5 * np.pi <= data.y.min() and data.y.max() <= 4.5 * np.pi


# ---------------------------------------------------------------- files

def test_npy(tmp_path, rng):
    X = rng.random((30, 5))
    np.save(tmp_path / "feat.npy", X)
    for arg in (tmp_path / "feat.npy", str(tmp_path / "feat.npy")):
        data = load_dataset(arg)
        assert data.name == "feat" and data.y is None and data.X.dtype == np.float32
        np.testing.assert_allclose(data.X, X, rtol=1e-6)
    assert load_dataset(tmp_path / "feat.npy", n_samples=10).X.shape == (10, 5)


def test_npz(tmp_path, rng):
    X, y = rng.random((30, 5)), rng.integers(0, 3, 30)
    np.savez(tmp_path / "a.npz", X=X, y=y)
    data = load_dataset(tmp_path / "a.npz")
    np.testing.assert_allclose(data.X, X, rtol=1e-6)
    np.testing.assert_array_equal(data.y, y)
    np.savez(tmp_path / "single.npz", features=X)
    assert load_dataset(tmp_path / "single.npz").X.shape == (30, 5)
    np.savez(tmp_path / "many.npz", a=X, b=X)
    with pytest.raises(ValueError, match=r"many\.npz holds arrays \['a', 'b'\]; expected one named 'X'"):
        load_dataset(tmp_path / "many.npz")
    np.savez(tmp_path / "bad_y.npz", X=X, y=y[:10])
    with pytest.raises(ValueError, match=r"labels of .*bad_y\.npz have shape \(10,\)"):
        load_dataset(tmp_path / "bad_y.npz")


def test_csv(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,cat\n3,4.5,dog\n5,6,cat\n")
    data = load_dataset(tmp_path / "t.csv", label_column="label")
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4.5], [5, 6]])
    assert list(data.y) == ["cat", "dog", "cat"] and data.name == "t"
    (tmp_path / "n.csv").write_text("x,y,cls\n1,2,0\n3,4,1\n")
    assert load_dataset(tmp_path / "n.csv", label_column="cls").y.dtype == np.int64
    assert load_dataset(tmp_path / "n.csv").X.shape == (2, 3)
    (tmp_path / "raw.csv").write_text("1,2\n3,4\n")
    np.testing.assert_array_equal(load_dataset(tmp_path / "raw.csv").X, [[1, 2], [3, 4]])
    with pytest.raises(TypeError, match=r"column 'label' of .*t\.csv is not numeric \(value 'cat'\)"):
        load_dataset(tmp_path / "t.csv")
    with pytest.raises(ValueError, match=r"label_column='kind' is not a column of .*t\.csv.*\['a', 'b', 'label'\]"):
        load_dataset(tmp_path / "t.csv", label_column="kind")
    (tmp_path / "gap.csv").write_text("a,b\n1,2\n3,\n")
    with pytest.raises(ValueError, match=r"data in .*gap\.csv contains 1 NaN"):
        load_dataset(tmp_path / "gap.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(ValueError, match=r"ragged\.csv, line 2: 1 fields, expected 2"):
        load_dataset(tmp_path / "ragged.csv")


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("sep", ["-", "."])
def test_idx(tmp_path, rng, suffix, sep):
    images, labels = rng.integers(0, 256, (12, 4, 3)), rng.integers(0, 10, 12)
    write_idx(tmp_path / f"train-images{sep}idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"train-labels{sep}idx1-ubyte{suffix}", labels)
    data = load_dataset(tmp_path / f"train-images{sep}idx3-ubyte{suffix}")
    assert data.X.shape == (12, 12) and data.X.dtype == np.float32 and data.image_shape == (4, 3)
    np.testing.assert_allclose(data.X, images.reshape(12, -1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y, labels)
    assert data.y.dtype == np.int64


def test_idx_without_labels_and_corrupt(tmp_path, rng):
    write_idx(tmp_path / "x-images-idx3-ubyte", rng.integers(0, 256, (5, 2, 2)))
    assert load_dataset(tmp_path / "x-images-idx3-ubyte").y is None
    raw = (tmp_path / "x-images-idx3-ubyte").read_bytes()
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match=r"cut-images-idx3-ubyte is truncated or corrupt: .*shape \(5, 2, 2\)"):
        load_dataset(tmp_path / "cut-images-idx3-ubyte")
    (tmp_path / "junk-images-idx3-ubyte").write_bytes(b"hello world")
    with pytest.raises(ValueError, match=r"junk-images-idx3-ubyte is not an IDX file"):
        load_dataset(tmp_path / "junk-images-idx3-ubyte")
    (tmp_path / "junk-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"could not read .*junk-images-idx3-ubyte\.gz"):
        load_dataset(tmp_path / "junk-images-idx3-ubyte.gz")
    write_idx(tmp_path / "y-images-idx3-ubyte", rng.integers(0, 256, (5, 2, 2)))
    write_idx(tmp_path / "y-labels-idx1-ubyte", rng.integers(0, 10, 4))
    with pytest.raises(ValueError, match=r"labels file .*y-labels-idx1-ubyte has shape \(4,\), expected \(5,\)"):
        load_dataset(tmp_path / "y-images-idx3-ubyte")


# ---------------------------------------------------------------- loading errors

def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; expected one of digits, mnist1d, noise"):
        load_dataset("mnist")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data file not found: .*nope\.npy"):
        load_dataset(str(tmp_path / "nope.npy"))
    with pytest.raises(FileNotFoundError, match="nope"):
        load_dataset(tmp_path / "nope")


def test_unreadable_and_invalid_files(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=r"could not read .*bad\.npy"):
        load_dataset(tmp_path / "bad.npy")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"could not read .*bad\.npz"):
        load_dataset(tmp_path / "bad.npz")
    (tmp_path / "notes.txt").write_text("1,2")
    with pytest.raises(ValueError, match=r"cannot load .*notes\.txt: expected a \.npy, \.npz, \.csv"):
        load_dataset(tmp_path / "notes.txt")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"data in .*nan\.npy contains 1 NaN or infinite"):
        load_dataset(tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(ValueError, match=r"data in .*flat\.npy must be a 2-D array"):
        load_dataset(tmp_path / "flat.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    with pytest.raises(TypeError, match=r"data in .*text\.npy must be a numeric array"):
        load_dataset(tmp_path / "text.npy")
    np.save(tmp_path / "ok.npy", np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"n_samples=5 exceeds the 3 samples in .*ok\.npy"):
        load_dataset(tmp_path / "ok.npy", n_samples=5)
    with pytest.raises(ValueError, match=r"label_column applies to \.csv files only"):
        load_dataset(tmp_path / "ok.npy", label_column="y")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(n_samples=0), ValueError, "n_samples must be >= 1"),
    (dict(n_samples=2.5), TypeError, "n_samples must be an integer"),
    (dict(n_features=0), ValueError, "n_features must be >= 1"),
    (dict(rank=0), ValueError, "rank must be >= 1"),
    (dict(rank=9, n_features=8), ValueError, r"rank must be <= n_features \(8\), got 9"),
    (dict(noise_std=-1.0), ValueError, "noise_std must be a finite number >= 0"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset("lowrank", **kwargs)


def test_arguments_that_do_not_apply():
    with pytest.raises(ValueError, match=r"rank does not apply to dataset 'digits', which accepts n_samples"):
        load_dataset("digits", rank=3)
    with pytest.raises(ValueError, match=r"n_samples=2000 exceeds the 1797 samples in digits"):
        load_dataset("digits", n_samples=2000)
    with pytest.raises(TypeError, match="name_or_path must be a dataset name or a path"):
        load_dataset(3)


# ---------------------------------------------------------------- split

def check_partition(parts, n):
    assert isinstance(parts, Split)
    for p in (parts.train, parts.val, parts.test):
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([parts.train, parts.val, parts.test])), np.arange(n))


def test_split_default_sizes_and_seed():
    parts = split(100)
    check_partition(parts, 100)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (60, 20, 20)
    again, other = split(100, seed=0), split(100, seed=1)
    np.testing.assert_array_equal(again.test, parts.test)
    assert not np.array_equal(other.test, parts.test)


def test_split_without_validation_and_rounding():
    parts = split(7, (0.5, 0.0, 0.5))
    assert len(parts.val) == 0 and parts.val.dtype == np.int64 and len(parts.train) + len(parts.test) == 7
    parts = split(3, (0.6, 0.2, 0.2))  # 1.8, 0.6, 0.6: every positive part keeps one sample
    assert (len(parts.train), len(parts.val), len(parts.test)) == (1, 1, 1)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 300), weights=st.tuples(st.integers(1, 10), st.integers(0, 10), st.integers(1, 10)),
       n_classes=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_split_invariants(n, weights, n_classes, seed):
    fractions = tuple(w / sum(weights) for w in weights)
    labels = np.random.default_rng(seed).integers(0, n_classes, n)
    plain, strat = split(n, fractions, seed=seed), split(n, fractions, seed=seed, stratify=labels)
    check_partition(plain, n)
    check_partition(strat, n)
    sizes = [len(p) for p in (plain.train, plain.val, plain.test)]
    assert sizes == [len(p) for p in (strat.train, strat.val, strat.test)]
    for size, f in zip(sizes, fractions):
        assert (size > 0) == (f > 0) and abs(size - f * n) < 2
    for c in np.unique(labels):
        n_c = np.sum(labels == c)
        for part, size in zip((strat.train, strat.val, strat.test), sizes):
            assert abs(np.sum(labels[part] == c) - n_c * size / n) < 1  # within one sample of its share


def test_split_stratifies_string_labels():
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    parts = split(100, stratify=labels, seed=5)
    assert [np.sum(labels[parts.test] == c) for c in "abc"] == [10, 6, 4]


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((2,), {}, r"n_samples=2 is too few to split into fractions \(0\.6, 0\.2, 0\.2\)"),
    ((10, (0.5, 0.5)), {}, "fractions must be 3 non-negative numbers"),
    ((10, (0.5, 0.3, 0.3)), {}, "summing to 1"),
    ((10, (1.2, -0.2, 0.0)), {}, "non-negative"),
    ((10, (0.0, 0.5, 0.5)), {}, "train and test fractions must be positive"),
    ((10,), dict(stratify=[0, 1]), r"stratify must have shape \(n_samples,\) = \(10,\), got \(2,\)"),
    ((0,), {}, "n_samples must be >= 1"),
])
def test_split_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        split(*args, **kwargs)


# ---------------------------------------------------------------- noise and scaling

def test_add_noise(rng):
    X = rng.random((2000, 10)).astype(np.float32)
    noisy, noise = add_noise(X, 0.3, seed=4)
    assert noisy.dtype == noise.dtype == np.float32 and noise.shape == X.shape
    np.testing.assert_array_equal(noisy, X + noise)
    assert abs(noise.std() - 0.3) < 0.01 and abs(noise.mean()) < 0.01
    np.testing.assert_array_equal(add_noise(X, 0.3, seed=4)[1], noise)
    assert not np.array_equal(add_noise(X, 0.3, seed=5)[1], noise)
    np.testing.assert_array_equal(add_noise(X, 0.0)[1], np.zeros_like(X))
    assert add_noise(X.astype(np.float64), 0.3, seed=4)[1].dtype == np.float64


def test_add_noise_errors():
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        add_noise(np.ones((2, 2)), -0.1)
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        add_noise(np.array([[1.0, np.nan]]), 0.1)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        add_noise(np.ones(3), 0.1)


def test_scaler_uses_train_statistics_only(rng):
    X = rng.normal(3.0, 2.0, (100, 4))
    X[:, 3] = 7.0  # a constant column
    train, test = X[:60], X[60:] + 10.0
    scaler = Scaler("standard").fit(train)
    np.testing.assert_allclose(scaler.offset_[:3], train[:, :3].mean(axis=0))
    assert scaler.scale_[3] == 1.0
    Z = scaler.transform(train)
    np.testing.assert_allclose(Z[:, :3].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :3].std(axis=0), 1)
    assert np.all(np.isfinite(Z)) and np.all(Z[:, 3] == 0)
    # the test split is scaled with the train statistics, so its shift survives
    np.testing.assert_allclose(scaler.transform(test), (test - scaler.offset_) / scaler.scale_)
    assert scaler.transform(test)[:, :3].mean() > 3
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(test)), test)


def test_scaler_minmax_none_and_dtype(rng):
    X = rng.random((50, 3)).astype(np.float32)
    Z = Scaler("minmax").fit(X).transform(X)
    assert Z.dtype == np.float32 and Z.min() == 0 and np.isclose(Z.max(), 1)
    np.testing.assert_array_equal(Scaler("none").fit(X).transform(X), X)


def test_scaler_errors(rng):
    with pytest.raises(ValueError, match=r"method must be one of \('standard', 'minmax', 'none'\)"):
        Scaler("robust")
    with pytest.raises(RuntimeError, match="not fitted"):
        Scaler().transform(np.ones((2, 2)))
    with pytest.raises(ValueError, match="X has 3 features, expected 2"):
        Scaler().fit(np.ones((4, 2))).transform(np.ones((4, 3)))
