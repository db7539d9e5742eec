"""Convolutional autoencoders: shapes, the linear/PCA optimum, batched members against solo fit, persistence."""
import copy
import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import ortho_group
from sklearn.base import clone
from sklearn.decomposition import PCA

from autoenc import ACTIVATIONS, Autoencoder, AutoencoderTransformer, ModelConfig, TrainConfig, encode, fit, load, \
    reconstruct, save
from autoenc.batched import _fit_group, fit_group
from autoenc.planning import can_group, plan_groups
from autoenc._conv_batched import _ConvStack

FIVE = TrainConfig(epochs=5, batch_size=32, lr=3e-3, weight_decay=1e-4)


def conv(shape, k, hidden=(4, 8), **kwargs):
    return ModelConfig(int(np.prod(shape)), k, hidden, kind="conv", input_shape=shape, **kwargs)


def _mse(X_hat, X):
    return float(np.mean((np.asarray(X_hat, np.float64) - X) ** 2))


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --- config and shapes -------------------------------------------------------------------------------------------

def test_conv_config_round_trips_and_mlp_json_is_unchanged():
    c = conv((3, 28, 28), 16, (8, 16), kernel_size=4)
    assert ModelConfig.from_json(c.to_json()) == c
    assert c.spatial_shapes == [(28, 28), (14, 14), (7, 7)]
    mlp = ModelConfig(64, 8, (32,))
    old = {"input_dim": 64, "bottleneck": 8, "hidden": [32], "activation": "relu", "linear": False}
    assert mlp.to_dict() == old  # what config.json files held before convolutional models existed
    assert ModelConfig.from_dict(old) == mlp
    assert TrainConfig().to_dict() == {k: v for k, v in TrainConfig(device="cpu").to_dict().items()}
    assert "device" not in TrainConfig().to_dict() and TrainConfig(device="auto").to_dict()["device"] == "auto"
    assert TrainConfig.from_json(TrainConfig(device="cuda:1").to_json()).device == "cuda:1"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kind": "rnn"}, ValueError, r"unknown kind 'rnn'; valid kinds are \['mlp', 'conv'\]"),
        ({"kind": "conv"}, ValueError, "kind='conv' needs input_shape"),
        ({"kind": "conv", "input_shape": (2, 5, 5)}, ValueError, r"input_shape=\(2, 5, 5\) holds 50 values but "
                                                                  "input_dim=64"),
        ({"kind": "conv", "input_shape": (64,)}, ValueError, "input_shape must be .channels, height, width."),
        ({"kind": "conv", "input_shape": (1, 8, 0)}, ValueError, r"input_shape\[2\] must be >= 1"),
        ({"kind": "conv", "input_shape": (1, 8, 8), "hidden": (2, 2, 2, 2), "kernel_size": 4}, ValueError,
         r"too small for 4 convolution stage\(s\) .* stage 4 would map \(1, 1\) to \(0, 0\)"),
        ({"kind": "conv", "input_shape": (1, 8, 8), "kernel_size": 0}, ValueError, "kernel_size must be >= 1"),
        ({"input_shape": (1, 8, 8)}, ValueError, "input_shape=.* applies to kind='conv' only"),
        ({"stride": 1}, ValueError, "stride=1 applies to kind='conv' only"),
    ],
)
def test_model_config_rejects_bad_conv_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        ModelConfig(**{"input_dim": 64, "bottleneck": 2, **kwargs})


@pytest.mark.parametrize("device, match", [("gpu", "device must be one of"), ("cuda:x", "device must be one of"),
                                           (None, "device must be one of")])
def test_train_config_rejects_bad_devices(device, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(device=device)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 7, 5), (2, 11), (1, 4, 9)])
@pytest.mark.parametrize("kernel_size, stride", [(3, 2), (4, 2), (5, 3), (1, 1)])
def test_conv_model_maps_rows_back_to_their_shape(shape, kernel_size, stride, rng):
    config = conv(shape, 3, (4, 6), kernel_size=kernel_size, stride=stride)
    model = Autoencoder(config)
    X = rng.random((5, config.input_dim), dtype=np.float32)
    assert reconstruct(model, X).shape == X.shape and encode(model, X).shape == (5, 3)
    layers = model.weighted_layers()
    assert [type(m).__name__[:6] for m in layers] == ["Conv" + str(len(shape) - 1) + "d"] * 2 + ["Linear"] * 2 + \
        ["ConvTr"] * 2
    # the decoder's transposed convolutions invert the encoder's sizes exactly, stage by stage
    x = torch.as_tensor(X).reshape(5, *shape)
    for layer in layers[:2]:
        x = layer(x)
    assert tuple(x.shape[2:]) == config.spatial_shapes[-1]


def test_reset_parameters_is_pytorchs_default_bound_and_seeded():
    model = Autoencoder(conv((2, 8, 8), 4, (3, 5)))
    a = [p.clone() for p in model.reset_parameters(torch.Generator().manual_seed(1)).parameters()]
    b = [p.clone() for p in model.reset_parameters(torch.Generator().manual_seed(1)).parameters()]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    conv_t = model.decoder[-2]  # (in=3, out=2, 3, 3): PyTorch's fan-in of a transposed convolution is out * 3 * 3
    assert conv_t.weight.abs().max() <= 1 / np.sqrt(2 * 9) and conv_t.weight.abs().max() > 0.8 / np.sqrt(2 * 9)


# --- the linear optimum ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def channel_data():
    """4-channel 4 x 4 images whose every pixel's channel vector lies in one 2-D subspace U (orthonormal columns).

    The 2 latent channels hold rank-3 structure plus noise, so PCA at k=3 leaves a known, nonzero error; a 1 x 1
    convolution to 2 channels loses nothing, and its linear network can represent PCA's projection exactly.
    """
    rng = np.random.default_rng(0)
    n, positions, k = 512, 16, 3
    U = ortho_group.rvs(4, random_state=1)[:, :2]  # (4 channels, 2 latent channels)
    S = rng.normal(size=(n, k)) @ rng.normal(size=(k, 2 * positions)) + 0.1 * rng.normal(size=(n, 2 * positions))
    S += 0.5  # a mean for the biases to carry
    X = np.einsum("cl,nlp->ncp", U, S.reshape(n, 2, positions)).reshape(n, 4 * positions)
    return X.astype(np.float32), U, S, k


def _one_by_one(k):
    return conv((4, 4, 4), k, (2,), kernel_size=1, stride=1, linear=True)


def test_one_by_one_linear_conv_holds_pca_exactly(channel_data):
    X, U, S, k = channel_data
    model = Autoencoder(_one_by_one(k), dtype=torch.float64)
    pca_s = PCA(k).fit(S)  # in latent-channel coordinates, flattened channel-major like the convolution's output
    W, mean = torch.as_tensor(pca_s.components_), torch.as_tensor(pca_s.mean_)
    enc_conv, code = model.encoder[1], model.encoder[3]
    dec, dec_conv = model.decoder[0], model.decoder[2]
    with torch.no_grad():
        enc_conv.weight.copy_(torch.as_tensor(U.T).reshape(2, 4, 1, 1)), enc_conv.bias.zero_()
        code.weight.copy_(W), code.bias.copy_(-W @ mean)
        dec.weight.copy_(W.T), dec.bias.copy_(mean)
        dec_conv.weight.copy_(torch.as_tensor(U.T).reshape(2, 4, 1, 1)), dec_conv.bias.zero_()  # (in, out, 1, 1)
    pca = PCA(k).fit(X)
    best = _mse(pca.inverse_transform(pca.transform(X)), X)
    assert best > 1e-3  # the noise makes the optimum nonzero: exactness below is not a zero-error accident
    # exact up to X's float32 rounding, which leaves a trace (~1e-9 relative) outside U's span
    assert _mse(reconstruct(model, X.astype(np.float64)), X) == pytest.approx(best, rel=1e-7)
    # training from the optimum (float32, warm start, small steps) does not make it worse
    model32 = copy.deepcopy(model).float()
    tc = TrainConfig(epochs=20, batch_size=64, lr=1e-5, seed=0)
    history = fit(model32, X, config=tc, warm_start=True, progress=False)
    assert max(history.train_loss) <= best * (1 + 1e-3)
    assert _mse(reconstruct(model32, X), X) <= best * (1 + 1e-3)


def test_one_by_one_linear_conv_trains_to_the_pca_optimum(channel_data):
    X, _, _, k = channel_data
    model = Autoencoder(_one_by_one(k))
    for i, (epochs, lr) in enumerate([(300, 1e-2), (100, 1e-3)]):
        fit(model, X, config=TrainConfig(epochs=epochs, batch_size=128, lr=lr, seed=0), warm_start=i > 0,
            progress=False)
    pca = PCA(k).fit(X)
    best = _mse(pca.inverse_transform(pca.transform(X)), X)
    got = _mse(reconstruct(copy.deepcopy(model).double(), X.astype(np.float64)), X)
    # never better than PCA (the optimum); measured 0.12-0.18% above it for seeds 0-2 (100 + 50 epochs: ~2%)
    assert best * (1 - 1e-6) <= got <= best * 1.01
    # the tolerance discriminates: the same network with a ReLU (after the first 100 epochs) is 12x off
    relu = Autoencoder(_one_by_one(k).replace(linear=False))
    fit(relu, X, config=TrainConfig(epochs=100, batch_size=128, lr=1e-2, seed=0), progress=False)
    assert _mse(reconstruct(relu, X), X) > best * 1.01


# --- batched members ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((200, 2 * 8 * 8), dtype=np.float32), rng.random((50, 2 * 8 * 8), dtype=np.float32)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "gelu"])
def test_conv_members_match_solo_fit(images, activation):
    X, X_val = images
    configs = [conv((2, 8, 8), k, h, activation=activation) for k, h in [(2, (4, 8)), (8, (6, 5)), (5, (6, 8))]]
    train_configs = [FIVE.replace(seed=s) for s in (0, 0, 1)]  # bottleneck, channels and seed all differ
    results = fit_group(configs, X, X_val, train_configs, progress=False)
    for config, tc, result in zip(configs, train_configs, results):
        model = Autoencoder(config)
        history = fit(model, X, X_val, tc, progress=False)
        assert result.error is None and result.model.config == config
        assert _rel(result.history.train_loss, history.train_loss) < 1e-5
        assert _rel(result.history.val_loss, history.val_loss) < 1e-5
        np.testing.assert_allclose(reconstruct(result.model, X_val), reconstruct(model, X_val), rtol=0, atol=1e-5)


@pytest.mark.parametrize("config", [conv((3, 12), 4, (4, 6), kernel_size=4), conv((3, 4, 4), 4, (), kernel_size=1),
                                    conv((4, 4, 4), 3, (2,), kernel_size=1, stride=1, linear=True)])
def test_other_conv_shapes_match_solo_fit(images, config, rng):
    X = rng.random((150, config.input_dim), dtype=np.float32)
    noisy = np.stack([X, X + rng.normal(0, 0.1, X.shape).astype(np.float32)])  # one input per member
    results = fit_group([config, config], noisy, train_configs=[FIVE, FIVE.replace(seed=3)], progress=False)
    for m, result in enumerate(results):
        history = fit(Autoencoder(config), noisy[m], config=[FIVE, FIVE.replace(seed=3)][m], progress=False)
        assert _rel(result.history.train_loss, history.train_loss) < 1e-5


@pytest.mark.parametrize("activation, shape, kernel_size, stride",
                         [(a, (3, 9, 7), 3, 2) for a in ACTIVATIONS] + [("relu", (2, 11), 4, 2),
                                                                        ("sigmoid", (1, 8, 8), 5, 3),
                                                                        ("relu", (1, 10, 9), 1, 2),  # phases no
                                                                        ("tanh", (2, 9, 9), 2, 3)])  # patch reaches
def test_conv_hand_written_backward_matches_autograd(activation, shape, kernel_size, stride, rng):
    configs = [conv(shape, k, h, activation=activation, kernel_size=kernel_size, stride=stride)
               for k, h in [(2, (4, 5)), (5, (3, 6)), (1, (4, 2))]]  # padded channels and bottlenecks
    stack = _ConvStack(configs, torch.float64)
    models = [Autoencoder(c, dtype=torch.float64).reset_parameters(torch.Generator().manual_seed(m))
              for m, c in enumerate(configs)]
    for m, model in enumerate(models):
        stack.set_member(m, model)
    x = torch.as_tensor(rng.normal(size=(3, 6, configs[0].input_dim)))
    cache = []
    out = stack.forward(x, cache)
    for m, model in enumerate(models):
        torch.testing.assert_close(out[m], model(x[m]), rtol=1e-12, atol=1e-13)
    diff = out.clone().sub_(x)
    stack.backward(diff.mul_(2.0 / diff[0].numel()), cache)
    if stack.needs_pad_mask:
        stack.grad.mul_(stack.pad_mask)
    assert stack.padded and torch.all(stack.grad[stack.pad_mask == 0] == 0)
    for m, model in enumerate(models):
        F.mse_loss(model(x[m]), x[m]).backward()
        grads = stack.get_member(m, stack.grad)  # the gradient buffer read as if it held weights
        for (name, p), q in zip(model.named_parameters(), grads.parameters()):
            torch.testing.assert_close(q, p.grad, rtol=1e-10, atol=1e-13, msg=name)
    whole = stack.grad.clone()
    stack.grad.zero_()
    for members in (slice(0, 1), slice(1, 3)):  # a step's member slices (member_chunks) give the same, up to
        cache = []                               # the rounding of products over fewer members
        part = stack.forward(x[members], cache, members=members)
        torch.testing.assert_close(part, out[members], rtol=1e-12, atol=1e-15)
        stack.backward(part.clone().sub_(x[members]).mul_(2.0 / diff[0].numel()), cache, members=members)
    if stack.needs_pad_mask:
        stack.grad.mul_(stack.pad_mask)
    torch.testing.assert_close(stack.grad, whole, rtol=1e-12, atol=1e-15)


def test_conv_init_member_is_reset_parameters_bit_for_bit():
    configs = [conv((2, 8, 8), k, h) for k, h in [(2, (4, 5)), (5, (3, 6))]]
    stack = _ConvStack(configs, torch.float32)
    for m in range(2):
        stack.init_member(m, torch.Generator().manual_seed(10 + m))
    assert torch.all(stack.param[stack.pad_mask == 0] == 0)
    for m, config in enumerate(configs):
        ref = Autoencoder(config).reset_parameters(torch.Generator().manual_seed(10 + m))
        for (name, a), b in zip(ref.state_dict().items(), stack.get_member(m).state_dict().values()):
            assert torch.equal(a, b), name


def test_padded_conv_weights_stay_exactly_zero(images):
    configs = [conv((2, 8, 8), k, h, activation="sigmoid") for k, h in [(2, (4, 8)), (8, (6, 5))]]
    _, stack = _fit_group(configs, images[0], train_configs=FIVE.replace(epochs=2), progress=False)
    assert stack.padded and torch.all(stack.param[stack.pad_mask == 0] == 0)


def test_grouping_keeps_kinds_and_geometries_apart():
    a, b = conv((1, 8, 8), 2), conv((1, 8, 8), 6)
    assert can_group([a, b])
    assert not can_group([a, ModelConfig(64, 2, (4, 8))])  # an MLP of the same widths
    assert not can_group([a, conv((1, 8, 8), 2, kernel_size=4)])
    assert not can_group([a, conv((4, 4, 4), 2)])
    assert not can_group([a, a], [FIVE, FIVE.replace(device="auto")])
    assert plan_groups([a, ModelConfig(64, 2, (4, 8)), b]) == [[0, 2], [1]]
    with pytest.raises(ValueError, match=r"configs\[1\].kind='mlp' differs"):
        fit_group([a, ModelConfig(64, 2, (4, 8))], np.zeros((4, 64)), progress=False)


# --- persistence and the estimator -------------------------------------------------------------------------------

def test_conv_model_saved_and_loaded_reconstructs_bit_for_bit(tmp_path, images, monkeypatch):
    X, X_val = images
    model = Autoencoder(conv((2, 8, 8), 4, (3, 6), kernel_size=4))
    fit(model, X, config=FIVE, progress=False)
    save(model, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["input_shape"] == [2, 8, 8]

    def no_pickle(*args, **kwargs):
        raise AssertionError("load must not unpickle anything")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = load(tmp_path / "m")
    assert loaded.config == model.config
    assert np.array_equal(reconstruct(loaded, X_val), reconstruct(model, X_val))
    assert np.array_equal(encode(loaded, X_val), encode(model, X_val))


def test_transformer_with_conv_kind(images):
    X, X_val = images
    ae = AutoencoderTransformer(n_components=4, hidden=(3, 6), kind="conv", input_shape=(2, 8, 8), epochs=3,
                                random_state=0)
    Z = ae.fit(X).transform(X_val)
    assert Z.shape == (50, 4) and Z.dtype == np.float32 and ae.model_.config.kind == "conv"
    X_hat = ae.inverse_transform(Z)
    assert X_hat.shape == X_val.shape
    np.testing.assert_allclose(X_hat, reconstruct(ae.model_, X_val), rtol=0, atol=1e-6)
    assert ae.transform(X_val.astype(np.float64)).dtype == np.float64
    assert ae.score(X_val) == pytest.approx(-_mse(X_hat, X_val), rel=1e-5)
    again = clone(ae).fit(X)
    assert np.array_equal(again.transform(X_val), Z)  # the seed fixes the conv model too
    with pytest.raises(ValueError, match="input_shape=.*holds 100 values but input_dim=128"):
        clone(ae).set_params(input_shape=(1, 10, 10)).fit(X)


# --- the FLOP count and the batched-or-alone rule ----------------------------------------------------------------

def test_training_flops_of_a_small_conv_by_hand():
    from autoenc.planning import forward_macs, training_flops

    config = conv((1, 8, 8), 3, (2, 4))  # kernel 3, stride 2
    assert config.spatial_shapes == [(8, 8), (4, 4), (2, 2)]
    # im2col products: 16 positions x 9 taps x 1 -> 2 channels, 4 x 9 x 2 -> 4, the code 16 -> 3 and back, and
    # the transposed convolutions mirroring the convolutions
    macs = 16 * 9 * 1 * 2 + 4 * 9 * 2 * 4 + 16 * 3 + 3 * 16 + 4 * 9 * 2 * 4 + 16 * 9 * 1 * 2
    assert forward_macs(config) == macs == 1248
    assert training_flops(config, 50, 3) == 6 * 1248 * 50 * 3


@pytest.mark.parametrize("config", [conv((1, 8, 8), 3, (2, 4)), conv((3, 12), 4, (4, 6), kernel_size=4),
                                    conv((2, 9, 7), 5, (3, 5), kernel_size=5, stride=3)])
def test_conv_forward_macs_is_what_torch_counts(config):
    from torch.utils.flop_counter import FlopCounterMode
    from autoenc.planning import forward_macs

    with FlopCounterMode(display=False) as counter:
        Autoencoder(config)(torch.zeros(5, config.input_dim))
    assert counter.get_total_flops() == 2 * 5 * forward_macs(config)


def test_large_conv_members_train_alone_where_native_kernels_win(images, monkeypatch):
    from autoenc import planning as _planning
    from autoenc._solo import _ModuleStack

    small, large = conv((2, 8, 8), 2), conv((2, 8, 8), 2, (16, 32))
    tcs = [FIVE.replace(seed=s) for s in range(3)]
    monkeypatch.setattr(_planning, "_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(_planning, "_CONV_SOLO_MACS", {"AVX512": 20_000})
    monkeypatch.setattr(_planning._kernels, "mkl_avx512", lambda: False)  # MKL's AVX2 kernels under im2col
    assert _planning.conv_batching_pays([small]) and not _planning.conv_batching_pays([large])
    assert plan_groups([small] * 3, tcs) == [[0, 1, 2]] and plan_groups([large] * 3, tcs) == [[0], [1], [2]]
    assert _planning.conv_batching_pays([large], FIVE.replace(device="cuda"))  # accelerators batch
    assert plan_groups([ModelConfig(64, 2, (1024,))] * 2, [FIVE] * 2) == [[0, 1]]  # MLPs are not concerned
    monkeypatch.setattr(_planning, "_cpu_capability", lambda: "AVX2")
    assert _planning.conv_batching_pays([large]) and plan_groups([large] * 3, tcs) == [[0, 1, 2]]
    monkeypatch.setattr(_planning, "_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(_planning._kernels, "mkl_avx512", lambda: True)  # MKL's AVX-512 kernels: batched wins
    assert _planning.conv_batching_pays([large]) and plan_groups([large] * 3, tcs) == [[0, 1, 2]]


def test_a_member_alone_on_native_kernels_is_solo_fit(images, monkeypatch):
    from autoenc import planning as _planning

    X, X_val = images
    config = conv((2, 8, 8), 3, (6, 8), activation="gelu")
    monkeypatch.setattr(_planning, "_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(_planning, "_CONV_SOLO_MACS", {"AVX512": 1})
    monkeypatch.setattr(_planning._kernels, "mkl_avx512", lambda: False)
    tc = FIVE.replace(seed=4, patience=2)
    results, stack = _fit_group([config], X, X_val, tc, progress=False)
    assert type(stack).__name__ == "_ModuleStack"
    model = Autoencoder(config)
    history = fit(model, X, X_val, tc, progress=False)
    (result,) = results
    # the same native kernels and Adam arithmetic as solo fit (the loss's gradient is formed in another order)
    for (name, a), b in zip(model.state_dict().items(), result.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)
    assert _rel(result.history.val_loss, history.val_loss) < 1e-6
    assert _rel(result.history.train_loss, history.train_loss) < 1e-6
    seen = []
    fit_group([config], X, X_val, FIVE, progress=False, eval_epochs=[2],
              on_eval=lambda epoch, rec: seen.append((epoch, rec(X_val).shape)))
    assert seen == [(2, (1, 50, 128)), (5, (1, 50, 128))]
