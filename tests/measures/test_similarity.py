"""analysis.measures.similarity on constructed truths: CKA, canonical similarity, principal angles, latent
membership and intrinsic dimension."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from analysis.measures.similarity import (CenteredCodes, cca_similarity, intrinsic_dimension, latent_membership,
                                          linear_cka, nearest_code_distances, null_level, permutation_null,
                                          principal_angles)
from autoenc import Autoencoder, ModelConfig, TrainConfig, encode, fit, load_dataset


def orthogonal(rng, k):
    return np.linalg.qr(rng.standard_normal((k, k)))[0]


# --- similarity of codes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 8])
def test_an_orthogonal_rotation_of_the_codes_leaves_cka_at_one(rng, k):
    Z = rng.standard_normal((120, k)) @ np.diag(np.linspace(1, 3, k))
    rotated = 0.5 * Z @ orthogonal(rng, k) + 7.0  # a scale and a shift change nothing either
    assert linear_cka(Z, rotated) == pytest.approx(1.0, abs=1e-10)
    assert cca_similarity(Z, rotated) == pytest.approx(1.0, abs=1e-10)


def test_cca_is_invariant_to_any_invertible_map_where_cka_is_not(rng):
    Z = rng.standard_normal((200, 4))
    M = np.array([[1, 5, 0, 0], [0, 1, 0, 0], [0, 0, 0.1, 0], [2, 0, 0, 3.0]])
    assert cca_similarity(Z, Z @ M) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(Z, Z @ M) < 0.9


def test_dead_units_are_rank_deficiency_not_signal(rng):
    Z = rng.standard_normal((100, 3))
    padded = np.c_[Z, np.zeros(100), np.full(100, 2.0)]  # two dead units: constant codes
    assert cca_similarity(Z, padded) == pytest.approx(1.0, abs=1e-10)
    assert np.isnan(cca_similarity(Z, np.ones((100, 2)))) and np.isnan(linear_cka(Z, np.ones((100, 2))))


@pytest.mark.parametrize("measure", ["cka", "cca"])
def test_codes_independent_of_the_data_sit_at_the_null_level(rng, measure):
    X = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 20))
    scores = PCA(4).fit_transform(X)
    codes = rng.standard_normal((400, 4))  # a code that ignores its input
    null = permutation_null(codes, scores, measure=measure, n_permutations=200, seed=1)
    value = (linear_cka if measure == "cka" else cca_similarity)(codes, scores)
    assert np.quantile(null, 0.005) <= value <= np.quantile(null, 0.995)
    level = null_level(codes, scores, measure=measure)  # the exact mean over permutations
    assert null.mean() == pytest.approx(level, rel=0.1) and level < 0.05
    if measure == "cca":
        assert level == pytest.approx(4 / 399)  # sum of squared canonical correlations: p q / (n - 1)


def test_linear_autoencoder_codes_reach_pca_and_its_decoder_spans_pcas_subspace():
    data = load_dataset("lowrank", n_samples=600, n_features=16, rank=4, noise_std=0.05, seed=0)
    X = data.X.astype(np.float32)
    train, test = X[:450], X[450:]
    model = Autoencoder(ModelConfig(16, 4, hidden=(), linear=True))
    fit(model, train, config=TrainConfig(epochs=300, batch_size=64, lr=1e-2, seed=0))
    pca = PCA(4).fit(train)
    codes, scores = encode(model, test), pca.transform(test)
    assert cca_similarity(codes, scores) >= 0.99
    decoder = model.decoder[0].weight.detach().numpy()  # (features, k): the decoder's column space
    angles = principal_angles(decoder, pca.components_.T)
    assert angles.shape == (4,) and angles.max() < 3.0


def test_principal_angles_are_degrees_largest_first(rng):
    basis = orthogonal(rng, 5)
    np.testing.assert_allclose(principal_angles(basis[:, :2], basis[:, :2] @ orthogonal(rng, 2)), 0, atol=1e-6)
    tilted = np.c_[basis[:, 0], np.cos(0.3) * basis[:, 1] + np.sin(0.3) * basis[:, 2]]
    np.testing.assert_allclose(principal_angles(basis[:, :2], tilted), [np.degrees(0.3), 0.0], atol=1e-6)


# --- latent membership ----------------------------------------------------------------------------------------

def test_nearest_code_distances_leave_the_sample_itself_out(rng):
    Z = rng.standard_normal((50, 3))
    full = cdist(Z, Z)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(nearest_code_distances(Z, None), full.min(axis=1))
    twins = np.r_[Z, Z[:1]]  # a duplicate: both copies are at distance 0 from the other
    assert nearest_code_distances(twins, None)[[0, 50]].tolist() == [0.0, 0.0]


def test_identity_codes_give_the_input_space_nearest_neighbour_auc(rng):
    X_train, X_test = rng.standard_normal((120, 5)), rng.standard_normal((80, 5)) * 1.3
    within = cdist(X_train, X_train)
    np.fill_diagonal(within, np.inf)
    seen, unseen = within.min(axis=1), cdist(X_test, X_train).min(axis=1)
    expected = roc_auc_score(np.r_[np.ones(120), np.zeros(80)], -np.r_[seen, unseen])
    auc, low, high = latent_membership(X_train, X_test)
    assert auc == pytest.approx(expected, abs=1e-12) and low < auc < high


def test_codes_of_a_model_that_saw_neither_split_cover_one_half():
    data = load_dataset("lowrank", n_samples=900, n_features=16, rank=4, noise_std=0.1, seed=3)
    outside, members, unseen = data.X[:300], data.X[300:600], data.X[600:]
    pca = PCA(4).fit(outside)  # it never saw the "training" split either
    auc, low, high = latent_membership(pca.transform(members), pca.transform(unseen))
    assert low < 0.5 < high


def test_stored_training_codes_give_membership_away(rng):
    Z_train = rng.standard_normal((100, 2))
    Z_train = np.r_[Z_train, Z_train + 1e-3]  # each seen code has a near twin: distances shrink for members
    auc, low, high = latent_membership(Z_train, rng.standard_normal((100, 2)))
    assert auc > 0.95 and low > 0.9


def test_centered_codes_compare_exactly_as_their_arrays(rng):
    A = rng.standard_normal((60, 4)).astype(np.float32)
    B = np.c_[A[:, :2] @ rng.standard_normal((2, 3)), np.zeros(60)] + 1  # rank deficient, off-center
    a, b = CenteredCodes(A), CenteredCodes(B)
    for x, y in ((a, b), (A, b), (a, B)):
        assert linear_cka(x, y) == linear_cka(A, B)
        assert cca_similarity(x, y) == cca_similarity(A, B)
        assert cca_similarity(x, y, rtol=0.5) == cca_similarity(A, B, rtol=0.5)
        for measure in ("cka", "cca"):
            assert null_level(x, y, measure=measure) == null_level(A, B, measure=measure)
            np.testing.assert_array_equal(permutation_null(x, y, measure=measure),
                                          permutation_null(A, B, measure=measure))
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(a, CenteredCodes(B[:-1]))


# --- intrinsic dimension --------------------------------------------------------------------------------------

def test_twonn_on_the_clean_swiss_roll_gives_two():
    roll = load_dataset("swissroll", n_samples=2000, seed=0)  # noise_std defaults to 0: the clean manifold
    assert intrinsic_dimension(roll.X) == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("rank", [3, 6])
def test_twonn_on_lowranks_clean_signal_gives_its_rank(rank):
    clean = load_dataset("lowrank", n_samples=1500, n_features=32, rank=rank, seed=0).X
    assert intrinsic_dimension(clean) == pytest.approx(rank, rel=0.2)
    noisy = load_dataset("lowrank", n_samples=1500, n_features=32, rank=rank, noise_std=0.5, seed=0).X
    assert intrinsic_dimension(noisy) > 1.2 * rank  # noise of full dimension raises the estimate


def test_mle_agrees_on_a_flat_square(rng):
    square = np.c_[rng.uniform(size=(1500, 2)), np.zeros(1500)]
    assert intrinsic_dimension(square, method="mle") == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("method", ["twonn", "mle"])
@pytest.mark.parametrize("d", [2, 8, 16, 25, 26, 40])  # scikit-learn's KD tree, its brute force, all distances
@pytest.mark.parametrize("n", [12, 30, 400])  # below MLE's 20 neighbours too
def test_intrinsic_dimension_is_scikit_dimensions_to_the_bit(method, d, n):
    import skdim  # the reference, a test requirement (setup.cfg's test extra)
    rng = np.random.default_rng(d + n)
    X = rng.standard_normal((n, 3)) @ rng.standard_normal((3, d)) + 0.01 * rng.standard_normal((n, d))
    X = np.r_[X, X[:2]]  # duplicates are dropped first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLE with fewer than 21 rows says it uses fewer neighbours
        expected = (skdim.id.TwoNN() if method == "twonn" else skdim.id.MLE()).fit(np.unique(X, axis=0)).dimension_
        assert intrinsic_dimension(X, method=method) == float(expected)


def test_intrinsic_dimension_imports_no_scikit_dimension():
    code = ("import sys, numpy as np; from analysis.measures.similarity import intrinsic_dimension; "
            "X = np.random.default_rng(0).standard_normal((50, 3)); intrinsic_dimension(X); "
            "intrinsic_dimension(X, method='mle'); print(sorted({'skdim', 'numba'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


# --- bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda Z: linear_cka(Z, Z[:-1]), "same samples"),
    (lambda Z: cca_similarity(Z, Z, rtol=1.5), "rtol"),
    (lambda Z: permutation_null(Z, Z, measure="rsa"), "measure"),
    (lambda Z: permutation_null(Z, Z, n_permutations=0), "n_permutations"),
    (lambda Z: null_level(Z, Z, measure="cosine"), "measure"),
    (lambda Z: principal_angles(Z, Z[:-1]), "same number of rows"),
    (lambda Z: latent_membership(Z, Z[:, :1]), "Z_test"),
    (lambda Z: latent_membership(Z[:2], Z), "Z_train"),
    (lambda Z: intrinsic_dimension(Z, method="pca"), "method"),
    (lambda Z: intrinsic_dimension(Z[:5]), "at least 10"),
    (lambda Z: intrinsic_dimension(Z[:, :1]), "at least 2 features"),
    (lambda Z: linear_cka(np.where(Z > 0, np.nan, Z), Z), "NaN"),
])
def test_bad_input_names_the_argument(rng, call, match):
    with pytest.raises(ValueError, match=match):
        call(rng.standard_normal((20, 3)))
