"""analysis.measures.errors: one code path for every model, seen-vs-unseen tables checked against constructed truths."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ks_2samp
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors

from analysis import (
    pca_as_autoencoder,
    compare_to_pca,
    membership_auc,
    pca_baseline,
    reconstruct_with,
    reconstruction_errors,
    sample_errors,
    seen_unseen,
    tpr_at_fpr,
)
from autoenc import Autoencoder, ModelConfig, TrainConfig, fit, reconstruct


class NearestTrainingSample:
    """Stores its training set and reconstructs any input as its nearest training sample: pure memorization."""

    def fit(self, X):
        self.X_ = np.asarray(X, dtype=np.float64)
        self.index_ = NearestNeighbors(n_neighbors=1).fit(self.X_)
        return self

    def transform(self, X):
        return self.index_.kneighbors(X, return_distance=False).astype(np.float64)  # code = row number

    def inverse_transform(self, Z):
        return self.X_[Z[:, 0].astype(int)]


class FixedProjection:
    """An orthogonal projection fixed in advance (no fit): it cannot depend on the training samples."""

    def __init__(self, W):
        self.W = W  # (k, d), orthonormal rows

    def transform(self, X):
        return X @ self.W.T

    def inverse_transform(self, Z):
        return Z @ self.W


def linear_autoencoder_from(pca):
    """A float64 linear Autoencoder whose weights are exactly PCA's: encode (x - mean) @ C.T, decode z @ C + mean."""
    return pca_as_autoencoder(pca, dtype=torch.float64)


def noisy_split(rng, n_train=120, n_test=80, d=10, std=0.3):
    """Low-rank clean signal plus static isotropic noise, for a train and a test split."""
    W = np.linalg.qr(rng.standard_normal((d, 3)))[0].T
    clean = rng.standard_normal((n_train + n_test, 3)) @ W
    noise = std * rng.standard_normal(clean.shape)
    X = clean + noise
    return (X[:n_train], clean[:n_train], noise[:n_train]), (X[n_train:], clean[n_train:], noise[n_train:])


# --- one code path -------------------------------------------------------------------------------------------

def test_linear_autoencoder_with_pca_weights_gives_pca_numbers(rng):
    (X_train, c_train, e_train), (X_test, c_test, e_test) = noisy_split(rng)
    pca = pca_baseline(X_train, 4)
    model = linear_autoencoder_from(pca)
    np.testing.assert_allclose(reconstruction_errors(model, X_test), reconstruction_errors(pca, X_test), rtol=1e-9)

    # compare_to_pca fits its own baseline (same data, same k from model.config) and must reproduce the model.
    table = compare_to_pca(model, X_train, X_test, clean_train=c_train, noise_train=e_train, clean_test=c_test,
                           noise_test=e_test)
    assert table["model"].tolist() == ["autoencoder", "autoencoder", "pca", "pca"]
    ours = table[table.model == "autoencoder"].drop(columns="model").reset_index(drop=True)
    theirs = table[table.model == "pca"].drop(columns="model").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs, rtol=1e-6)
    assert np.isfinite(ours[["mse", "mse_clean", "noise_memorization"]].to_numpy()).all()


def test_transformer_path_matches_autoencoder_path(rng):
    from autoenc.estimator import AutoencoderTransformer

    X = rng.random((60, 6)).astype(np.float32)
    estimator = AutoencoderTransformer(n_components=2, hidden=(8,), epochs=2, random_state=0).fit(X)
    np.testing.assert_allclose(reconstruct_with(estimator, X), reconstruct(estimator.model_, X), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(reconstruction_errors(estimator, X), reconstruction_errors(estimator.model_, X),
                               rtol=1e-5)


def test_pca_with_all_components_reconstructs_exactly(rng):
    X = rng.random((30, 5))
    assert reconstruction_errors(pca_baseline(X, 5), X).max() < 1e-25


# --- seen_unseen ----------------------------------------------------------------------------------------------

def test_seen_unseen_columns_and_values(rng):
    (X_train, c_train, e_train), (X_test, c_test, e_test) = noisy_split(rng)
    pca = PCA(3).fit(X_train)
    table, samples = seen_unseen(pca, X_train, X_test, clean_train=c_train, noise_train=e_train,
                                 clean_test=c_test, noise_test=e_test, return_samples=True)
    assert list(table.columns) == ["split", "n_samples", "mse", "mse_clean", "noise_memorization", "gap", "ratio",
                                   "memorization", "membership_auc", "membership_auc_ci_low",
                                   "membership_auc_ci_high", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci_low",
                                   "tpr_at_1pct_fpr_ci_high", "ks_statistic", "ks_pvalue"]
    assert (table["membership_auc_ci_low"] < table["membership_auc"]).all()
    assert (table["membership_auc"] < table["membership_auc_ci_high"]).all()
    assert table["split"].tolist() == ["train", "test"]
    assert table["n_samples"].tolist() == [len(X_train), len(X_test)]
    e_tr, e_te = reconstruction_errors(pca, X_train), reconstruction_errors(pca, X_test)
    assert table["mse"].tolist() == pytest.approx([e_tr.mean(), e_te.mean()], rel=1e-12)
    clean_errors = [reconstruction_errors(pca, X_train, c_train).mean(), reconstruction_errors(pca, X_test, c_test).mean()]
    assert table["mse_clean"].tolist() == pytest.approx(clean_errors, rel=1e-12)
    train, test = table.iloc[0], table.iloc[1]
    for column in ("gap", "ratio", "memorization", "membership_auc", "tpr_at_1pct_fpr", "ks_statistic", "ks_pvalue"):
        assert train[column] == test[column], column  # pair columns repeat on both rows
    assert train["gap"] == pytest.approx(test["mse"] - train["mse"])
    assert train["ratio"] == pytest.approx(test["mse"] / train["mse"])
    assert train["memorization"] == pytest.approx(train["noise_memorization"] - test["noise_memorization"])
    assert train["membership_auc"] == membership_auc(e_tr, e_te)
    assert train["tpr_at_1pct_fpr"] == tpr_at_fpr(e_tr, e_te, 0.01)
    ks = ks_2samp(e_tr, e_te)
    assert (train["ks_statistic"], train["ks_pvalue"]) == pytest.approx((ks.statistic, ks.pvalue))

    assert list(samples.columns) == ["split", "sample", "error", "error_clean"]
    np.testing.assert_allclose(samples.loc[samples.split == "test", "error"], e_te, rtol=1e-12)
    np.testing.assert_array_equal(samples.loc[samples.split == "train", "sample"], np.arange(len(X_train)))
    pd.testing.assert_frame_equal(
        samples[samples.split == "train"].drop(columns="split").reset_index(drop=True),
        sample_errors(pca, X_train, clean=c_train),
    )


def test_seen_unseen_can_leave_the_pair_columns_to_its_caller(rng):
    """``pairs=False`` (a study's worker: no scipy.stats there) leaves exactly ``PAIR_COLUMNS`` NaN; the rest equal."""
    from analysis.measures.errors import PAIR_COLUMNS

    (X_train, c_train, e_train), (X_test, c_test, e_test) = noisy_split(rng)
    pca = PCA(3).fit(X_train)
    kwargs = dict(clean_train=c_train, clean_test=c_test, X_val=X_test[:10], clean_val=c_test[:10])
    whole, without = (seen_unseen(pca, X_train, X_test, **kwargs, pairs=pairs) for pairs in (True, False))
    assert list(without.columns) == list(whole.columns)
    assert without[list(PAIR_COLUMNS)].isna().all().all() and whole.loc[whole.split != "val", "ks_pvalue"].notna().all()
    pd.testing.assert_frame_equal(without.drop(columns=list(PAIR_COLUMNS)), whole.drop(columns=list(PAIR_COLUMNS)))
    with pytest.raises(TypeError, match="pairs must be True or False, got 'no'"):
        seen_unseen(pca, X_train, X_test, pairs="no")


def test_seen_unseen_without_clean_or_noise_leaves_them_nan(rng):
    X_train, X_test = rng.random((40, 5)), rng.random((30, 5))
    table = seen_unseen(PCA(2).fit(X_train), X_train, X_test)
    assert table["mse_clean"].isna().all() and table["noise_memorization"].isna().all()
    assert table["memorization"].isna().all() and table["mse"].notna().all()
    assert sample_errors(PCA(2).fit(X_train), X_test)["error_clean"].isna().all()


def test_either_clean_or_noise_is_enough(rng):
    (X_train, c_train, e_train), (X_test, c_test, e_test) = noisy_split(rng)
    pca = PCA(3).fit(X_train)
    both = seen_unseen(pca, X_train, X_test, clean_train=c_train, noise_train=e_train, clean_test=c_test,
                       noise_test=e_test)
    only_noise = seen_unseen(pca, X_train, X_test, noise_train=e_train, noise_test=e_test)
    only_clean = seen_unseen(pca, X_train, X_test, clean_train=c_train, clean_test=c_test)
    pd.testing.assert_frame_equal(only_noise, both, rtol=1e-9)
    pd.testing.assert_frame_equal(only_clean, both, rtol=1e-9)


def test_zero_noise_gives_nan_noise_memorization(rng):
    X_train, X_test = rng.random((40, 5)), rng.random((30, 5))
    table = seen_unseen(PCA(2).fit(X_train), X_train, X_test, noise_train=np.zeros_like(X_train),
                        noise_test=np.zeros_like(X_test))
    assert table["noise_memorization"].isna().all() and table["mse_clean"].notna().all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identity_and_fixed_projection_noise_memorization(seed):
    # Pure isotropic noise (clean signal 0): the identity map keeps all of it on every split, a fixed orthogonal
    # rank-k projection keeps k/d on average. NM = chi2(n k) / (chi2(n k) + chi2(n (d - k))) ~ Beta(nk/2, n(d-k)/2),
    # so its std is sqrt(k (d - k) / (d^2 (n d / 2 + 1))); allow 5 of them.
    rng = np.random.default_rng(seed)
    n, d, k = 150, 12, 4
    noise_train, noise_test = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    identity = PCA(d).fit(rng.standard_normal((50, d)))
    table = seen_unseen(identity, noise_train, noise_test, noise_train=noise_train, noise_test=noise_test)
    assert table["noise_memorization"].tolist() == pytest.approx([1.0, 1.0], abs=1e-9)

    W = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    table = seen_unseen(FixedProjection(W), noise_train, noise_test, noise_train=noise_train, noise_test=noise_test)
    sigma = math.sqrt(k * (d - k) / (d**2 * (n * d / 2 + 1)))
    assert table["noise_memorization"].tolist() == pytest.approx([k / d, k / d], abs=5 * sigma)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_model_independent_of_the_training_samples_leaks_nothing(seed):
    # PCA fitted on a third, independent sample treats train and test alike: under that null the AUC has mean 1/2
    # and std sqrt((n1 + n2 + 1) / (12 n1 n2)) (Mann-Whitney); allow 5 of them.
    rng = np.random.default_rng(seed)
    n1, n2, d = 300, 200, 16
    X_train, X_test, X_other = (rng.standard_normal((m, d)) for m in (n1, n2, 300))
    table = seen_unseen(PCA(4).fit(X_other), X_train, X_test)
    sigma = math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    assert table["membership_auc"].iloc[0] == pytest.approx(0.5, abs=5 * sigma)
    assert table["ks_pvalue"].iloc[0] > 1e-4


def test_nearest_training_sample_lookup_is_caught(rng):
    (X_train, c_train, e_train), (X_test, c_test, e_test) = noisy_split(rng)
    lookup = NearestTrainingSample().fit(X_train)
    table = seen_unseen(lookup, X_train, X_test, clean_train=c_train, noise_train=e_train, clean_test=c_test,
                        noise_test=e_test)
    train, test = table.iloc[0], table.iloc[1]
    assert train["mse"] == 0 and test["mse"] > 0
    assert train["noise_memorization"] == pytest.approx(1.0)
    assert train["membership_auc"] == 1.0 and train["tpr_at_1pct_fpr"] == 1.0
    assert train["ratio"] == math.inf


def test_network_memorizes_pure_noise_where_pca_cannot():
    # 200 samples of 16-d Gaussian noise: nothing to learn, so a wide network can only lower its training error by
    # storing the samples. Measured (3 seeds): network ratio 12-16, membership AUC > 0.999; PCA ratio about 1.3.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 16)).astype(np.float32)
    X_train, X_test = X[:200], X[200:]
    model = Autoencoder(ModelConfig(16, 8, hidden=(512,)))
    fit(model, X_train, config=TrainConfig(epochs=60, batch_size=50, lr=5e-3, seed=0), progress=False)
    table = compare_to_pca(model, X_train, X_test)
    ae = table[table.model == "autoencoder"].iloc[0]
    pca = table[table.model == "pca"].iloc[0]
    assert ae["ratio"] > 4 and ae["membership_auc"] > 0.95
    assert pca["ratio"] < 1.6 and pca["membership_auc"] < 0.75
    train_errors = table.loc[(table.model == "autoencoder") & (table.split == "train"), "mse"].item()
    assert train_errors < 0.25 * table.loc[(table.model == "pca") & (table.split == "train"), "mse"].item()


def test_compare_to_pca_takes_the_bottleneck_from_the_model(rng):
    X_train, X_test = rng.random((40, 6)), rng.random((20, 6))
    table, samples = compare_to_pca(PCA(3).fit(X_train), X_train, X_test, return_samples=True)
    assert list(table.columns[:2]) == ["model", "split"] and len(table) == 4
    pd.testing.assert_frame_equal(table.iloc[:2].drop(columns="model"), table.iloc[2:].drop(columns="model")
                                  .reset_index(drop=True))
    assert list(samples.columns) == ["model", "split", "sample", "error", "error_clean"] and len(samples) == 120
    table = compare_to_pca(PCA(3).fit(X_train), X_train, X_test, bottleneck=1)
    assert table.loc[table.model == "pca", "mse"].min() > table.loc[table.model == "autoencoder", "mse"].max()
    with pytest.raises(ValueError, match="bottleneck"):
        compare_to_pca(FixedProjection(np.eye(6)[:2]), X_train, X_test)


# --- bad input ------------------------------------------------------------------------------------------------

def test_unfitted_and_unsuitable_models_are_refused(rng):
    X = rng.random((10, 4))
    with pytest.raises(NotFittedError, match="model \\(PCA\\) is not fitted"):
        reconstruction_errors(PCA(2), X)
    with pytest.raises(ValueError, match="not fitted"):  # NotFittedError is a ValueError
        seen_unseen(NearestTrainingSample(), X, X)
    with pytest.raises(TypeError, match="model must be an autoenc.Autoencoder or a fitted transformer"):
        reconstruction_errors(object(), X)
    with pytest.raises(TypeError, match="model must be"):
        reconstruct_with(lambda X: X, X)


def test_mismatched_shapes_name_the_arguments(rng):
    X_train, X_test = rng.random((20, 4)), rng.random((10, 4))
    pca = PCA(2).fit(X_train)
    with pytest.raises(ValueError, match=r"target has shape \(20, 3\) but X has shape \(20, 4\)"):
        reconstruction_errors(pca, X_train, rng.random((20, 3)))
    with pytest.raises(ValueError, match=r"clean_train has shape \(19, 4\) but X_train has shape \(20, 4\)"):
        seen_unseen(pca, X_train, X_test, clean_train=X_train[:19])
    with pytest.raises(ValueError, match=r"noise_test has shape \(10, 5\) but X_test has shape \(10, 4\)"):
        seen_unseen(pca, X_train, X_test, noise_test=rng.random((10, 5)))
    with pytest.raises(ValueError, match=r"same number of features, got shapes \(20, 4\) and \(10, 3\)"):
        seen_unseen(pca, X_train, X_test[:, :3])
    with pytest.raises(ValueError, match="clean has shape"):
        sample_errors(pca, X_train, clean=X_test)


def test_empty_splits_are_refused(rng):
    X_train = rng.random((20, 4))
    pca = PCA(2).fit(X_train)
    with pytest.raises(ValueError, match="X_test must have at least 1 sample"):
        seen_unseen(pca, X_train, np.empty((0, 4)))
    with pytest.raises(ValueError, match="X_train must have at least 1 sample"):
        seen_unseen(pca, np.empty((0, 4)), X_train)


@pytest.mark.parametrize("bottleneck", [0, 6, 31])
def test_pca_baseline_bottleneck_range(rng, bottleneck):
    with pytest.raises(ValueError, match=r"bottleneck must satisfy 1 <= bottleneck <= .* = 5 .* got bottleneck="):
        pca_baseline(rng.random((30, 5)), bottleneck)


def test_pca_baseline_bottleneck_type(rng):
    with pytest.raises(TypeError, match="bottleneck must be an integer"):
        pca_baseline(rng.random((30, 5)), 2.0)
