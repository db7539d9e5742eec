"""Reference models: balanced halves, batched training equal to solo fit, memorization against exact leave-one-out."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from autoenc import Autoencoder, ModelConfig, TrainConfig, fit
from analysis.measures.reconstruction import reconstruction_errors
from analysis.measures.reference import (memorization_from_references, plan_reference_tasks, reference_masks,
                                reference_train_config, train_references)
from analysis.report.plots_audit import plot_memorization_distribution, plot_most_memorized


# --- planning ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_samples, n_models", [(2, 2), (101, 16), (300, 64)])
def test_reference_masks_are_balanced_both_ways(n_samples, n_models):
    masks = reference_masks(n_samples, n_models, seed=3)
    assert masks.shape == (n_models, n_samples) and masks.dtype == bool
    assert np.all(masks.sum(axis=0) == n_models // 2)  # every sample in exactly half of the models
    assert np.all(masks[::2].sum(axis=1) == -(-n_samples // 2))
    assert np.all(masks[1::2].sum(axis=1) == n_samples // 2)
    np.testing.assert_array_equal(masks, reference_masks(n_samples, n_models, seed=3))
    assert not np.array_equal(masks, reference_masks(n_samples, n_models, seed=4)) or n_samples == 2


def test_reference_masks_extend_and_look_random():
    small, large = reference_masks(200, 8, seed=1), reference_masks(200, 64, seed=1)
    np.testing.assert_array_equal(large[:8], small)
    # two samples share a model about half the time when pairs are drawn independently
    together = (large[:, 0] == large[:, 1]).mean()
    assert 0.3 < together < 0.7


@pytest.mark.parametrize("n_samples, n_models, error, match", [
    (1, 2, ValueError, "n_samples"), (10, 3, ValueError, "even"), (10, 0, ValueError, "n_models"),
    (10, 2.0, TypeError, "n_models"),
])
def test_reference_masks_rejects(n_samples, n_models, error, match):
    with pytest.raises(error, match=match):
        reference_masks(n_samples, n_models)


def test_plan_reference_tasks_covers_every_model_in_equal_size_groups():
    masks = reference_masks(101, 16, seed=0)  # odd pool: two training sizes
    tasks = plan_reference_tasks(masks, ModelConfig(64, 8, (32,)), TrainConfig(), max_members=4)
    assert sorted(m for t in tasks for m in t) == list(range(16))
    assert all(len(t) <= 4 and len({int(masks[m].sum()) for m in t}) == 1 for t in tasks)
    assert plan_reference_tasks(masks, lambda: PCA(2), max_members=5) == [
        [0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14], [15]]
    with pytest.raises(TypeError, match="train_config"):
        plan_reference_tasks(masks, ModelConfig(64, 8))


def test_reference_seeds_differ_from_study_seeds():
    seeds = [reference_train_config(TrainConfig(seed=s), m).seed for s in range(3) for m in range(16)]
    assert min(seeds) >= 1000


# --- training ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    X = (load_digits().data / 16).astype(np.float32)
    return X[np.random.default_rng(0).permutation(len(X))[:101]]  # odd: the two sizes of halves


def test_batched_references_equal_solo_fit(digits):
    masks = reference_masks(len(digits), 4, seed=0)
    config, tc = ModelConfig(64, 4, (16,)), TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=5)
    clean = np.clip(digits + 0.1, 0, 1)
    errors, errors_clean = train_references(digits, masks, config, tc, clean=clean, progress=False)
    assert errors.shape == errors_clean.shape == (4, len(digits)) and errors.dtype == np.float64
    for m in range(4):
        net = Autoencoder(config)
        fit(net, digits[masks[m]], config=reference_train_config(tc, m), progress=False)
        np.testing.assert_allclose(errors[m], reconstruction_errors(net, digits), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(errors_clean[m], reconstruction_errors(net, digits, clean), rtol=1e-4, atol=1e-7)
    # a task's rows do not depend on which other models train with it
    np.testing.assert_allclose(train_references(digits, masks, config, tc, indices=[3, 0], progress=False),
                               errors[[3, 0]], rtol=1e-5, atol=1e-8)


def test_estimator_references_equal_direct_fits(rng):
    X = rng.standard_normal((60, 7))
    masks = reference_masks(60, 6, seed=2)
    errors = train_references(X, masks, lambda: PCA(3), indices=[5, 1], progress=False)
    for j, m in enumerate([5, 1]):
        np.testing.assert_allclose(errors[j], reconstruction_errors(PCA(3).fit(X[masks[m]]), X))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(model=ModelConfig(64, 4), train_config=None), TypeError, "train_config"),
    (dict(model=ModelConfig(32, 4), train_config=TrainConfig()), ValueError, "input_dim"),
    (dict(model="pca"), TypeError, "model must be"),
    (dict(model=lambda: PCA(2), indices=[0, 0]), ValueError, "repeat"),
    (dict(model=lambda: PCA(2), indices=[9]), ValueError, "indices"),
    (dict(model=lambda: PCA(2), target=np.zeros((3, 64))), ValueError, "target"),
])
def test_train_references_rejects(digits, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_references(digits, reference_masks(len(digits), 4), **kwargs)


# --- memorization -----------------------------------------------------------------------------------------------

def test_memorization_is_out_minus_in_with_its_standard_error(rng):
    masks = reference_masks(30, 8, seed=0)
    errors = rng.random((8, 30))
    frame = memorization_from_references(errors, masks)
    i = 7
    e_in, e_out = errors[masks[:, i], i], errors[~masks[:, i], i]
    row = frame.iloc[i]
    assert list(frame.columns) == ["sample", "error_in", "error_out", "score", "score_se", "n_in", "n_out"]
    assert row["score"] == pytest.approx(e_out.mean() - e_in.mean())
    assert row["score_se"] == pytest.approx(np.sqrt(e_in.var(ddof=1) / 4 + e_out.var(ddof=1) / 4))
    assert row["n_in"] == row["n_out"] == 4


def test_memorization_skips_diverged_models(rng):
    masks = reference_masks(10, 6, seed=0)
    errors = rng.random((6, 10))
    errors[2] = np.nan
    with pytest.warns(RuntimeWarning, match=r"\[2\]"):
        frame = memorization_from_references(errors, masks)
    pd.testing.assert_frame_equal(frame, memorization_from_references(np.delete(errors, 2, 0),
                                                                      np.delete(masks, 2, 0)))
    assert (frame["n_in"] + frame["n_out"] == 5).all()


def _loo_scores(X, k):
    """Exact leave-one-out memorization: error of the model fitted without the sample minus with it."""
    with threadpool_limits(1):  # a hundred small fits: BLAS threads only compete
        seen = reconstruction_errors(PCA(k).fit(X), X)
        unseen = [reconstruction_errors(PCA(k).fit(np.delete(X, i, 0)), X[i : i + 1])[0] for i in range(len(X))]
    return np.array(unseen) - seen


def test_subsampled_memorization_agrees_with_leave_one_out(rng):
    X = rng.standard_normal((100, 5)) @ rng.standard_normal((5, 20)) + 0.5 * rng.standard_normal((100, 20))
    exact = _loo_scores(X, 5)
    agreement = {}
    for n_models in (16, 64):
        masks = reference_masks(100, n_models, seed=0)
        scores = memorization_from_references(train_references(X, masks, lambda: PCA(5), progress=False), masks)
        agreement[n_models] = spearmanr(scores["score"], exact)[0]
    assert agreement[64] >= 0.9
    assert agreement[64] > agreement[16]


def test_planted_outliers_are_the_most_memorized():
    rng = np.random.default_rng(0)
    digits = load_digits().data / 16
    X = np.vstack([digits[rng.permutation(len(digits))[:300]], rng.random((15, 64))])
    masks = reference_masks(len(X), 32, seed=0)
    scores = memorization_from_references(train_references(X, masks, lambda: PCA(16), progress=False), masks)
    top = set(scores.nlargest(15, "score")["sample"])
    assert len(top & set(range(300, 315))) >= 12
    assert (scores["score"] / scores["score_se"]).iloc[300:].min() > 3  # each one resolved from zero


# --- pictures ---------------------------------------------------------------------------------------------------

def test_plot_memorization_distribution_draws_a_histogram_and_zero(rng):
    frame = pd.DataFrame({"sample": np.arange(200), "score": rng.normal(0.01, 0.01, 200)})
    ax = plot_memorization_distribution(frame)
    assert len(ax.collections) == 1 and ax.get_lines()[0].get_gid() == "zero"  # one filled step outline
    assert "memorization" in ax.get_xlabel()
    with pytest.raises(ValueError, match="no finite score"):
        plot_memorization_distribution(np.full(5, np.nan))


def test_plot_most_memorized_shows_the_extremes_as_images(rng):
    X = rng.random((30, 64))
    scores = np.arange(30.0)
    fig = plot_most_memorized(X, scores, (8, 8), n=4)
    (ax,) = fig.axes  # one mosaic of 2 x 4 images, each titled with its sample and score
    titles = [t.get_text() for t in ax.texts]
    assert len(titles) == 8 and titles[0].startswith("#29\n") and titles[4].startswith("#0\n")
    mosaic = ax.images[0].get_array()
    assert mosaic.shape == (2 * 8 + 4, 4 * 8 + 3)  # rows half an image apart (room for titles), columns 1 pixel
    assert np.allclose(mosaic[:8, :8], X[29].reshape(8, 8)) and np.allclose(mosaic[12:, :8], X[0].reshape(8, 8))
    with pytest.raises(ValueError, match="image_shape"):
        plot_most_memorized(X, scores, (4, 4))
