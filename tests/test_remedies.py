"""Remedies against memorization: closed-form optima, per-sample gradients, the accountant, solo against batched."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm
from torch.func import functional_call, grad, vmap

from autoenc import Autoencoder, ModelConfig, TrainConfig, config_epsilon, dp_epsilon, fit, reconstruct
from autoenc.batched import _Stack, fit_group
from autoenc.planning import can_group, plan_groups
from autoenc.train import dp_schedule, seeds

F64 = torch.float64


def _data(n, eig, seed=0):
    """n centered samples whose covariance is exactly Q diag(eig) Q^T; returns them and Q."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, len(eig)))
    Z -= Z.mean(0)
    Z = Z @ np.linalg.inv(np.linalg.cholesky(Z.T @ Z / n)).T  # exactly white
    Q, _ = np.linalg.qr(rng.standard_normal((len(eig), len(eig))))
    return Z * np.sqrt(eig) @ Q.T, Q


def _linear_map(model):
    return model.decoder[0].weight.detach().numpy() @ model.encoder[0].weight.detach().numpy()


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --- configuration ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, match", [
    ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout"), ({"input_noise": -1.0}, "input_noise"),
    ({"dp_clip": 0.0}, "dp_clip"), ({"dp_noise": 1.0}, "dp_noise=1.0 needs dp_clip"),
    ({"dp_clip": 1.0, "dp_noise": -1.0}, "dp_noise"), ({"dp_clip": 1.0, "dropout": 0.1}, "not supported"),
])
def test_bad_remedies_raise_naming_the_argument(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)
    with pytest.raises(TypeError, match="restore_best"):
        TrainConfig(restore_best=1)


def test_remedies_round_trip_and_old_configs_load():
    config = TrainConfig(weight_decay=1e-3, dropout=0.2, input_noise=0.1, restore_best=True)
    assert TrainConfig.from_json(config.to_json()) == config
    dp = TrainConfig(dp_clip=1.0, dp_noise=2.0)
    assert TrainConfig.from_dict(dp.to_dict()) == dp
    plain = TrainConfig().to_dict()
    assert not {"dropout", "input_noise", "dp_clip", "dp_noise", "restore_best"} & set(plain)  # JSON unchanged
    assert TrainConfig.from_dict(plain) == TrainConfig()


def test_convolutions_refuse_dropout_and_dp():
    conv = ModelConfig(16, 2, (2,), kind="conv", input_shape=(1, 4, 4))
    X = np.zeros((4, 16), np.float32)
    for config in (TrainConfig(epochs=1, dropout=0.1), TrainConfig(epochs=1, dp_clip=1.0)):
        with pytest.raises(ValueError, match="not supported for convolutional"):
            fit(Autoencoder(conv), X, config=config, progress=False)
        with pytest.raises(ValueError, match="not supported for convolutional"):
            fit_group([conv], X, train_configs=config, progress=False)


# --- oracles: closed-form optima ---------------------------------------------------------------------------------

def test_weight_decay_reaches_the_regularized_linear_autoencoder_optimum():
    """Kunin et al. (2019): PCA's top-k directions, component i shrunk by 1 - mu / s_i.

    ``fit`` minimizes (1/d) tr((I - A) S (I - A)^T) (the mean over samples and features) while Adam's coupled L2
    adds wd * W to each gradient, i.e. (wd / 2)(|W_enc|^2 + |W_dec|^2) to the loss: times d, Kunin's loss with
    mu = wd * d / 2. Centered data keep the (also decayed) biases at zero.
    """
    eig, k, wd = np.array([4.0, 2.0, 1.0, 0.5, 0.25]), 2, 0.2
    X, Q = _data(200, eig)
    mu = wd * len(eig) / 2
    optimum = (Q[:, :k] * (1 - mu / eig[:k])) @ Q[:, :k].T
    model = Autoencoder(ModelConfig(5, k, (), linear=True), dtype=F64)
    fit(model, X, config=TrainConfig(epochs=800, batch_size=200, lr=1e-2, weight_decay=wd), progress=False)
    fit(model, X, config=TrainConfig(epochs=500, batch_size=200, lr=1e-3, weight_decay=wd), progress=False,
        warm_start=True)
    np.testing.assert_allclose(_linear_map(model), optimum, atol=1e-3)
    assert np.abs(optimum - Q[:, :k] @ Q[:, :k].T).max() > 0.1  # the shrinkage is far from plain PCA's


def test_input_noise_reaches_the_wiener_map():
    eig, s = np.array([2.0, 1.0, 0.5, 0.25]), 0.5
    X, _ = _data(1000, eig, seed=1)
    S = X.T @ X / len(X)
    wiener = S @ np.linalg.inv(S + s**2 * np.eye(4))
    model = Autoencoder(ModelConfig(4, 4, (), linear=True), dtype=F64)
    fit(model, X, config=TrainConfig(epochs=300, batch_size=100, lr=1e-2, input_noise=s), progress=False)
    fit(model, X, config=TrainConfig(epochs=300, batch_size=1000, lr=1e-3, input_noise=s, seed=1), progress=False,
        warm_start=True)
    np.testing.assert_allclose(_linear_map(model), wiener, atol=0.02)
    assert np.abs(wiener - np.eye(4)).max() > 0.4  # far from the identity a noiseless full-rank model learns


# --- DP-SGD --------------------------------------------------------------------------------------------------

def _per_sample(model, x, clip):
    """torch.func's per-sample gradients of mean((f(x_i) - x_i)^2): their norms and clipped sum, flat."""
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(p, xi):
        return (functional_call(model, p, (xi[None],)) - xi[None]).square().mean()

    g = vmap(grad(loss), in_dims=(None, 0))(params, x)
    flat = torch.cat([v.flatten(1) for v in g.values()], 1)
    norms = flat.norm(dim=1)
    return norms, (torch.clamp(clip / norms, max=1)[:, None] * flat).sum(0)


def _solo_order(stack, m):
    """Member m's gradient slots in ``Autoencoder.parameters()`` order: weight, bias, layer by layer."""
    views = stack.member_views(m, stack.views(stack.grad))
    n_layers = len(views) // 2
    return [v for i in range(n_layers) for v in (views[i], views[n_layers + i])]


@pytest.mark.parametrize("activation, shapes", [("sigmoid", [(3, (8,)), (2, (5,))]),
                                                ("tanh", [(2, (6, 4)), (3, (6, 3))])])
def test_clipped_per_sample_gradients_equal_torch_func(activation, shapes, rng):
    configs = [ModelConfig(7, k, h, activation=activation) for k, h in shapes]
    stack = _Stack(configs, F64)
    for m in range(len(configs)):
        stack.init_member(m, torch.Generator().manual_seed(m))
    x = torch.as_tensor(rng.normal(size=(len(configs), 9, 7)))
    clip = torch.tensor([[0.05], [1e9]], dtype=F64)  # one member clipped, one not
    cache = []
    diff = stack.forward(x, cache).sub_(x)
    norms = stack.clipped_backward(diff.mul_(2.0 / 7), cache, clip)
    for m in range(len(configs)):
        ref_norms, ref_sum = _per_sample(stack.get_member(m), x[m], clip[m, 0])
        torch.testing.assert_close(norms[m], ref_norms, rtol=1e-12, atol=0)
        ours = torch.cat([v.T.flatten() if v.dim() == 2 else v for v in _solo_order(stack, m)])
        torch.testing.assert_close(ours, ref_sum, rtol=1e-10, atol=1e-14)
    if activation == "sigmoid":  # padded units output 1/2: their weights' gradients are masked in training only
        assert stack.grad[stack.pad_mask == 0].abs().max() > 0


def _poisson_reference(config, X, mc):
    """Plain training on Poisson batches: autograd on sum_i mean((f(x_i) - x_i)^2) / (rate * n), torch's Adam."""
    model = Autoencoder(mc, dtype=F64)
    init_seed, order_seed = seeds(config.seed)
    model.reset_parameters(torch.Generator().manual_seed(init_seed))
    order = torch.Generator().manual_seed(order_seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    X = torch.as_tensor(X)
    rate, steps = dp_schedule(len(X), config.batch_size)
    for _ in range(config.epochs * steps):
        xb = X[torch.nonzero(torch.rand(len(X), generator=order) < rate).flatten()]
        loss = (model(xb) - xb).square().mean(1).sum() / (rate * len(X))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_dp_without_noise_and_clipping_is_plain_training_on_poisson_batches(rng):
    X = rng.random((60, 6))
    mc, config = ModelConfig(6, 2, (8,)), TrainConfig(epochs=4, batch_size=16, lr=1e-2, dp_clip=1e9, seed=3)
    reference = _poisson_reference(config, X, mc)
    model = Autoencoder(mc, dtype=F64)
    fit(model, X, config=config, progress=False)
    group = fit_group([mc, mc], X, train_configs=[config, config.replace(seed=4)], dtype=F64, progress=False)
    for trained in (model, group[0].model):
        for p, q in zip(trained.parameters(), reference.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_one_clipped_step_equals_the_hand_computed_one(rng):
    """n = batch_size: rate 1, one step, every sample in it; Adam's first step moves by lr * g / (|g| + eps)."""
    X, clip, lr = rng.random((8, 5)), 0.02, 1e-2
    mc, config = ModelConfig(5, 2, (4,)), TrainConfig(epochs=1, batch_size=8, lr=lr, dp_clip=clip, seed=1)
    start = Autoencoder(mc, dtype=F64).reset_parameters(torch.Generator().manual_seed(seeds(1)[0]))
    per_sample = []
    for x in torch.as_tensor(X):
        start.zero_grad()
        (start(x[None]) - x[None]).square().mean().backward()
        per_sample.append(torch.cat([p.grad.flatten() for p in start.parameters()]))
    g = sum(v * min(1.0, clip / float(v.norm())) for v in per_sample) / 8
    assert max(float(v.norm()) for v in per_sample) > clip  # the clip binds
    expected = torch.cat([p.detach().flatten() for p in start.parameters()]) - lr * g / (g.abs() + 1e-8)
    model = Autoencoder(mc, dtype=F64)
    fit(model, X, config=config, progress=False)
    (member,) = fit_group([mc], X, train_configs=config, dtype=F64, progress=False)
    for trained in (model, member.model):
        torch.testing.assert_close(torch.cat([p.detach().flatten() for p in trained.parameters()]), expected,
                                   rtol=1e-10, atol=1e-12)


def test_dp_members_with_their_own_clip_and_noise_match_solo_fit(rng):
    X, X_val = rng.random((50, 6)), rng.random((20, 6))
    configs = [ModelConfig(6, k, (8,)) for k in (2, 3, 2)]
    tcs = [TrainConfig(epochs=3, batch_size=10, lr=1e-2, dp_clip=c, dp_noise=z, seed=s)
           for c, z, s in [(0.5, 1.0, 0), (0.1, 0.0, 1), (1.0, 3.0, 0)]]
    results = fit_group(configs, X, X_val, tcs, dtype=F64, progress=False)
    for mc, tc, result in zip(configs, tcs, results):
        history = fit(Autoencoder(mc, dtype=F64), X, X_val, tc, progress=False)
        assert _rel(result.history.train_loss, history.train_loss) < 1e-9
        assert _rel(result.history.val_loss, history.val_loss) < 1e-9


def test_epsilon_falls_with_noise_and_matches_the_exact_gaussian_mechanism():
    eps = [dp_epsilon(z, 0.05, 100, 1e-5) for z in (0.8, 1.5, 4.0)]
    assert all(a > b for a, b in zip(eps, eps[1:]))
    assert dp_epsilon(0.0, 0.05, 100, 1e-5) == math.inf
    # rate 1, T steps: one Gaussian mechanism of noise z / sqrt(T), whose exact (epsilon, delta) curve is
    # delta = Phi(1/(2s) - eps s) - e^eps Phi(-1/(2s) - eps s) (Balle & Wang 2018, Theorem 8)
    z, steps, delta = 8.0, 16, 1e-5
    s = z / math.sqrt(steps)
    exact = brentq(lambda e: norm.cdf(1 / (2 * s) - e * s) - math.exp(e) * norm.cdf(-1 / (2 * s) - e * s) - delta,
                   1e-6, 50)
    assert dp_epsilon(z, 1.0, steps, delta) == pytest.approx(exact, rel=1e-3)
    config = TrainConfig(epochs=5, batch_size=100, dp_clip=1.0, dp_noise=1.5)
    assert config_epsilon(config, 1000) == dp_epsilon(1.5, 0.1, 50, 1e-3)
    with pytest.raises(ValueError, match="dp_clip"):
        config_epsilon(TrainConfig(), 1000)
    with pytest.raises(ValueError, match="sample_rate"):
        dp_epsilon(1.0, 1.5, 10, 1e-5)


# --- restore_best ------------------------------------------------------------------------------------------------

def _memorizing_case(rng):
    """Ten noisy samples of a rank-2 signal, clean samples of it, and a network wide enough to store the ten:
    the error on clean samples falls, then rises as the noise is stored."""
    basis = rng.normal(size=(2, 8))
    X = rng.normal(size=(10, 2)) @ basis + 0.7 * rng.normal(size=(10, 8))
    return X, rng.normal(size=(50, 2)) @ basis, ModelConfig(8, 8, (64,))


def test_restore_best_returns_the_minimum_epoch_of_the_validation_loss(rng):
    X, X_val, mc = _memorizing_case(rng)
    config = TrainConfig(epochs=40, batch_size=5, lr=1e-2, restore_best=True)
    model = Autoencoder(mc, dtype=F64)
    history = fit(model, X, X_val, config, progress=False)
    best = min(history.criterion, key=history.criterion.get)
    assert history.best_epoch == best < config.epochs and history.epochs == config.epochs
    assert history.criterion[best] == history.val_loss[best - 1]
    assert np.mean((reconstruct(model, X_val) - X_val) ** 2) == pytest.approx(history.criterion[best], rel=1e-12)
    (member,) = fit_group([mc], X, X_val, config, dtype=F64, progress=False)
    assert member.history.best_epoch == best
    assert _rel(reconstruct(member.model, X_val), reconstruct(model, X_val)) < 1e-9


def test_restore_best_in_a_group_follows_what_on_eval_returns(rng):
    X, probe, mc = _memorizing_case(rng)  # the criterion: error on clean samples, no validation loss
    config = TrainConfig(epochs=40, batch_size=5, lr=1e-2, restore_best=True)
    tcs = [config.replace(seed=s) for s in (0, 1)]

    def on_eval(epoch, reconstruct_all):
        return ((reconstruct_all(probe) - probe) ** 2).mean(axis=(1, 2))

    evaluated = [2, 5, 8, 12, 20, 30]
    results = fit_group([mc, mc], X, None, tcs, dtype=F64, progress=False, eval_epochs=evaluated, on_eval=on_eval)
    for result in results:
        h = result.history
        assert sorted(h.criterion) == evaluated + [40]
        assert h.best_epoch == min(h.criterion, key=h.criterion.get) < 40
        assert np.mean((reconstruct(result.model, probe) - probe) ** 2) == pytest.approx(
            h.criterion[h.best_epoch], rel=1e-12)
    with pytest.raises(ValueError, match="restore_best"):
        fit_group([mc], X, None, config, progress=False)
    with pytest.raises(ValueError, match="one criterion value per member"):
        fit_group([mc], X, None, config, progress=False, on_eval=lambda e, r: [1.0, 2.0])


def test_restore_best_with_patience_stops_at_the_criterion(rng):
    X, X_val, mc = _memorizing_case(rng)
    config = TrainConfig(epochs=200, batch_size=5, lr=1e-2, restore_best=True, patience=5)
    history = fit(Autoencoder(mc, dtype=F64), X, X_val, config, progress=False)
    assert history.stopped_early and history.epochs == history.best_epoch + 5


# --- solo against batched, remedies that differ within a group ---------------------------------------------------

def test_members_with_their_own_decay_dropout_and_noise_match_solo_fit(rng):
    X, X_val = rng.random((80, 8)), rng.random((30, 8))
    configs = [ModelConfig(8, k, h, activation="tanh") for k, h in [(2, (12,)), (3, (10,)), (2, (12,)), (4, (6,))]]
    tcs = [TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=s, weight_decay=wd, dropout=p, input_noise=sd)
           for s, wd, p, sd in [(0, 0.0, 0.0, 0.0), (1, 1e-2, 0.0, 0.1), (0, 0.0, 0.3, 0.0), (2, 1e-3, 0.2, 0.2)]]
    results = fit_group(configs, X, X_val, tcs, dtype=F64, progress=False)
    for mc, tc, result in zip(configs, tcs, results):
        model = Autoencoder(mc, dtype=F64)
        history = fit(model, X, X_val, tc, progress=False)
        assert _rel(result.history.train_loss, history.train_loss) < 1e-10
        assert _rel(result.history.val_loss, history.val_loss) < 1e-10
    assert len({r.history.train_loss[-1] for r in results}) == 4


def test_dropout_is_off_at_evaluation_and_off_means_todays_numbers(rng):
    X = rng.random((40, 6)).astype(np.float32)
    mc = ModelConfig(6, 2, (16,))
    model = Autoencoder(mc)
    history = fit(model, X, X, TrainConfig(epochs=2, batch_size=8, dropout=0.5), progress=False)
    assert not model.training
    np.testing.assert_array_equal(reconstruct(model, X), reconstruct(model, X))
    assert history.val_loss[-1] == pytest.approx(float(np.mean((reconstruct(model, X) - X) ** 2)), rel=1e-6)
    plain = fit(Autoencoder(mc), X, config=TrainConfig(epochs=2, batch_size=8), progress=False)
    off = fit(Autoencoder(mc), X, config=TrainConfig(epochs=2, batch_size=8, dropout=0.0, input_noise=0.0),
              progress=False)
    assert plain.train_loss == off.train_loss


def test_planning_groups_remedies_and_splits_dp():
    mc = ModelConfig(64, 8, (64,))
    tcs = [TrainConfig(weight_decay=1e-4), TrainConfig(dropout=0.1), TrainConfig(input_noise=0.2),
           TrainConfig(dp_clip=1.0, dp_noise=1.0), TrainConfig(dp_clip=2.0, dp_noise=4.0), TrainConfig(restore_best=True)]
    assert plan_groups([mc] * 6, tcs) == [[0, 1, 2], [3, 4], [5]]
    assert can_group([mc] * 3, tcs[:3]) and not can_group([mc] * 2, tcs[2:4])
    with pytest.raises(ValueError, match="DP-SGD"):
        fit_group([mc] * 2, np.zeros((4, 64), np.float32), train_configs=tcs[2:4], progress=False)
