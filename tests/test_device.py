"""Devices: "auto" and "cpu" everywhere; CUDA and MPS where present (those tests skip without one)."""
import numpy as np
import pytest
import torch

from autoenc import Autoencoder, AutoencoderTransformer, ModelConfig, TrainConfig, encode, fit, reconstruct
from autoenc.batched import fit_group
from autoenc.train import resolve_device

CUDA = torch.cuda.is_available()
MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
needs_mps = pytest.mark.skipif(not MPS, reason="needs an MPS device")
TC = TrainConfig(epochs=3, batch_size=32, lr=3e-3)
CONFIGS = [ModelConfig(64, 4, (16,)), ModelConfig(64, 4, (3, 6), kind="conv", input_shape=(1, 8, 8))]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((160, 64), dtype=np.float32), rng.random((40, 64), dtype=np.float32)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if CUDA else "mps" if MPS else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(CUDA, reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_an_error_before_anything_moves(data):
    model = Autoencoder(CONFIGS[0])
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available here; use device='auto' or 'cpu'"):
        fit(model, data[0], config=TC.replace(device="cuda"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit_group([CONFIGS[0]], data[0], train_configs=TC.replace(device="cuda:0"), progress=False)


@pytest.mark.skipif(MPS, reason="checks the error on a machine without MPS")
def test_mps_without_mps_is_an_error():
    with pytest.raises(ValueError, match="device='mps' but MPS is not available here"):
        resolve_device("mps")


@pytest.mark.parametrize("config", CONFIGS, ids=["mlp", "conv"])
def test_auto_matches_cpu(data, config):
    """On this machine "auto" may be the CPU (then bit for bit) or a GPU (then within float tolerance)."""
    X, X_val = data
    cpu, auto = Autoencoder(config), Autoencoder(config)
    h_cpu = fit(cpu, X, X_val, TC, progress=False)
    h_auto = fit(auto, X, X_val, TC.replace(device="auto"), progress=False)
    assert next(auto.parameters()).device.type == resolve_device("auto").type  # documented: the model moved there
    np.testing.assert_allclose(h_auto.train_loss, h_cpu.train_loss, rtol=1e-5)
    out = reconstruct(auto, X_val)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, reconstruct(cpu, X_val), rtol=0, atol=1e-5)
    (member,) = fit_group([config], X, X_val, TC.replace(device="auto"), progress=False)
    np.testing.assert_allclose(member.history.val_loss, h_cpu.val_loss, rtol=1e-5)


def test_reconstruct_in_chunks_equals_one_chunk(data):
    X, X_val = data
    for config in CONFIGS:
        model = Autoencoder(config)
        fit(model, X, config=TC, progress=False)
        whole = reconstruct(model, X_val)
        np.testing.assert_allclose(reconstruct(model, X_val, batch_size=7), whole, rtol=0, atol=1e-6)
        assert reconstruct(model, X_val.astype(np.float64), batch_size=7).dtype == np.float64
        assert encode(model, X_val, batch_size=3).shape == (40, 4)


def test_large_training_data_are_gathered_batch_by_batch(data, monkeypatch):
    """Above the chunk budget an epoch is gathered step by step rather than copied: same order, same result."""
    from autoenc import train

    X, _ = data
    ref = Autoencoder(CONFIGS[0])
    h_ref = fit(ref, X, config=TC, progress=False)
    monkeypatch.setattr(train, "_CHUNK_BYTES", 1024)
    model = Autoencoder(CONFIGS[0])
    assert fit(model, X, config=TC, progress=False).train_loss == h_ref.train_loss
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))


@needs_cuda
@pytest.mark.parametrize("config", CONFIGS, ids=["mlp", "conv"])
def test_cuda_matches_cpu(data, config):
    X, X_val = data
    cpu, gpu = Autoencoder(config), Autoencoder(config)
    h_cpu = fit(cpu, X, X_val, TC, progress=False)
    h_gpu = fit(gpu, X, X_val, TC.replace(device="cuda"), progress=False)
    assert next(gpu.parameters()).is_cuda
    np.testing.assert_allclose(h_gpu.val_loss, h_cpu.val_loss, rtol=1e-4)
    np.testing.assert_allclose(reconstruct(gpu, X_val), reconstruct(cpu, X_val), rtol=0, atol=1e-4)
    members = fit_group([config, config], X, X_val, [TC.replace(device="cuda"), TC.replace(device="cuda", seed=1)],
                        progress=False)
    assert next(members[0].model.parameters()).is_cuda
    np.testing.assert_allclose(members[0].history.val_loss, h_cpu.val_loss, rtol=1e-4)
    ae = AutoencoderTransformer(n_components=4, hidden=config.hidden, kind=config.kind,
                                input_shape=config.input_shape, epochs=2, device="cuda", random_state=0).fit(X)
    assert ae.transform(X_val).shape == (40, 4) and isinstance(ae.inverse_transform(ae.transform(X_val)), np.ndarray)


@needs_mps
def test_mps_trains(data):
    X, X_val = data
    model = Autoencoder(CONFIGS[1])
    fit(model, X, config=TC.replace(device="mps"), progress=False)
    assert next(model.parameters()).device.type == "mps" and reconstruct(model, X_val).shape == X_val.shape
