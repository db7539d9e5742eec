"""Batched training of a group: solo fit is the oracle, member by member, loss by loss."""
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from autoenc import ACTIVATIONS, Autoencoder, DivergenceError, ModelConfig, TrainConfig, fit, reconstruct
from autoenc import _group_data, _kernels, _mkl, _stacked, batched, planning
from autoenc._kernels import BMM, ONEDNN, ONEDNN_T, SKINNY
from autoenc.batched import MemberResult, _FusedAdam, _Stack, _fit_group, fit_group
from autoenc.planning import can_group, plan_groups

FIVE = TrainConfig(epochs=5, batch_size=32, lr=3e-3, weight_decay=1e-4)


@pytest.fixture(scope="module")
def digits():
    """Digits scaled to [0, 1], shuffled once: 300 train and 100 validation samples."""
    X = load_digits().data / 16
    order = np.random.default_rng(0).permutation(len(X))
    return X[order[:300]], X[order[300:400]]


def _solo(config, X, X_val, train_config, dtype):
    model = Autoencoder(config, dtype=dtype)
    return model, fit(model, X, X_val, train_config, progress=False)


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --- exactness against solo fit --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_members_match_solo_fit(digits, dtype, tol, activation):
    X, X_val = (x.astype(np.float32 if dtype == torch.float32 else np.float64) for x in digits)
    configs = [ModelConfig(64, k, (h,), activation=activation) for k, h in [(2, 32), (8, 24), (16, 32), (4, 20)]]
    train_configs = [FIVE.replace(seed=s) for s in (0, 0, 1, 2)]  # bottleneck, width and seed all differ
    results = fit_group(configs, X, X_val, train_configs, dtype=dtype, progress=False)
    for config, tc, result in zip(configs, train_configs, results):
        model, history = _solo(config, X, X_val, tc, dtype)
        assert result.error is None and result.history.epochs == 5
        assert _rel(result.history.train_loss, history.train_loss) < tol
        assert _rel(result.history.val_loss, history.val_loss) < tol
        assert type(result.model) is Autoencoder and result.model.config == config and not result.model.training
        assert result.model.state_dict().keys() == model.state_dict().keys()
        np.testing.assert_allclose(reconstruct(result.model, X_val), reconstruct(model, X_val), rtol=0,
                                   atol=10 * tol)


@pytest.mark.parametrize("gather_bytes", [2**26, 0])  # the whole epoch at once, or step by step
def test_per_member_inputs_match_solo_fit(digits, monkeypatch, gather_bytes, rng):
    monkeypatch.setattr(_group_data, "_GATHER_BYTES", gather_bytes)
    X, X_val = (x.astype(np.float32) for x in digits)
    noisy = np.stack([X + rng.normal(0, 0.2, X.shape).astype(np.float32) for _ in range(3)])  # 3 noise draws
    configs = [ModelConfig(64, 8, (32,), activation="tanh")] * 3
    results = fit_group(configs, noisy, X_val, FIVE, progress=False)
    for m, result in enumerate(results):
        _, history = _solo(configs[m], noisy[m], X_val, FIVE, torch.float32)
        assert _rel(result.history.train_loss, history.train_loss) < 1e-5
    assert len({r.history.train_loss[-1] for r in results}) == 3  # they did see different data


@pytest.mark.parametrize("shared", [True, False])
def test_an_epoch_s_rows_are_gathered_as_indexing_gathers_them_into_one_buffer(rng, shared):
    X = torch.from_numpy(rng.standard_normal((1 if shared else 3, 50, 4)).astype(np.float32))
    X = X.expand(3, 50, 4) if shared else X
    buffers = {}
    for epoch in range(2):
        idx = torch.stack([torch.randperm(50) for _ in range(3)])
        expected = X[torch.arange(3)[:, None], idx]
        rows = _group_data._gather(X, shared, idx, buffers, "targets")
        assert torch.equal(rows, expected) and rows.shape == (3, 50, 4)
        assert rows.data_ptr() == buffers["targets"].data_ptr()  # the same memory every epoch
        assert torch.equal(_group_data._gather(X, shared, idx[:, :7]), expected[:, :7])  # a step's, fresh
    strided = X.transpose(0, 1).contiguous().transpose(0, 1)  # per-member data that is not contiguous
    assert torch.equal(_group_data._gather(strided, False, idx), expected)


@pytest.mark.parametrize("hidden", [(), (32, 16)])
def test_other_depths_and_linear_match_solo_fit(digits, hidden):
    X = digits[0].astype(np.float32)
    for linear in (False, True):
        configs = [ModelConfig(64, k, hidden, activation="gelu", linear=linear) for k in (3, 12)]
        results = fit_group(configs, X, train_configs=FIVE, progress=False)
        for config, result in zip(configs, results):
            _, history = _solo(config, X, None, FIVE, torch.float32)
            assert _rel(result.history.train_loss, history.train_loss) < 1e-5


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_hand_written_backward_matches_autograd(activation, rng):
    configs = [ModelConfig(6, k, h, activation=activation) for k, h in [(2, (5, 3)), (3, (4, 4)), (1, (5, 2))]]
    stack = _Stack(configs, torch.float64)
    models = [Autoencoder(c, dtype=torch.float64).reset_parameters(torch.Generator().manual_seed(m))
              for m, c in enumerate(configs)]
    for m, model in enumerate(models):
        stack.set_member(m, model)
    x = torch.as_tensor(rng.normal(size=(3, 7, 6)))
    cache = []
    diff = stack.forward(x, cache).sub_(x)
    stack.backward(diff.mul_(2.0 / diff[0].numel()), cache)
    if stack.needs_pad_mask:
        stack.grad.mul_(stack.pad_mask)
    assert torch.all(stack.grad[stack.pad_mask == 0] == 0)  # padded weights get exactly zero gradient
    for m, model in enumerate(models):
        F.mse_loss(model(x[m]), x[m]).backward()
        for i, layer in enumerate(model.linear_layers()):
            got = stack.grads[i][m, : layer.in_features, : layer.out_features].T
            torch.testing.assert_close(got, layer.weight.grad, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(stack.grads[len(stack.layers) + i][m, 0, : layer.out_features],
                                       layer.bias.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_init_member_is_reset_parameters_bit_for_bit(dtype):
    configs = [ModelConfig(6, k, h) for k, h in [(2, (5, 3)), (3, (4, 4)), (1, (5, 2))]]  # padded members
    stack = _Stack(configs, dtype)
    for m in range(len(configs)):
        stack.init_member(m, torch.Generator().manual_seed(100 + m))
    assert torch.all(stack.param[stack.pad_mask == 0] == 0)
    for m, config in enumerate(configs):
        model = Autoencoder(config, dtype=dtype).reset_parameters(torch.Generator().manual_seed(100 + m))
        got = stack.get_member(m)
        assert type(got) is Autoencoder and got.config == config and not got.training
        assert all(p.dtype == dtype for p in got.parameters())
        for (name, ours), (ref_name, ref) in zip(got.state_dict().items(), model.state_dict().items()):
            assert name == ref_name and torch.equal(ours, ref)


@pytest.mark.parametrize("kernel", ["direct", "fallback"])
def test_fused_adam_is_torch_adam_bit_for_bit(rng, monkeypatch, kernel):
    if kernel == "fallback":  # as on a torch without the private kernel: through torch.optim.Adam
        monkeypatch.setattr(_stacked, "_FUSED_ADAM", None)
    p0 = torch.as_tensor(rng.normal(size=50), dtype=torch.float32)
    ours, ref = p0.clone(), p0.clone().requires_grad_(True)
    grad = torch.zeros_like(p0)
    adam = _FusedAdam(ours, grad, lr=1e-2, weight_decay=1e-3)
    torch_adam = torch.optim.Adam([ref], lr=1e-2, weight_decay=1e-3, fused=True)
    for _ in range(10):
        g = torch.as_tensor(rng.normal(size=50), dtype=torch.float32)
        grad.copy_(g)
        ref.grad = g.clone()
        adam.step()
        torch_adam.step()
    assert torch.equal(ours, ref.detach())


# --- padding, freezing, divergence -----------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["sigmoid", "relu", "silu"])
def test_padded_weights_stay_exactly_zero(digits, activation):
    configs = [ModelConfig(64, k, (h,), activation=activation) for k, h in [(2, 16), (12, 24), (5, 20)]]
    _, stack = _fit_group(configs, digits[0], train_configs=FIVE.replace(epochs=3), progress=False)
    assert stack.padded
    assert torch.all(stack.param[stack.pad_mask == 0] == 0)
    assert torch.count_nonzero(stack.param[stack.pad_mask == 1]) == int(stack.pad_mask.sum())


def test_early_stopped_member_is_frozen_at_its_best(digits, rng):
    X, X_val = (x.astype(np.float32) for x in digits)
    # member 0 learns pure noise, so its validation loss soon stops improving; member 1 learns the digits
    inputs = np.stack([rng.random(X.shape, dtype=np.float32), X])
    tc = TrainConfig(epochs=40, batch_size=32, lr=1e-2, weight_decay=1e-3, patience=2)
    configs = [ModelConfig(64, 16, (64,)), ModelConfig(64, 8, (64,))]
    results, stack = _fit_group(configs, inputs, X_val, tc, progress=False)
    stopped, running = results
    assert stopped.history.stopped_early and stopped.history.epochs < running.history.epochs
    _, solo = _solo(configs[0], inputs[0], X_val, tc, torch.float32)
    assert solo.epochs == stopped.history.epochs and solo.best_epoch == stopped.history.best_epoch
    assert _rel(stopped.history.val_loss, solo.val_loss) < 1e-5
    best = int(np.argmin(stopped.history.val_loss))
    assert stopped.history.best_epoch == best + 1
    # the stacked weights never moved after it stopped: they still are the best epoch's, as returned
    for i, layer in enumerate(stopped.model.linear_layers()):
        assert torch.equal(stack.tensors[i][0, : layer.in_features, : layer.out_features], layer.weight.T)
    mse = float(((reconstruct(stopped.model, X_val) - X_val) ** 2).mean())
    assert mse == pytest.approx(stopped.history.val_loss[best], rel=1e-5)


def test_diverging_member_is_dropped_without_disturbing_the_others(digits):
    X, X_val = (x.astype(np.float32) for x in digits)
    configs = [ModelConfig(64, k, (32,)) for k in (4, 8, 16)]
    bad = np.stack([X, X * 1e20, X])  # squared errors overflow float32: the loss is infinite
    with pytest.raises(DivergenceError) as solo:
        fit(Autoencoder(configs[1]), bad[1], X_val, FIVE, progress=False)
    results, stack = _fit_group(configs, bad, X_val, FIVE, progress=False)
    assert results[1].model is None and results[1].error == str(solo.value)
    assert "epoch 1" in results[1].error and results[1].history.epochs == 1
    assert torch.all(torch.cat([t[1].flatten() for t in stack.tensors]) == 0)
    good = fit_group(configs[::2], bad[::2], X_val, FIVE, progress=False)
    for with_bad, without in zip(results[::2], good):
        assert with_bad.error is None
        assert _rel(with_bad.history.train_loss, without.history.train_loss) < 1e-6
        assert _rel(with_bad.history.val_loss, without.history.val_loss) < 1e-6


# --- grouping ----------------------------------------------------------------------------------------------------

def test_can_group():
    a, b = ModelConfig(64, 2, (64,)), ModelConfig(64, 32, (64,))
    assert can_group([a, b], [FIVE.replace(seed=0), FIVE.replace(seed=7)])
    assert not can_group([a, b], [FIVE, FIVE.replace(lr=1e-2)])
    assert not can_group([a, ModelConfig(32, 2, (64,))])
    assert not can_group([a, ModelConfig(64, 2, (64, 32))])
    assert not can_group([a, ModelConfig(64, 2, (64,), activation="tanh")])
    assert can_group([ModelConfig(64, 2, (64,), linear=True), ModelConfig(64, 8, (64,), "tanh", linear=True)])
    assert not can_group([ModelConfig(64, 2, (16,)), ModelConfig(64, 2, (1024,))])  # most of the work wasted
    assert can_group([ModelConfig(64, 2, (16,)), ModelConfig(64, 2, (1024,))], max_padding=100)


def test_plan_groups_on_the_default_grid():
    grid = [(ModelConfig(64, k, (h,)), TrainConfig(seed=s)) for k in (2, 4, 8, 16, 32) for h in (16, 64, 256, 1024)
            for s in (0, 1, 2)]
    configs, train_configs = zip(*grid)
    groups = plan_groups(configs, train_configs)
    assert sorted(i for g in groups for i in g) == list(range(len(grid)))
    for group in groups:
        assert len(group) <= 16
        assert len({configs[i].hidden for i in group}) == 1
        assert can_group([configs[i] for i in group], [train_configs[i] for i in group])
    sizes = {h: sorted(len(g) for g in groups if configs[g[0]].hidden == (h,)) for h in (16, 64, 256, 1024)}
    assert sizes[16] == sizes[64] == [15]  # small working sets: one group per width
    assert sizes[256] == [5, 5, 5] and max(sizes[1024]) <= 2  # working sets that would not fit in cache
    assert [len(g) for g in plan_groups(configs, train_configs, max_members=8) if len(g) > 5] == [8, 8, 7, 7]
    assert plan_groups(configs, train_configs, max_members=1) == [[i] for i in range(len(grid))]


def test_plan_groups_keeps_incompatible_members_apart():
    configs = [ModelConfig(64, 4, (64,)), ModelConfig(32, 4, (64,)), ModelConfig(64, 8, (64,))]
    assert plan_groups(configs, [FIVE, FIVE, FIVE]) == [[0, 2], [1]]
    assert plan_groups(configs, [FIVE, FIVE, FIVE.replace(lr=0.1)]) == [[0], [1], [2]]


@pytest.mark.parametrize("kernel", ["direct", "fallback"])
def test_single_member_group_is_solo_fit(digits, monkeypatch, kernel):
    if kernel == "fallback":
        monkeypatch.setattr(_stacked, "_FUSED_ADAM", None)
    X = digits[0].astype(np.float32)
    (result,) = fit_group([ModelConfig(64, 4, (16,))], X, train_configs=FIVE, progress=False)
    _, history = _solo(ModelConfig(64, 4, (16,)), X, None, FIVE, torch.float32)
    assert isinstance(result, MemberResult) and _rel(result.history.train_loss, history.train_loss) < 1e-5


# --- bad input ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "configs, kwargs, error, match",
    [
        ([], {}, ValueError, "configs must be a non-empty sequence of ModelConfig"),
        ([{"input_dim": 64}], {}, TypeError, r"configs\[0\] must be a ModelConfig"),
        ([ModelConfig(64, 2), ModelConfig(32, 2)], {}, ValueError, r"configs\[1\].input_dim=32 differs"),
        ([ModelConfig(64, 2), ModelConfig(64, 2, (8, 8))], {}, ValueError, r"configs\[1\].depth=2 differs"),
        ([ModelConfig(64, 2)] * 2, {"train_configs": [FIVE, FIVE.replace(epochs=6)]}, ValueError,
         r"train_configs\[1\].epochs=6 differs .* may differ only in seed"),
        ([ModelConfig(64, 2)] * 2, {"train_configs": [FIVE]}, ValueError, "got 1 train_configs for 2 configs"),
        ([ModelConfig(64, 2)], {"train_configs": FIVE.replace(patience=2)}, ValueError, "patience is set but X_val"),
        ([ModelConfig(64, 2)], {"X_val": np.zeros((5, 63))}, ValueError,
         "X_val has 63 features, expected input_dim=64"),
        ([ModelConfig(64, 2)] * 2, {"X_train": np.zeros((3, 10, 64))}, ValueError,
         "first axis must index the 2 members"),
        ([ModelConfig(64, 2)], {"X_train": np.zeros(64)}, ValueError, "X_train must be a 2-D array .* or a 3-D array"),
        ([ModelConfig(64, 2)], {"X_train": np.full((4, 64), np.nan)}, ValueError, "X_train contains 256 NaN"),
    ],
)
def test_fit_group_rejects(digits, configs, kwargs, error, match):
    kwargs = {"X_train": digits[0], **kwargs}
    with pytest.raises(error, match=match):
        fit_group(configs, progress=False, **kwargs)


def test_plan_groups_rejects():
    with pytest.raises(ValueError, match="max_members must be >= 1, got 0"):
        plan_groups([ModelConfig(64, 2)], max_members=0)
    with pytest.raises(ValueError, match="non-empty sequence"):
        can_group(ModelConfig(64, 2))


# --- the FLOP count ----------------------------------------------------------------------------------------------

def test_training_flops_of_a_small_mlp_by_hand():
    config = ModelConfig(10, 3, (5,))
    assert planning.forward_macs(config) == 10 * 5 + 5 * 3 + 3 * 5 + 5 * 10  # 130
    assert planning.training_flops(config, 100, 2) == 6 * 130 * 100 * 2
    assert planning.training_flops(ModelConfig(64, 2, (16, 8)), 1, 1) == 6 * (64 * 16 + 16 * 8 + 8 * 2) * 2
    assert planning.training_flops(config, 100, 0) == 0


@pytest.mark.parametrize("config", [ModelConfig(10, 3, (5,)), ModelConfig(64, 2, (16, 8), linear=True)])
def test_forward_macs_is_what_torch_counts(config):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        Autoencoder(config)(torch.zeros(7, config.input_dim))
    assert counter.get_total_flops() == 2 * 7 * planning.forward_macs(config)


def test_training_flops_rejects():
    with pytest.raises(ValueError, match="n_samples must be an int >= 0, got -1"):
        planning.training_flops(ModelConfig(10, 3), -1, 2)
    with pytest.raises(ValueError, match="epochs must be an int >= 0, got 2.5"):
        planning.training_flops(ModelConfig(10, 3), 1, 2.5)
    with pytest.raises(TypeError, match="config must be a ModelConfig, got dict"):
        planning.training_flops({"input_dim": 10}, 1, 1)


@pytest.mark.parametrize("mkl_avx512", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transposed_products_of_narrow_layers_match_autograd(activation, mkl_avx512, rng, monkeypatch):
    """A code layer of a few units after a wide one runs as (out, batch) products (``_kernels.skinny``): all three
    with MKL's AVX2 kernels, the weight gradient alone with its AVX-512 ones."""
    monkeypatch.setattr(_kernels, "mkl_avx512", lambda: mkl_avx512)
    configs = [ModelConfig(20, k, (160,), activation=activation) for k in (2, 5, 8)]
    stack = _Stack(configs, torch.float64)
    assert stack.skinny == [False, True, False, False]
    assert [k[0] for k in stack.kernels(7)] == [BMM, BMM if mkl_avx512 else SKINNY, BMM, BMM]
    models = [Autoencoder(c, dtype=torch.float64).reset_parameters(torch.Generator().manual_seed(m))
              for m, c in enumerate(configs)]
    for m, model in enumerate(models):
        stack.set_member(m, model)
    for batch in (7, 3, 7):  # buffers reused across steps and batch sizes
        x = torch.as_tensor(rng.normal(size=(3, batch, 20)))
        cache = []
        out = stack.forward(x, cache)
        for m, model in enumerate(models):
            torch.testing.assert_close(out[m], model(x[m]), rtol=1e-12, atol=1e-13)
        stack.backward(out.sub_(x).mul_(2.0 / (batch * 20)), cache)
        for m, model in enumerate(models):
            model.zero_grad()
            F.mse_loss(model(x[m]), x[m]).backward()
            grads = stack.get_member(m, stack.grad)
            for (name, p), q in zip(model.named_parameters(), grads.parameters()):
                torch.testing.assert_close(q, p.grad, rtol=1e-10, atol=1e-13, msg=name)
        assert torch.all(stack.grad[stack.pad_mask == 0] == 0)


# --- oneDNN products of wide layers (CPUs where MKL takes slow kernels) ------------------------------------------

@pytest.fixture
def onednn(monkeypatch):
    """The oneDNN products forced on, whatever this CPU (they only need a torch built with oneDNN)."""
    monkeypatch.setenv("AUTOENC_ONEDNN", "1")


@pytest.mark.parametrize("vendor, capability, mkl, onednn, dtype, device, expected", [
    ("AuthenticAMD", "AVX512", True, True, torch.float32, "cpu", True),  # Zen 4/5: MKL takes its AVX2 kernels
    ("AuthenticAMD", "AVX512", "intel", True, torch.float32, "cpu", False),  # ... unless told the CPU is Intel's
    ("GenuineIntel", "AVX512", True, True, torch.float32, "cpu", False),  # MKL's own AVX-512 kernels
    ("AuthenticAMD", "AVX2", True, True, torch.float32, "cpu", False),
    ("AuthenticAMD", "DEFAULT", True, True, torch.float32, "cpu", False),
    ("AuthenticAMD", "AVX512", True, True, torch.float64, "cpu", False),  # oneDNN has no float64 products
    ("AuthenticAMD", "AVX512", False, True, torch.float32, "cpu", False),  # another BLAS
    ("AuthenticAMD", "AVX512", True, False, torch.float32, "cpu", False),  # a torch without oneDNN
    ("AuthenticAMD", "AVX512", True, True, torch.float32, "cuda", False),
    ("", "AVX512", True, True, torch.float32, "cpu", False),  # vendor unknown
])
def test_onednn_rule(vendor, capability, mkl, onednn, dtype, device, expected):
    assert _kernels.onednn_rule(vendor, capability, bool(mkl), onednn, dtype, device, mkl == "intel") is expected


def test_mkl_capped_below_avx512_is_no_avx512(monkeypatch):
    """``MKL_ENABLE_INSTRUCTIONS`` below AVX-512 caps MKL's kernels: the rules then take MKL's AVX2 ones' side."""
    monkeypatch.setattr(_kernels, "cpu_vendor", lambda: "GenuineIntel")
    expected = torch.backends.mkl.is_available() and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    for cap, avx512 in (("", expected), ("AVX512", expected), ("avx512_e1", expected), ("AVX2", False),
                        ("SSE4_2", False)):
        monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", cap)
        assert _kernels.mkl_avx512() is avx512, cap


def test_layer_kernels_by_size():
    kernels = _kernels.layer_kernels
    assert kernels(64, 1024, 64, False, True) == (ONEDNN, ONEDNN, ONEDNN)  # 2^22 multiply-adds
    assert kernels(1024, 32, 64, False, True) == (ONEDNN, ONEDNN, ONEDNN_T)  # 2^21, 32 times more inputs
    assert kernels(32, 1024, 64, False, True) == (ONEDNN, ONEDNN, BMM)  # 2^21: too small for a^T g
    assert kernels(32, 1024, 32, False, True) == (BMM, BMM, BMM)  # a smaller batch, the same layer
    assert kernels(64, 256, 64, False, True) == (BMM, BMM, BMM)
    assert kernels(1024, 4, 512, True, True) == (SKINNY, ONEDNN, SKINNY)  # narrow: transposed products
    assert kernels(64, 1024, 64, False, False) == (BMM, BMM, BMM)
    assert kernels(1024, 4, 64, True, False) == (SKINNY, BMM, SKINNY)
    assert kernels(1024, 4, 64, True, False, mkl_avx512=True) == (BMM, BMM, SKINNY)  # MKL's AVX-512 kernels


def test_onednn_is_the_rule_unless_forced(monkeypatch):
    facts = (_kernels.cpu_vendor(), torch.backends.cpu.get_cpu_capability(), torch.backends.mkl.is_available(),
             _kernels._LINEAR is not None and torch.backends.mkldnn.is_available())
    monkeypatch.delenv("AUTOENC_ONEDNN", raising=False)
    assert _Stack([ModelConfig(8, 2)], torch.float32).onednn == _kernels.onednn_rule(*facts, torch.float32, "cpu",
                                                                                      _mkl.ACTIVE and
                                                                                      _kernels.mkl_avx512())
    monkeypatch.setenv("AUTOENC_ONEDNN", "0")
    assert not _Stack([ModelConfig(8, 2)], torch.float32).onednn
    monkeypatch.setenv("AUTOENC_ONEDNN", "1")
    assert _Stack([ModelConfig(8, 2)], torch.float32).onednn
    assert not _Stack([ModelConfig(8, 2)], torch.float64).onednn  # float32 only, forced or not
    monkeypatch.setenv("AUTOENC_ONEDNN", "yes")
    with pytest.raises(ValueError, match="AUTOENC_ONEDNN must be 0, 1 or unset, got 'yes'"):
        _Stack([ModelConfig(8, 2)], torch.float32)


@pytest.mark.parametrize("activation", ["relu", "gelu", "sigmoid"])
@pytest.mark.parametrize("shapes", [[(32, 1024)], [(32, 1024), (4, 1024), (16, 512)]])  # no copies; stacked
def test_onednn_backward_matches_autograd(onednn, activation, shapes, rng):
    configs = [ModelConfig(64, k, (h,), activation=activation) for k, h in shapes]
    stack = _Stack(configs, torch.float32)
    assert stack.onednn and stack.kernels(64) == [(ONEDNN, ONEDNN, ONEDNN), (ONEDNN, ONEDNN, ONEDNN_T),
                                                  (ONEDNN, ONEDNN, BMM), (ONEDNN, ONEDNN, ONEDNN_T)]
    for m in range(len(configs)):
        stack.init_member(m, torch.Generator().manual_seed(m))
    x = torch.as_tensor(rng.random((len(configs), 64, 64)), dtype=torch.float32)
    for _ in range(2):  # the second step reuses the first's buffers
        cache = []
        out = stack.forward(x, cache)
        stack.backward(out.sub(x).mul_(2.0 / (64 * 64)), cache)
    if stack.needs_pad_mask:
        stack.grad.mul_(stack.pad_mask)
    assert torch.all(stack.grad[stack.pad_mask == 0] == 0)
    losses = stack.mean_loss(x)
    for m in range(len(configs)):  # the oracle: autograd in float64 on the same weights
        model, xm = stack.get_member(m).double(), x[m].double()
        loss = F.mse_loss(model(xm), xm)
        loss.backward()
        torch.testing.assert_close(out[m].double(), model(xm), rtol=1e-5, atol=1e-6)
        assert float(losses[m]) == pytest.approx(loss.item(), rel=1e-5)
        for (name, p), q in zip(model.named_parameters(), stack.get_member(m, stack.grad).parameters()):
            torch.testing.assert_close(q.double(), p.grad, rtol=1e-4, atol=1e-5 * float(p.grad.abs().max()),
                                       msg=name)


@pytest.mark.parametrize("rows", [64, 54])  # the training batch; a smaller last one (a^T g there, copied in)
def test_weights_kept_out_by_in_give_the_same_bits(onednn, rows, rng):
    """A layer whose weight gradient is oneDNN's g^T a at the training batch size keeps its weights (M, out, in), so
    that the gradient lands with a plain copy: the same products as a stack that keeps all (M, in, out), the same
    bits (outputs, gradients, and the flat buffers read through the views)."""
    configs = [ModelConfig(64, k, (1024,)) for k in (32, 16)]
    kept, plain = _Stack(configs, torch.float32, batch_size=64), _Stack(configs, torch.float32)
    assert kept.stored_t == [False, True, False, True] + [False] * 4 and not any(plain.stored_t)
    W = kept.tensors[1]  # 1024 -> 32 and 1024 -> 64: (M, in, out) views of (M, out, in) memory
    assert W.shape == (2, 1024, 32) and W.transpose(1, 2).is_contiguous() and kept.tensors[3].shape == (2, 1024, 64)
    x = torch.as_tensor(rng.random((2, rows, 64)), dtype=torch.float32)
    outs = []
    for stack in (kept, plain):
        for m in range(2):
            stack.init_member(m, torch.Generator().manual_seed(m))
        for _ in range(2):  # the second step reuses the first's buffers
            cache = []
            out = stack.forward(x, cache)
            stack.backward(out.sub(x).mul_(2.0 / (rows * 64)), cache)
        outs.append(out.clone())
    assert torch.equal(*outs)
    for m in range(2):
        for p, q in zip(kept.get_member(m, kept.grad).parameters(), plain.get_member(m, plain.grad).parameters()):
            assert torch.equal(p, q)
    assert not torch.equal(kept.grad, plain.grad)  # the same values, laid out otherwise


@pytest.mark.parametrize("remedy", [{}, {"dropout": 0.3}, {"dp_clip": 0.5, "dp_noise": 0.5}])
def test_relu_post_op_and_kept_member_views_give_the_same_bits(onednn, digits, monkeypatch, remedy):
    """oneDNN's relu post-op (relu inside the product) and the per-member views kept with the step's buffers train
    to the same bits as relu applied after the product and views made anew for every product."""
    X = digits[0].astype(np.float32)
    configs = [ModelConfig(64, k, (1024,)) for k in (32, 8)]
    train_configs = [TrainConfig(epochs=2, batch_size=64, lr=1e-3, seed=s, **remedy) for s in (0, 1)]
    calls, linear = [], _kernels.linear
    monkeypatch.setattr(_kernels, "linear", lambda *a, **kw: calls.append(kw.get("relu")) or linear(*a, **kw))
    fused, fused_stack = _fit_group(configs, X, None, train_configs)
    assert any(calls) and fused_stack._parts and all(i == id(buf) for i, (buf, _) in fused_stack._parts.items())
    calls.clear()
    monkeypatch.setattr(_stacked, "_RELU", object())  # no layer matches: relu after the product
    monkeypatch.setattr(_Stack, "_parts_of", lambda self, t: _kernels.parts(t))  # views made anew
    plain, plain_stack = _fit_group(configs, X, None, train_configs)
    assert calls and not any(calls)
    assert torch.equal(fused_stack.param, plain_stack.param)
    assert [r.history.train_loss for r in fused] == [r.history.train_loss for r in plain]


@pytest.mark.parametrize("shapes", [[(32, 1024), (32, 1024)], [(32, 1024), (4, 1024), (16, 512)]])
def test_onednn_passes_member_by_member_equal_the_stacked_pass_bit_for_bit(onednn, shapes, rng):
    """Without a cache, members go through the network one at a time (no copy of each layer's stacked outputs):
    the same products on the same operands, so the same bits as the stacked pass."""
    configs = [ModelConfig(64, k, (h,)) for k, h in shapes]
    stack = _Stack(configs, torch.float32)
    for m in range(len(configs)):
        stack.init_member(m, torch.Generator().manual_seed(m))
    x = torch.as_tensor(rng.random((len(configs), 300, 64)), dtype=torch.float32)
    assert stack.apart and stack.kernels(300)[0][0] == ONEDNN
    stacked = stack.forward(x)
    out = torch.full_like(x, math.nan)
    assert stack.predict(x, out) is out and torch.equal(out, stacked)
    expected = stacked.sub(x).view(len(configs), -1).square_().sum(1) / x[0].numel()
    assert torch.equal(stack.mean_loss(x), expected)
    assert not _Stack(configs[:1], torch.float32).apart  # one member: nothing to stack


@pytest.mark.parametrize("activation, remedy", [("relu", {}), ("sigmoid", {"dropout": 0.2}),
                                                ("sigmoid", {"dp_clip": 0.5, "dp_noise": 0.5})])
def test_onednn_members_match_solo_fit(onednn, digits, monkeypatch, activation, remedy):
    calls, linear = [], _kernels._LINEAR
    monkeypatch.setattr(_kernels, "_LINEAR", lambda X, *args: calls.append(X.shape) or linear(X, *args))
    X, X_val = (x.astype(np.float32) for x in digits)
    configs = [ModelConfig(64, k, (1024,), activation=activation) for k in (32, 8)]  # padded: 1024 -> 32 -> 1024
    tc = TrainConfig(epochs=3, batch_size=64, lr=1e-3, **remedy)
    train_configs = [tc.replace(seed=s) for s in (0, 1)]
    results, stack = _fit_group(configs, X, X_val, train_configs, progress=False)
    assert stack.onednn and any(shape[0] == 32 for shape in calls)  # the code layer's (g^T a)^T too
    for config, train_config, result in zip(configs, train_configs, results):
        _, history = _solo(config, X, X_val, train_config, torch.float32)
        assert _rel(result.history.train_loss, history.train_loss) < 1e-5
        assert _rel(result.history.val_loss, history.val_loss) < 1e-5
