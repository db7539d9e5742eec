"""Loss slices and attractors: exact polynomials of linear networks, PCA's projection, a memorizing network."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from torch.func import jacrev

from analysis.measures.landscape import attractor_fraction, attractors, filter_normalized_direction, loss_slice
from analysis.measures.reconstruction import pca_as_autoencoder
from autoenc import Autoencoder, ModelConfig, TrainConfig, fit, reconstruct


def _linear(hidden, seed=0, d=6, k=3):
    """A float64 linear autoencoder with some trained-looking (random) weights and nonzero biases."""
    return Autoencoder(ModelConfig(d, k, hidden, linear=True), dtype=torch.float64).reset_parameters(
        torch.Generator().manual_seed(seed))


# --- loss slices -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hidden, only, degree", [
    ((), None, 4), ((), "decoder", 2), ((), "encoder", 2), ((5,), None, 8), ((5,), "decoder", 4)])
@pytest.mark.parametrize("include_biases", [False, True])
def test_linear_slice_is_an_exact_polynomial(rng, hidden, only, degree, include_biases):
    # f is a product of (number of moving layers) affine maps, each linear in alpha: the squared error has twice
    # that degree
    model = _linear(hidden)
    X_seen, X_unseen = rng.standard_normal((30, 6)), rng.standard_normal((20, 6))
    frame = loss_slice(model, X_seen, X_unseen, steps=25, span=1.5, seed=3, only=only,
                       include_biases=include_biases)
    for split, part in frame.groupby("split"):
        alpha, loss = part["alpha"].to_numpy(), part["loss"].to_numpy()
        fit_at = np.linspace(0, len(alpha) - 1, degree + 1).astype(int)  # degree + 1 points pin the polynomial
        rest = np.setdiff1d(np.arange(len(alpha)), fit_at)
        poly = np.polynomial.Polynomial.fit(alpha[fit_at], loss[fit_at], degree)
        np.testing.assert_allclose(poly(alpha[rest]), loss[rest], rtol=1e-9, atol=0)
        lower = np.polynomial.Polynomial.fit(alpha[fit_at[:-1]], loss[fit_at[:-1]], degree - 1)
        assert np.max(np.abs(lower(alpha[rest]) - loss[rest]) / loss[rest]) > 1e-3  # the degree is the true one


def test_slice_origin_and_two_directions_agree(rng):
    model = Autoencoder(ModelConfig(6, 2, (8,)), dtype=torch.float64).reset_parameters(torch.Generator().manual_seed(1))
    X_seen, X_unseen = rng.random((25, 6)), rng.random((15, 6))
    one = loss_slice(model, X_seen, X_unseen, steps=7, seed=5)
    two = loss_slice(model, X_seen, X_unseen, directions=2, steps=7, seed=5)
    assert list(two.columns) == ["alpha", "beta", "split", "loss"] and len(two) == 7 * 7 * 2
    # the 2-D grid's first direction is the 1-D slice's direction: its beta = 0 line is the 1-D slice
    line = two[two["beta"] == 0].drop(columns="beta").reset_index(drop=True)
    pd.testing.assert_frame_equal(line, one, rtol=1e-12)
    for split, X in (("train", X_seen), ("test", X_unseen)):
        at_zero = one[(one["alpha"] == 0) & (one["split"] == split)]["loss"].item()
        assert at_zero == pytest.approx(np.mean((reconstruct(model, X) - X) ** 2), rel=1e-12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss_slice(model, X_seen, steps=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is left as it was


def test_filter_normalized_direction():
    model = _linear((5,))
    full = filter_normalized_direction(model, generator=torch.Generator().manual_seed(0))
    dec = filter_normalized_direction(model, generator=torch.Generator().manual_seed(0), only="decoder")
    with_bias = filter_normalized_direction(model, generator=torch.Generator().manual_seed(0), include_biases=True)
    for name, p in model.named_parameters():
        if p.ndim == 2:  # each row (a unit's incoming weights) has the norm of the weights' row
            torch.testing.assert_close(full[name].norm(dim=1), p.detach().norm(dim=1), rtol=1e-12, atol=0)
        else:
            assert torch.all(full[name] == 0)
            torch.testing.assert_close(with_bias[name].norm(), p.detach().norm(), rtol=1e-12, atol=0)
        if name.startswith("decoder."):
            assert torch.equal(dec[name], full[name])  # same draws whatever moves
        else:
            assert torch.all(dec[name] == 0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"directions": 3}, ValueError, "directions must be 1 or 2, got 3"),
    ({"only": "middle"}, ValueError, "only must be None, 'encoder', 'decoder'"),
    ({"only": ["decoder.0.weight", "nope"]}, ValueError, r"unknown or no parameter\(s\) \['nope'\]"),
    ({"steps": 1}, ValueError, "steps must be >= 2"),
    ({"span": 0}, ValueError, "span must be a finite number > 0"),
    ({"X_unseen": np.zeros((3, 5))}, ValueError, "X_unseen has 5 features, expected 6"),
])
def test_loss_slice_rejects(kwargs, error, match):
    kwargs = {"X_unseen": None, **kwargs}
    with pytest.raises(error, match=match):
        loss_slice(_linear(()), np.zeros((4, 6)), **kwargs)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module .*pca_as_autoencoder"):
        loss_slice(PCA(2), np.zeros((4, 6)))


# --- attractors --------------------------------------------------------------------------------------------------

def _pca_float64(X, k):
    """PCA as an autoencoder with its exact float64 components (the float32 copy is a projection only to 1e-7)."""
    return pca_as_autoencoder(PCA(k).fit(X), dtype=torch.float64)


def test_pca_jacobian_is_a_projection_with_spectral_radius_one(rng):
    X = rng.standard_normal((80, 10)) @ rng.standard_normal((10, 10))
    model = _pca_float64(X, 4)
    J = jacrev(model)(torch.from_numpy(X[0]))
    torch.testing.assert_close(J @ J, J, rtol=0, atol=1e-12)
    torch.testing.assert_close(J, J.T, rtol=0, atol=1e-12)
    assert torch.trace(J).item() == pytest.approx(4, abs=1e-12)
    frame = attractors(model, X, n_iter=5)
    np.testing.assert_allclose(frame["spectral_radius"], 1.0, rtol=0, atol=1e-12)
    assert not frame["attractor"].any() and attractor_fraction(frame) == 0
    # off its subspace a sample is no fixed point: f(x) - x is the residual of the projection
    residual = np.linalg.norm(reconstruct(model, X) - X, axis=1) / np.linalg.norm(X, axis=1).mean()
    np.testing.assert_allclose(frame["fixed_point_error"], residual, rtol=1e-10)


@pytest.mark.parametrize("d, k", [(10, 2), (20, 3), (64, 4), (64, 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [1, 3, 4])  # radius 1 rounds to 1 - 6e-16 (float64) or 1 - 6e-8 (float32) for some
def test_data_in_pcas_subspace_has_no_attractors(d, k, dtype, seed):
    # every sample is a fixed point of the projection, but a neutral one: the push's component in the subspace is
    # never undone (radius exactly 1, rounding either side of it), however small k/d makes the distance look
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((800, k)) @ rng.standard_normal((k, d)) + 0.5
    frame = attractors(pca_as_autoencoder(PCA(k).fit(X), dtype=dtype), X)
    assert frame["attractor"].sum() == 0 and not frame["contracts"].any()
    np.testing.assert_allclose(frame["distance"], frame["distance_first"], rtol=1e-3)  # nothing shrinks
    np.testing.assert_allclose(frame["spectral_radius"], 1.0, rtol=0, atol=1e-5)


def test_a_contraction_inside_the_margin_is_no_attractor(rng):
    # f(x) = c x with c just below 1: the radius is under 1 and the iterates shrink, but not by the margin
    model = Autoencoder(ModelConfig(5, 5, (), linear=True), dtype=torch.float64)
    enc, dec = model.linear_layers()
    with torch.no_grad():
        enc.weight.copy_(torch.eye(5)), enc.bias.zero_(), dec.bias.zero_()
        dec.weight.copy_(0.999 * torch.eye(5))
    X = np.zeros((3, 5))
    frame = attractors(model, X, n_iter=3, tol=10.0)  # any distance counts as returning: only contraction decides
    assert frame["returns"].all() and not frame["contracts"].any() and not frame["attractor"].any()
    assert attractors(model, X, n_iter=3, tol=10.0, margin=1e-4)["attractor"].all()  # a margin it does clear


def test_spectral_radius_and_return_of_a_contraction(rng):
    # f(x) = c x: Jacobian c I, iterates c^n (x + delta) -> 0, so only the zero sample is returned to
    model = Autoencoder(ModelConfig(5, 5, (), linear=True), dtype=torch.float64)
    enc, dec = model.linear_layers()
    with torch.no_grad():
        enc.weight.copy_(torch.eye(5)), dec.weight.copy_(0.5 * torch.eye(5)), enc.bias.zero_(), dec.bias.zero_()
    X = np.vstack([np.zeros(5), rng.standard_normal((4, 5))])
    frame = attractors(model, X, n_iter=60, reference=X)
    np.testing.assert_allclose(frame["spectral_radius"], 0.5, rtol=1e-12)
    assert frame["attractor"].tolist() == [True, False, False, False, False]
    scale = np.linalg.norm(X, axis=1).mean()
    np.testing.assert_allclose(frame["distance"], np.linalg.norm(X, axis=1) / scale, rtol=1e-9, atol=1e-15)
    assert (frame["nearest"] == 0).all() and frame["nearest_distance"].max() < 1e-15


def test_memorizing_autoencoder_makes_its_training_samples_attractors():
    # Radhakrishnan, Belkin & Uhler (2020): trained to near-zero loss on a handful of samples, an
    # over-parameterized autoencoder contracts towards them; held-out samples are pulled onto them
    X = (load_digits().data / 16).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))
    train, held_out = X[order[:5]], X[order[100:150]]
    model = Autoencoder(ModelConfig(64, 16, (64, 64)))
    history = fit(model, train, config=TrainConfig(epochs=600, batch_size=5, lr=3e-3, seed=1), progress=False)
    assert history.train_loss[-1] < 1e-9
    seen = attractors(model, train, reference=train)
    unseen = attractors(model, held_out, reference=train)
    assert seen["fixed_point_error"].max() < 1e-3
    assert attractor_fraction(seen) >= 0.6 and attractor_fraction(unseen) == 0
    assert seen["spectral_radius"].median() < 1 < unseen["spectral_radius"].median()
    # the iterates of unseen digits are pulled towards stored ones: they end nearer to one than they started
    start = np.linalg.norm(held_out[:, None] - train[None], axis=2).min(1) / np.linalg.norm(held_out, axis=1).mean()
    assert (unseen["nearest_distance"] < 0.5 * start).mean() > 0.8


def test_attractor_fraction_by_group():
    frame = pd.DataFrame({"split": ["train"] * 4 + ["test"] * 2, "attractor": [True, True, True, False, False, False]})
    by = attractor_fraction(frame, by="split")
    assert by.set_index("split")["attractor_fraction"].to_dict() == {"test": 0.0, "train": 0.75}
    with pytest.raises(ValueError, match=r"missing column\(s\) \['attractor'\]"):
        attractor_fraction(frame.drop(columns="attractor"))


def test_attractors_rejects(rng):
    model = _linear(())
    with pytest.raises(ValueError, match="X has 5 features, expected 6"):
        attractors(model, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="tol must be a finite number > 0"):
        attractors(model, np.zeros((3, 6)), tol=0)
    with pytest.raises(ValueError, match="reference has 4 features, expected 6"):
        attractors(model, np.zeros((3, 6)), reference=np.zeros((2, 4)))
    for margin in (0, 1, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="margin must be a number in \\(0, 1\\)"):
            attractors(model, np.zeros((3, 6)), margin=margin)
    with pytest.raises(ValueError, match="n_iter must be >= 2"):
        attractors(model, np.zeros((3, 6)), n_iter=1)
    with pytest.raises(ValueError, match="perturbation must be a finite number > 0"):
        attractors(model, np.zeros((3, 6)), perturbation=0)


# --- plots -------------------------------------------------------------------------------------------------------

def test_plot_loss_slice_lines_and_contours(rng):
    from analysis.report.plots_dynamics import plot_loss_slice

    model = _linear(())
    X = rng.standard_normal((20, 6))
    ax = plot_loss_slice(loss_slice(model, X[:10], X[10:], steps=9))
    assert len([line for line in ax.lines if len(line.get_xdata()) == 9]) == 2 and ax.get_yscale() == "log"
    legend = ax.get_legend()
    drawn = {t.get_text(): h.get_linestyle() for h, t in zip(legend.legend_handles, legend.get_texts())}
    assert drawn == {"seen (train)": "--", "unseen (test)": "-"}  # as in every figure
    import matplotlib.pyplot as plt

    _, ax2 = plt.subplots()
    plot_loss_slice(loss_slice(model, X[:10], X[10:], directions=2, steps=9), ax=ax2)
    assert len(ax2.collections) >= 2  # a contour set per split (matplotlib >= 3.8: one collection each)
    labels = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert labels == ["seen (train)", "unseen (test)", "trained weights"]
    styles = [h.get_linestyle() for h in ax2.get_legend().legend_handles[:2]]
    assert styles == ["--", "-"]  # seen contours dashed, unseen solid


def test_plot_attractors_shares_in_tick_labels():
    from analysis.report.plots_dynamics import plot_attractors

    frame = pd.DataFrame({"split": ["train"] * 4 + ["test"] * 2, "spectral_radius": [0.5, 0.7, 0.9, 1.2, 1.3, 1.1],
                          "attractor": [True, True, True, False, False, False], "margin": 0.05})
    ax = plot_attractors(frame)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["seen (train)\n75% attractors", "unseen (test)\n0% attractors"]
    heights = {line.get_gid(): list(line.get_ydata()) for line in ax.lines if line.get_gid()}
    assert heights == {"neutral": [1.0, 1.0], "bound": [0.95, 0.95]}  # neutral radius, and the attractors' bound


def test_plot_attractors_jitter_is_the_same_every_time_and_leaves_numpy_s_global_state_alone():
    import matplotlib.pyplot as plt

    from analysis.report.plots_dynamics import plot_attractors

    frame = pd.DataFrame({"split": ["train"] * 30 + ["test"] * 30, "spectral_radius": np.linspace(0.5, 1.5, 60),
                          "attractor": [True] * 10 + [False] * 50})
    state = np.random.get_state()[1].copy()
    drawn = [np.concatenate([c.get_offsets() for c in plot_attractors(frame, ax=plt.subplots()[1]).collections])
             for _ in range(2)]
    assert np.array_equal(drawn[0], drawn[1])
    assert np.array_equal(np.random.get_state()[1], state)
    spread = drawn[0][:, 0] - np.round(drawn[0][:, 0])  # each point around its strip's position 0 or 1
    assert 0.1 < np.abs(spread).max() <= 0.25


@pytest.mark.parametrize("config", [ModelConfig(20, 3, (16,), activation="tanh"),
                                    ModelConfig(16, 2, (4,), kind="conv", input_shape=(1, 4, 4))])
def test_spectral_radius_through_the_code_equals_the_full_jacobian_s(config):
    """Sylvester: J_dec J_enc (d x d) and J_enc J_dec (k x k) share their nonzero eigenvalues."""
    from torch.func import jacrev, vmap

    from analysis.measures.landscape import _spectral_radii

    model = Autoencoder(config, dtype=torch.float64).eval()
    model.reset_parameters(torch.Generator().manual_seed(0))  # not the global generator: earlier tests move it
    X = torch.as_tensor(np.random.default_rng(0).random((7, config.input_dim)))
    full = torch.linalg.eigvals(vmap(jacrev(lambda x: model(x[None])[0]))(X)).abs().amax(1).detach().numpy()
    np.testing.assert_allclose(_spectral_radii(model, X), full, rtol=1e-10)
    assert full.min() > 1e-3  # a real comparison, not two zeros


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu"])
@pytest.mark.parametrize("hidden", [(), (9,), (9, 5)])
def test_hand_written_jacobians_equal_torch_funcs(activation, hidden):
    """The layer-by-layer Jacobians of an MLP's encoder, decoder and whole map are torch.func's, to 1e-10."""
    from torch.func import vmap

    from analysis.measures._jacobian import mlp_layers, stack_jacobian
    from analysis.measures.landscape import _spectral_radii

    model = Autoencoder(ModelConfig(7, 3, hidden, activation=activation), dtype=torch.float64).eval()
    model.reset_parameters(torch.Generator().manual_seed(1))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)  # PyTorch's initialization contracts: a map with radii of order 1 tests more
    X = torch.as_tensor(np.random.default_rng(2).standard_normal((6, 7)))
    Z = model.encode(X).detach()
    for stack, inputs, f in ((model.encoder, X, model.encode), (model.decoder, Z, model.decode),
                             (torch.nn.Sequential(*model.encoder, *model.decoder), X, model)):
        J, out = stack_jacobian(mlp_layers(stack), inputs)
        expected = vmap(jacrev(lambda x, f=f: f(x[None])[0]))(inputs).detach()
        torch.testing.assert_close(J, expected, rtol=0, atol=1e-10)
        torch.testing.assert_close(out, f(inputs).detach(), rtol=0, atol=0)
    full = torch.linalg.eigvals(vmap(jacrev(lambda x: model(x[None])[0]))(X)).abs().amax(1).detach().numpy()
    np.testing.assert_allclose(_spectral_radii(model, X), full, rtol=1e-10)
    assert full.max() > 1e-2  # a real comparison, not two zeros


def test_spectral_radii_of_an_mlp_equal_torch_funcs_bit_for_bit_and_skip_dynamo():
    """float32, the study's shapes: the same numbers as vmap(jacrev(...)), without importing torch._dynamo."""
    import subprocess
    import sys

    code = """
import sys, numpy as np, torch
from analysis.measures import landscape
from analysis.measures._jacobian import func_jacobian
from autoenc import Autoencoder, ModelConfig
torch.manual_seed(0)
model = Autoencoder(ModelConfig(64, 8, (256,))).eval()
X = torch.as_tensor(np.random.default_rng(0).random((50, 64)), dtype=torch.float32)
hand = landscape._spectral_radii(model, X)
loaded = 'torch._dynamo' in sys.modules
with torch.no_grad():
    func = torch.linalg.eigvals(func_jacobian(model, True)(X)).abs().amax(1).numpy()
print(loaded, np.array_equal(hand, func.astype(np.float64)), hand.min() > 1e-3)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"], out.stdout + out.stderr
