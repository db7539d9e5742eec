"""Noise memorization, membership inference and per-sample scores against constructed truths."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu
from sklearn.decomposition import PCA
from sklearn.metrics import roc_curve

from analysis import membership_auc, memorization_scores, noise_memorization, tpr_at_fpr
from autoenc.data import load_dataset
from autoenc.estimator import AutoencoderTransformer


# --- noise memorization ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d", [(1, 3), (50, 8), (200, 64)])
def test_identity_keeps_all_noise_and_denoiser_none(rng, n, d):
    clean, noise = rng.random((n, d)), 0.2 * rng.standard_normal((n, d))
    assert noise_memorization(clean + noise, clean, noise) == pytest.approx(1.0, abs=1e-12)
    assert noise_memorization(clean, clean, noise) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_map_keeps_no_noise(seed):
    # x_hat = c: NM = sum <c - s_i, e_i> / sum ||e_i||^2, with mean 0 and, given s, std about
    # sigma * sqrt(sum ||c - s_i||^2) / (n d sigma^2); allow 5 of them.
    rng = np.random.default_rng(seed)
    n, d, sigma = 300, 16, 0.2
    clean, noise = rng.random((n, d)), sigma * rng.standard_normal((n, d))
    c = np.full((n, d), 0.5)
    std = math.sqrt(np.sum((c - clean) ** 2)) / (sigma * n * d)
    assert noise_memorization(c, clean, noise) == pytest.approx(0.0, abs=5 * std)


@pytest.mark.parametrize("n, d, k, seed", [(100, 16, 4, 0), (300, 64, 8, 1), (50, 10, 7, 2)])
def test_fixed_rank_k_projection_keeps_k_over_d(n, d, k, seed):
    # Clean signal 0 and e ~ N(0, sigma^2 I): NM = ||P E||^2 / ||E||^2 = A / (A + B) with A ~ sigma^2 chi2(n k) and
    # B ~ sigma^2 chi2(n (d - k)) independent, i.e. Beta(nk/2, n(d-k)/2): mean k/d, variance
    # k (d - k) / (d^2 (n d / 2 + 1)) ~ 2 k (d - k) / (n d^3). Allow 5 standard deviations.
    rng = np.random.default_rng(seed)
    noise = 0.3 * rng.standard_normal((n, d))
    Q = np.linalg.qr(rng.standard_normal((d, k)))[0]
    value = noise_memorization(noise @ Q @ Q.T, np.zeros((n, d)), noise)
    std = math.sqrt(k * (d - k) / (d**2 * (n * d / 2 + 1)))
    assert value == pytest.approx(k / d, abs=5 * std)


def test_noise_memorization_bad_input(rng):
    X = rng.random((10, 4))
    with pytest.raises(ValueError, match=r"got reconstruction \(10, 4\), clean \(9, 4\) and noise \(10, 4\)"):
        noise_memorization(X, X[:9], X)
    with pytest.raises(ValueError, match=r"noise \(10, 3\)"):
        noise_memorization(X, X, X[:, :3])
    with pytest.raises(ValueError, match="noise is all zeros"):
        noise_memorization(X, X, np.zeros_like(X))
    with pytest.raises(ValueError, match="clean must be a 2-D array"):
        noise_memorization(X, X[0], X)


# --- membership inference -------------------------------------------------------------------------------------

def test_membership_auc_matches_mann_whitney(rng):
    train, test = rng.gamma(2.0, size=70), rng.gamma(2.3, size=50)
    u = mannwhitneyu(-train, -test).statistic  # lower error votes "member"
    assert membership_auc(train, test) == pytest.approx(u / (70 * 50))
    assert membership_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert membership_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert membership_auc(np.ones(5), np.ones(7)) == 0.5


def _tpr_from_roc(errors_train, errors_test, fpr):
    """Oracle: the best TPR among ROC points (scores -error, train positive) with FPR <= fpr."""
    y = np.r_[np.ones(len(errors_train)), np.zeros(len(errors_test))]
    fprs, tprs, _ = roc_curve(y, -np.r_[errors_train, errors_test], drop_intermediate=False)
    return tprs[fprs <= fpr + 1e-12].max()


@settings(max_examples=60, deadline=None)
@given(
    train=st.lists(st.integers(0, 6), min_size=1, max_size=30),
    test=st.lists(st.integers(0, 6), min_size=1, max_size=30),
    fpr=st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 0.9, 1.0]),
)
def test_tpr_at_fpr_matches_roc_curve(train, test, fpr):
    # Small integers make many ties: the threshold convention must still flag at most fpr of the test samples.
    train, test = np.array(train, float), np.array(test, float)
    assert tpr_at_fpr(train, test, fpr) == pytest.approx(_tpr_from_roc(train, test, fpr))


def test_tpr_at_fpr_with_few_test_samples_uses_the_strictest_threshold():
    train, test = np.array([0.05, 0.1, 0.2, 0.6]), np.array([0.15, 0.3, 0.4])  # 3 < 1 / 0.01 test samples
    assert tpr_at_fpr(train, test, 0.01) == 0.5  # only errors below every test error: 0.05 and 0.1


def test_membership_bad_input():
    with pytest.raises(ValueError, match="errors_test must have at least 1 sample"):
        membership_auc([0.1, 0.2], [])
    with pytest.raises(ValueError, match="errors_train must have at least 1 sample"):
        tpr_at_fpr([], [0.1])
    with pytest.raises(ValueError, match="errors_train must be a 1-D array"):
        membership_auc(np.ones((3, 2)), [0.1])
    with pytest.raises(ValueError, match="fpr must be in"):
        tpr_at_fpr([0.1], [0.2], fpr=1.5)
    with pytest.raises(ValueError, match="fpr must be a finite number"):
        tpr_at_fpr([0.1], [0.2], fpr=-0.1)


# --- per-sample memorization scores ---------------------------------------------------------------------------

class TrainingMean:
    """Reconstructs every sample as the training mean: a model whose seen/unseen errors have a closed form."""

    def fit(self, X):
        self.mean_ = X.mean(axis=0)
        return self

    def transform(self, X):
        return np.zeros((len(X), 1))

    def inverse_transform(self, Z):
        return np.broadcast_to(self.mean_, (len(Z), len(self.mean_)))


def test_leave_one_out_scores_match_brute_force(rng):
    # With n_folds = n_samples every fold is one sample, so the fold assignment does not matter: compare with a
    # direct leave-one-out loop.
    X = rng.random((12, 3))
    n = len(X)
    seen, unseen = np.zeros(n), np.zeros(n)
    for j in range(n):
        mean = np.delete(X, j, axis=0).mean(axis=0)
        errors = ((X - mean) ** 2).mean(axis=1)
        unseen[j] = errors[j]
        seen += np.where(np.arange(n) == j, 0.0, errors / (n - 1))
    for repeats in (1, 3):
        scores = memorization_scores(X, TrainingMean, n_folds=n, repeats=repeats, progress=False)
        np.testing.assert_allclose(scores["error_unseen"], unseen, rtol=1e-12)
        np.testing.assert_allclose(scores["error_seen"], seen, rtol=1e-12)
        np.testing.assert_allclose(scores["score"], unseen - seen, rtol=1e-9, atol=1e-15)
    # The closed form for the left-out error: x_i - mean_{-i} = n / (n - 1) (x_i - mean).
    np.testing.assert_allclose(unseen, (n / (n - 1)) ** 2 * ((X - X.mean(0)) ** 2).mean(1), rtol=1e-12)


def test_scores_are_zero_for_a_model_that_ignores_its_training_data(rng):
    X = rng.random((40, 6))
    other = PCA(2).fit(rng.random((40, 6)))

    class Frozen:
        def fit(self, X):
            self.fitted_ = True
            return self

        def transform(self, X):
            return other.transform(X)

        def inverse_transform(self, Z):
            return other.inverse_transform(Z)

    scores = memorization_scores(X, Frozen, n_folds=4, repeats=2, seed=3, progress=False)
    assert list(scores.columns) == ["sample", "error_seen", "error_unseen", "score"]
    np.testing.assert_array_equal(scores["sample"], np.arange(40))
    np.testing.assert_allclose(scores["score"], 0.0, atol=1e-15)
    np.testing.assert_allclose(scores["error_seen"], ((other.inverse_transform(other.transform(X)) - X) ** 2).mean(1))


def test_target_measures_errors_against_another_signal(rng):
    X = rng.random((20, 4))
    scores = memorization_scores(X, TrainingMean, n_folds=20, target=np.zeros_like(X), progress=False)
    np.testing.assert_allclose(scores["error_unseen"], [(np.delete(X, i, 0).mean(0) ** 2).mean() for i in range(20)])


def test_planted_outliers_top_the_autoencoder_scores():
    # 5 rows of uniform noise among 400 digits: the network reconstructs them only when it trained on them, so
    # their scores lead; PCA (same k) cannot store them. Measured (3 placements): network scores 0.10-0.15 with
    # every digit below 0.07; PCA's for the same rows <= 0.065, on average a third or less of the network's.
    digits = load_dataset("digits").X[:400]
    rng = np.random.default_rng(0)
    outliers = np.sort(rng.choice(405, 5, replace=False))
    X = np.empty((405, 64), np.float32)
    planted = np.isin(np.arange(405), outliers)
    X[planted], X[~planted] = rng.random((5, 64)), digits

    def network():
        return AutoencoderTransformer(n_components=8, hidden=(256,), epochs=100, lr=3e-3, random_state=0)

    ae = memorization_scores(X, network, n_folds=5, progress=False)["score"].to_numpy()
    pca = memorization_scores(X, lambda: PCA(8), n_folds=5, progress=False)["score"].to_numpy()
    assert set(np.argsort(-ae)[:10]) >= set(outliers)
    assert ae[planted].min() > ae[~planted].max()
    assert ae[planted].min() > pca[planted].max()
    assert ae[planted].mean() > 2 * pca[planted].mean()


def test_memorization_scores_bad_input(rng):
    X = rng.random((10, 3))
    for n_folds in (1, 11):
        with pytest.raises(ValueError, match=f"2 <= n_folds <= n_samples = 10, got n_folds={n_folds}"):
            memorization_scores(X, TrainingMean, n_folds=n_folds)
    with pytest.raises(TypeError, match="n_folds must be an integer"):
        memorization_scores(X, TrainingMean, n_folds=2.5)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        memorization_scores(X, TrainingMean, repeats=0)
    with pytest.raises(ValueError, match=r"target has shape \(10, 2\) but X has shape \(10, 3\)"):
        memorization_scores(X, TrainingMean, target=X[:, :2])
    with pytest.raises(TypeError, match="make_model must be a callable"):
        memorization_scores(X, PCA(2))
    with pytest.raises(TypeError, match="make_model\\(\\) must return an estimator"):
        memorization_scores(X, lambda: object(), progress=False)
    with pytest.raises(ValueError, match="X must have at least 1 sample"):
        memorization_scores(np.empty((0, 3)), TrainingMean)
