"""AutoencoderTransformer: scikit-learn's estimator checks, and drop-in use in place of PCA."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from autoenc import Autoencoder, ModelConfig, TrainConfig, fit, reconstruct
from autoenc.estimator import AutoencoderTransformer

FAST = dict(epochs=5, hidden=(8,), batch_size=32)


@parametrize_with_checks([AutoencoderTransformer(epochs=5, hidden=(8,), random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X = load_digits().data[:400] / 16
    return X[:300], X[300:]


def test_shapes_and_dtypes(digits):
    X, X_test = digits
    ae = AutoencoderTransformer(n_components=3, random_state=0, **FAST).fit(X)
    assert (ae.n_components_, ae.n_features_in_) == (3, 64)
    Z = ae.transform(X_test)
    assert Z.shape == (100, 3) and Z.dtype == np.float64
    assert ae.inverse_transform(Z).shape == (100, 64)
    Z32 = ae.transform(X_test.astype(np.float32))
    assert Z32.dtype == np.float32 and ae.inverse_transform(Z32).dtype == np.float32
    np.testing.assert_allclose(Z32, Z, rtol=1e-4, atol=1e-5)
    assert list(ae.get_feature_names_out()) == [f"autoencodertransformer{i}" for i in range(3)]
    assert ae.history_.epochs == 5


def test_fit_transform_matches_fit_then_transform(digits):
    X, _ = digits
    est = AutoencoderTransformer(n_components=2, random_state=3, **FAST)
    np.testing.assert_array_equal(est.fit_transform(X), est.fit(X).transform(X))


def test_score_is_negative_mean_squared_reconstruction_error(digits):
    X, X_test = digits
    ae = AutoencoderTransformer(n_components=4, random_state=0, **FAST).fit(X)
    expected = np.mean((ae.inverse_transform(ae.transform(X_test)) - X_test) ** 2)
    assert ae.score(X_test) == pytest.approx(-expected, rel=1e-12)
    # the float64 path is an exact upcast of the float32 model, so it agrees with the library's reconstruct
    assert ae.score(X_test) == pytest.approx(-np.mean((reconstruct(ae.model_, X_test) - X_test) ** 2), rel=1e-5)


def test_int_random_state_is_the_training_seed(digits):
    X, _ = digits
    ae = AutoencoderTransformer(n_components=2, random_state=7, **FAST).fit(X)
    model = Autoencoder(ModelConfig(64, 2, hidden=(8,)))
    fit(model, X, config=TrainConfig(epochs=5, batch_size=32, seed=7), progress=False)
    assert ae.seed_ == 7
    # The estimator trains through fit_group (exact to fit up to float32 rounding); another seed is far off.
    np.testing.assert_allclose(reconstruct(ae.model_, X), reconstruct(model, X), rtol=1e-4, atol=1e-5)


def test_random_state_instances_and_none_draw_a_seed(digits):
    X, _ = digits
    a = AutoencoderTransformer(random_state=np.random.RandomState(0), **FAST).fit(X)
    b = AutoencoderTransformer(random_state=np.random.RandomState(0), **FAST).fit(X)
    assert a.seed_ == b.seed_
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    shared = AutoencoderTransformer(random_state=np.random.RandomState(0), **FAST)
    assert shared.fit(X).seed_ != shared.fit(X).seed_  # an instance advances, as in scikit-learn
    fresh = AutoencoderTransformer(random_state=None, **FAST)
    assert fresh.fit(X).seed_ != fresh.fit(X).seed_  # a collision has probability 2**-31
    with pytest.raises(ValueError, match="random_state must be >= 0"):
        AutoencoderTransformer(random_state=-1, **FAST).fit(X)


def test_n_components_larger_than_n_features_is_rejected():
    X = np.random.default_rng(0).random((20, 3))
    with pytest.raises(ValueError, match=r"n_components=4 must be <= n_features=3"):
        AutoencoderTransformer(n_components=4, **FAST).fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "n_components must be >= 1"),
        ({"hidden": (8, 0)}, r"hidden\[1\] must be >= 1"),
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
    ],
)
def test_bad_hyperparameters_fail_at_fit_naming_them(params, match):
    est = AutoencoderTransformer(**{**FAST, **params})  # __init__ only stores
    with pytest.raises(ValueError, match=match):
        est.fit(np.random.default_rng(0).random((20, 4)))


def test_inverse_transform_checks_code_width(digits):
    X, _ = digits
    ae = AutoencoderTransformer(n_components=2, random_state=0, **FAST).fit(X)
    with pytest.raises(ValueError, match="n_components_=2"):
        ae.inverse_transform(np.zeros((3, 5)))


def test_early_stopping_holds_out_validation_data(digits):
    X, _ = digits
    ae = AutoencoderTransformer(n_components=2, hidden=(8,), epochs=50, patience=2, lr=3e-2, random_state=0).fit(X)
    h = ae.history_
    assert len(h.val_loss) == h.epochs and h.best_epoch is not None
    assert h.stopped_early or h.epochs == 50
    with pytest.raises(ValueError, match="validation sample"):
        AutoencoderTransformer(patience=2, **FAST).fit(X[:3])


@pytest.mark.parametrize(
    "reducer", [PCA(n_components=2), AutoencoderTransformer(n_components=2, random_state=0, **FAST)], ids=repr
)
def test_drop_in_for_pca_in_a_pipeline(digits, reducer):
    X, X_test = digits
    pipe = Pipeline([("scale", StandardScaler()), ("reduce", clone(reducer))]).fit(X)
    Z = pipe.transform(X_test)
    assert Z.shape == (100, 2) and Z.dtype == np.float64
    assert pipe.inverse_transform(Z).shape == X_test.shape
    assert np.isfinite(pipe.score(X_test))
    names = pipe.get_feature_names_out()
    assert len(names) == 2 and names[0].startswith(type(pipe[-1]).__name__.lower())


def test_grid_search_over_n_components(digits):
    X, _ = digits
    grid = GridSearchCV(AutoencoderTransformer(random_state=0, **FAST), {"n_components": [1, 8]}, cv=2).fit(X)
    # more components reconstruct better on held-out folds, so the search must pick 8
    assert grid.best_params_ == {"n_components": 8}
    assert grid.best_estimator_.n_components_ == 8
    assert grid.cv_results_["mean_test_score"][1] > grid.cv_results_["mean_test_score"][0]
