"""Degrees of freedom, SURE and the noise-memorization reference against constructed truths."""
import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

from analysis.measures.divergence import _mlp_chain, _plan, degrees_of_freedom
from analysis.measures.risk import nm_reference, sure
from analysis.measures.memorization import noise_memorization
from analysis.measures.reconstruction import pca_as_autoencoder, reconstruct_with
from autoenc import Autoencoder, AutoencoderTransformer, ModelConfig, TrainConfig, fit

# torch's forward-mode AD (Hutchinson's jvp) scripts its decompositions on first use, which torch itself deprecates
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")


class Opaque:
    """A fitted transformer the package knows nothing about: exercises the finite-difference fallback."""

    def __init__(self, inner):
        self.inner = inner

    def transform(self, X):
        return self.inner.transform(X)

    def inverse_transform(self, Z):
        return self.inner.inverse_transform(Z)


class Wrapped(torch.nn.Module):
    """Any torch module that is not a plain MLP: exercises the torch.func Jacobian path."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def signal_basis(d, rank, seed=0):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((d, rank)))[0].T


def lowrank(rng, n, basis, stds):
    """Clean rows in the span of ``basis`` (unit scale per direction) and Gaussian noise of std ``stds``."""
    rank, d = basis.shape
    return rng.standard_normal((n, rank)) @ basis + 0.5, stds * rng.standard_normal((n, d))


def monte_carlo_error(samples):
    return math.sqrt(float(np.sum(samples.std_error**2))) / len(samples)


# --- degrees of freedom ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d, k", [(40, 6, 1), (100, 20, 5), (80, 64, 32), (30, 8, 8)])
def test_pca_df_is_k_through_every_path(rng, n, d, k):
    X = rng.random((n, d))
    pca = PCA(k).fit(X)
    assert degrees_of_freedom(pca, X) == pytest.approx(k, abs=1e-12)
    assert degrees_of_freedom(pca_as_autoencoder(pca), X) == pytest.approx(k, abs=1e-4)  # float32 weights
    assert degrees_of_freedom(Opaque(pca), X) == pytest.approx(k, abs=1e-6)  # finite differences, exact when affine
    assert degrees_of_freedom(PCA(k, whiten=True).fit(X), X) == pytest.approx(k, abs=1e-6)  # still a projection


def test_linear_autoencoder_df_is_the_trace_of_its_weight_product(rng):
    model = Autoencoder(ModelConfig(12, 4, hidden=(9, 6), linear=True))
    model.reset_parameters(torch.Generator().manual_seed(3))
    with torch.no_grad():
        for layer in model.linear_layers():
            layer.weight.mul_(2.0)  # default initialization shrinks; a product with a sizeable trace
    product = np.eye(12)
    for layer in model.linear_layers():
        product = layer.weight.detach().double().numpy() @ product
    expected = float(np.trace(product))
    assert abs(expected) > 0.05  # a random product whose trace is not trivially 0
    X = rng.random((25, 12)).astype(np.float32)
    assert degrees_of_freedom(model, X) == pytest.approx(expected, abs=1e-6)
    assert degrees_of_freedom(Wrapped(model), X) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("config, path", [
    (ModelConfig(16, 4, hidden=(32,)), "collapse"),
    (ModelConfig(64, 2, hidden=(256,)), "walk"),  # narrow bottleneck: carrying 2 columns beats 256 x 256
    (ModelConfig(10, 10, hidden=(7,), activation="gelu"), "collapse"),
    (ModelConfig(10, 3, hidden=(20, 7), activation="tanh"), "walk"),
    (ModelConfig(12, 2, hidden=(30, 20, 10), activation="elu"), "walk"),
    (ModelConfig(9, 3, hidden=(5,), activation="sigmoid"), "collapse"),
])
def test_closed_form_matches_the_torch_func_jacobian(rng, config, path):
    model = Autoencoder(config)
    model.reset_parameters(torch.Generator().manual_seed(1))
    X = rng.standard_normal((40, config.input_dim)).astype(np.float32)
    assert _plan(_mlp_chain(model), *X.shape)[0] == (path == "collapse")
    df, samples = degrees_of_freedom(model, X, return_samples=True)
    reference, reference_samples = degrees_of_freedom(Wrapped(model), X, return_samples=True)
    np.testing.assert_allclose(samples.divergence, reference_samples.divergence, atol=1e-5)
    assert df == pytest.approx(reference, abs=1e-6)
    assert (samples.std_error == 0).all() and list(samples.columns) == ["sample", "divergence", "std_error"]


def trained_autoencoder(rng, d=16, k=4, width=48, sigma=0.3):
    clean, noise = lowrank(rng, 300, signal_basis(d, 3), sigma)
    model = Autoencoder(ModelConfig(d, k, hidden=(width,)))
    fit(model, (clean + noise).astype(np.float32), config=TrainConfig(epochs=100, batch_size=64, lr=3e-3),
        progress=False)
    return model


@pytest.mark.parametrize("seed", [0, 1])
def test_hutchinson_agrees_with_exact_within_its_standard_error(seed):
    rng = np.random.default_rng(seed)
    model = trained_autoencoder(rng)
    clean, noise = lowrank(rng, 200, signal_basis(16, 3), 0.3)
    X = (clean + noise).astype(np.float32)
    exact = degrees_of_freedom(model, X, method="exact")
    estimate, samples = degrees_of_freedom(model, X, method="hutchinson", n_probes=4, seed=seed,
                                           return_samples=True)
    error = monte_carlo_error(samples)
    assert exact > 1  # a model that passes some of its input through
    assert 0 < error < 0.1 * exact
    assert abs(estimate - exact) < 4 * error


def test_hutchinson_through_pca_and_finite_differences(rng):
    X = rng.random((150, 20))
    pca = PCA(5).fit(X)
    for model in (pca, Opaque(pca)):
        estimate, samples = degrees_of_freedom(model, X, method="hutchinson", n_probes=3, return_samples=True)
        assert abs(estimate - 5) < 4 * monte_carlo_error(samples)
    _, single = degrees_of_freedom(pca, X, method="hutchinson", n_probes=1, return_samples=True)
    assert single.std_error.isna().all()


def test_auto_switches_to_probes_beyond_256_features_for_generic_modules(rng):
    pca = PCA(3).fit(rng.random((20, 300)))
    X = rng.random((200, 300))
    _, samples = degrees_of_freedom(Opaque(pca), X, return_samples=True)
    assert (samples.std_error > 0).all()  # Monte Carlo
    _, samples = degrees_of_freedom(pca_as_autoencoder(pca), X.astype(np.float32), return_samples=True)
    assert (samples.std_error == 0).all()  # the closed form is cheaper than the probes for a plain MLP


def test_autoencoder_transformer_is_measured_through_its_network(rng):
    X = rng.random((60, 8)).astype(np.float32)
    est = AutoencoderTransformer(n_components=3, hidden=(16,), epochs=5, random_state=0).fit(X)
    assert degrees_of_freedom(est, X) == pytest.approx(degrees_of_freedom(est.model_, X), abs=1e-12)
    with pytest.raises(NotFittedError):
        degrees_of_freedom(AutoencoderTransformer(n_components=3), X)


def test_batches_and_threads_do_not_change_the_result(rng):
    model = Autoencoder(ModelConfig(10, 3, hidden=(20, 7), activation="tanh"))
    X = rng.random((37, 10)).astype(np.float32)
    one = degrees_of_freedom(model, X, return_samples=True)[1].divergence
    np.testing.assert_allclose(degrees_of_freedom(model, X, batch_size=5, threads=2, return_samples=True)[1]
                               .divergence, one, atol=1e-6)
    probed = degrees_of_freedom(model, X, method="hutchinson", seed=3, return_samples=True)[1]
    np.testing.assert_allclose(degrees_of_freedom(model, X, method="hutchinson", seed=3, batch_size=4,
                                                  return_samples=True)[1].divergence, probed.divergence, atol=1e-6)
    model.train()
    degrees_of_freedom(model, X)
    assert model.training


def test_degrees_of_freedom_bad_input(rng):
    X = rng.random((10, 4))
    pca = PCA(2).fit(X)
    with pytest.raises(ValueError, match="method must be one of"):
        degrees_of_freedom(pca, X, method="trace")
    with pytest.raises(ValueError, match="n_probes must be >= 1"):
        degrees_of_freedom(pca, X, n_probes=0)
    with pytest.raises(ValueError, match="X has 3 features but the model expects 4"):
        degrees_of_freedom(pca, X[:, :3])
    with pytest.raises(ValueError, match="X has 3 features but the model expects 4"):
        degrees_of_freedom(pca_as_autoencoder(pca), X[:, :3])
    with pytest.raises(NotFittedError):
        degrees_of_freedom(PCA(2), X)
    with pytest.raises(TypeError, match="model must be an autoenc.Autoencoder"):
        degrees_of_freedom(object(), X)


# --- SURE ------------------------------------------------------------------------------------------------------

def assert_sure_tracks_clean_error(reconstruction, X, clean, divergence, sigma):
    """Per row, SURE minus the clean error has mean 0 (Stein); allow 4 standard errors, and require power."""
    d = X.shape[1]
    noisy = np.mean((reconstruction - X) ** 2, axis=1)
    clean_error = np.mean((reconstruction - clean) ** 2, axis=1)
    per_row = sure(noisy, sigma, divergence, d)
    assert sure(noisy.mean(), sigma, divergence.mean(), d) == pytest.approx(per_row.mean(), abs=1e-12)
    diff = per_row - clean_error
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert abs(diff.mean()) < 4 * se
    assert abs(noisy.mean() - clean_error.mean()) > 10 * se  # the noisy error alone would be far off


@pytest.mark.parametrize("k", [1, 3, 12, 16])  # not 8 = d / 2, where SURE and the noisy error coincide
def test_sure_tracks_the_clean_error_of_pca(k):
    rng = np.random.default_rng(k)
    sigma, basis = 0.3, signal_basis(16, 3)
    train_clean, train_noise = lowrank(rng, 400, basis, sigma)
    pca = PCA(k).fit(train_clean + train_noise)
    clean, noise = lowrank(rng, 4000, basis, sigma)  # fresh rows of the same law, never seen by the model
    X = clean + noise
    _, samples = degrees_of_freedom(pca, X, return_samples=True)
    assert_sure_tracks_clean_error(reconstruct_with(pca, X), X, clean, samples.divergence.to_numpy(), sigma)


def test_sure_tracks_the_clean_error_of_a_trained_network():
    rng = np.random.default_rng(7)
    sigma = 0.3
    model = trained_autoencoder(rng, sigma=sigma)
    clean, noise = lowrank(rng, 4000, signal_basis(16, 3), sigma)
    X = (clean + noise).astype(np.float32)
    _, samples = degrees_of_freedom(model, X, return_samples=True)
    assert_sure_tracks_clean_error(reconstruct_with(model, X).astype(np.float64), X.astype(np.float64), clean,
                                   samples.divergence.to_numpy(), sigma)


def test_sure_closed_forms_and_broadcasting():
    assert sure(0.0, 0.2, 64, 64) == pytest.approx(0.04, abs=1e-15)  # the identity: sigma^2 against the signal
    assert sure(0.5, 0.0, 10, 64) == 0.5  # no noise: the error is the clean error
    out = sure(np.array([0.1, 0.2]), 0.1, np.array([4.0, 8.0]), 16)
    np.testing.assert_allclose(out, [0.1 - 0.01 + 0.02 * 4 / 16, 0.2 - 0.01 + 0.02 * 8 / 16])
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        sure(0.1, -1.0, 2, 8)
    with pytest.raises(ValueError, match="n_features must be a positive integer"):
        sure(0.1, 0.1, 2, 0)
    with pytest.raises(ValueError, match="df must be finite"):
        sure(0.1, 0.1, math.nan, 8)


# --- nm_reference ----------------------------------------------------------------------------------------------

def test_pca_noise_memorization_matches_nm_reference_on_anisotropic_noise():
    rng = np.random.default_rng(0)
    d, k = 20, 6
    stds = np.geomspace(0.03, 0.3, d)  # per-feature noise stds varying by 10x
    basis = signal_basis(d, 3)
    train_clean, train_noise = lowrank(rng, 2000, basis, stds)
    pca = PCA(k).fit(train_clean + train_noise)
    clean, noise = lowrank(rng, 10000, basis, stds)  # unseen rows: there PCA is a fixed projection
    nm = noise_memorization(reconstruct_with(pca, clean + noise), clean, noise)
    for given in (stds**2, np.diag(stds**2), noise):
        reference = nm_reference(pca.components_, given)
        assert nm == pytest.approx(reference, abs=0.01)
    assert abs(nm_reference(pca.components_, stds**2) - k / d) > 0.1  # far from the isotropic line


@pytest.mark.parametrize("k, d", [(1, 4), (5, 20), (20, 20)])
def test_nm_reference_is_k_over_d_for_isotropic_noise(rng, k, d):
    components = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    assert nm_reference(components, np.full(d, 0.04)) == pytest.approx(k / d, abs=1e-12)
    assert nm_reference(components, 0.04 * np.eye(d)) == pytest.approx(k / d, abs=1e-12)
    skewed = components * np.arange(1, k + 1)[:, None]  # any basis of the same span: the same projection
    assert nm_reference(skewed, np.full(d, 0.04)) == pytest.approx(k / d, abs=1e-12)


def test_nm_reference_reads_kinds_and_rejects_bad_input(rng):
    components = np.eye(3)[:1]
    sample = rng.standard_normal((3, 3))  # a (d, d) sample, not symmetric: read as a sample
    expected = np.sum(sample[:, 0] ** 2) / np.sum(sample**2)
    assert nm_reference(components, sample) == pytest.approx(expected)
    assert nm_reference(components, sample @ sample.T, kind="sample") == pytest.approx(
        np.sum((sample @ sample.T)[:, 0] ** 2) / np.sum((sample @ sample.T) ** 2))
    assert nm_reference(np.vstack([components, 2 * components]), [9.0, 1.0, 1.0]) == pytest.approx(0.9 / 1.1)
    with pytest.raises(ValueError, match="noise has 2 variances but components has 3 features"):
        nm_reference(components, [1.0, 1.0])
    with pytest.raises(ValueError, match="noise has no energy"):
        nm_reference(components, np.zeros(3))
    with pytest.raises(ValueError, match="cannot be read as kind='covariance'"):
        nm_reference(components, rng.standard_normal((5, 3)), kind="covariance")
    with pytest.raises(ValueError, match="noise has 4 features, expected 3"):
        nm_reference(components, rng.standard_normal((5, 4)))


def test_probes_are_drawn_batch_by_batch_the_same_whatever_the_batching(rng):
    """The probes of every row at once were n x n_probes x d doubles (77 MB here, gigabytes on MNIST-size data)."""
    import tracemalloc

    model = Autoencoder(ModelConfig(300, 4, (8,)), dtype=torch.float64)
    X = rng.random((4000, 300))
    whole = degrees_of_freedom(model, X, method="hutchinson", seed=1, batch_size=4000, return_samples=True)[1]
    tracemalloc.start()
    try:
        small = degrees_of_freedom(model, X, method="hutchinson", seed=1, batch_size=100, return_samples=True)[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes  # a batch's probes (100 rows), not all rows' (77 MB, 8x X)
    np.testing.assert_allclose(small["divergence"], whole["divergence"], rtol=1e-10, atol=1e-12)


def test_the_batch_budget_counts_a_convolution_s_feature_maps():
    from analysis.measures.reconstruction import widest_row

    conv = Autoencoder(ModelConfig(784, 8, (16, 32), kind="conv", input_shape=(1, 28, 28)))
    assert widest_row(conv, 784) == 16 * 14 * 14  # the first feature map, not 784
    assert widest_row(Autoencoder(ModelConfig(20, 2, (50,))), 20) == 50
    assert widest_row(torch.nn.Sequential(conv.encoder, conv.decoder), 784) == 16 * 14 * 14  # by hooks


def test_exact_df_of_a_wide_convolution_stays_within_its_batch_budget():
    """Each row carries d cotangents through the widest layer (here 256 channels of 4 x 4): batches counted on
    d x d alone took 0.9 GB for 300 rows of 8 x 8 digits; counted on the widest layer, about 70 MB."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import resource
        import numpy as np, torch
        from autoenc import Autoencoder, ModelConfig
        from analysis.measures.divergence import degrees_of_freedom
        torch.set_num_threads(1)
        model = Autoencoder(ModelConfig(64, 4, (256,), kind="conv", input_shape=(1, 8, 8)))
        X = np.random.default_rng(0).random((300, 64), dtype=np.float32)
        degrees_of_freedom(model, X[:2], method="exact")  # first-call costs before the baseline
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        degrees_of_freedom(model, X, method="exact")
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
    """)
    grown_mb = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown_mb < 300
