"""Fault injection on saved models: every damaged or hostile file is refused with one ValueError naming it."""
import json
import os
import re
import resource
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from autoenc import Autoencoder, DivergenceError, ModelConfig, TrainConfig, fit, load, save
from autoenc.batched import fit_group
from autoenc.io import CONFIG_FILE, MAX_HEADER_BYTES, MAX_PARAMETERS, WEIGHTS_FILE, _n_parameters, read_config
from analysis.measures.reconstruction import pca_baseline

CONFIG = ModelConfig(8, 2, hidden=(4,))


@pytest.fixture
def folder(tmp_path):
    model = Autoencoder(CONFIG).reset_parameters(torch.Generator().manual_seed(0))
    return save(model, tmp_path / "run", metadata={"seed": 0})


def _edit_config(folder, **changes):
    doc = json.loads((folder / CONFIG_FILE).read_text())
    doc.update(changes)
    (folder / CONFIG_FILE).write_text(json.dumps(doc))


def _write_raw(file, header, data):
    """A safetensors file from a header dict and the data bytes, written byte by byte (nothing checked)."""
    text = json.dumps(header).encode()
    file.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _header(file):
    raw = file.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


# --- sizes are checked before anything is allocated ------------------------------------------------------------

def test_a_huge_config_is_refused_before_allocating_or_reading_the_weights(folder):
    _edit_config(folder, model={"input_dim": 64, "bottleneck": 4, "hidden": [10**9]})
    (folder / WEIGHTS_FILE).unlink()  # the refusal must come before the weights are even looked at
    # encoder 64 -> 1e9 -> 4 and the mirrored decoder, weights and biases: counted by hand
    n = 2 * (64 * 10**9 + 10**9 * 4) + (10**9 + 4) + (10**9 + 64)
    assert n == 138_000_000_068 > MAX_PARAMETERS
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=f"{CONFIG_FILE} describes a model with {n} parameters, more than"):
        load(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing near 256 GB


@pytest.mark.parametrize("config", [CONFIG, ModelConfig(64, 8, hidden=()), ModelConfig(10, 3, (7, 5), linear=True),
                                    ModelConfig(30, 2, hidden=(16, 8, 4), activation="tanh")])
def test_the_parameter_count_from_the_config_is_the_models(config):
    assert _n_parameters(config) == Autoencoder(config).n_parameters


def test_a_huge_convolutional_config_is_refused_before_allocating(folder):
    channels = 10**6  # 3x3 kernels between 1e6-channel stages: 9e12 weights, counted on the meta device
    _edit_config(folder, model={"input_dim": 64, "bottleneck": 2, "hidden": [channels, channels], "kind": "conv",
                                "input_shape": [1, 8, 8]})
    with torch.device("meta"):
        n = Autoencoder(ModelConfig(64, 2, (channels, channels), kind="conv", input_shape=(1, 8, 8))).n_parameters
    assert n > 9 * 10**12
    with pytest.raises(ValueError, match=f"describes a model with {n} parameters, more than load accepts"):
        load(folder)


def test_a_convolutional_model_round_trips(tmp_path):
    config = ModelConfig(64, 3, (4, 6), kind="conv", input_shape=(1, 8, 8))
    model = Autoencoder(config).reset_parameters(torch.Generator().manual_seed(2))
    loaded = load(save(model, tmp_path / "conv"))
    assert loaded.config == config
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(loaded(x), model(x))


def test_a_model_just_under_the_cap_is_still_checked_against_the_header(folder):
    _edit_config(folder, model={"input_dim": 8, "bottleneck": 2, "hidden": [10**6]})  # 2e7 parameters: allowed
    with pytest.raises(ValueError, match=r"does not match config.json: encoder.0.weight has shape \(4, 8\), "
                                         r"the config implies \(1000000, 8\)"):
        load(folder)


@pytest.mark.parametrize("length", [2**60, MAX_HEADER_BYTES + 1])
def test_an_absurd_header_length_is_refused(folder, length):
    file = folder / WEIGHTS_FILE
    file.write_bytes(struct.pack("<Q", length) + b"{}" + b"\0" * 64)
    with pytest.raises(ValueError, match=f"{file}.*header claims {length} bytes, more than"):
        load(folder)


@pytest.mark.parametrize("keep", [0, 5, 8, 20, -1])
def test_a_truncated_weights_file_is_refused_naming_it(folder, keep):
    file = folder / WEIGHTS_FILE
    data = file.read_bytes()
    file.write_bytes(data[: keep % len(data)])  # -1: all but the last byte
    with pytest.raises(ValueError, match=f"^{file} is not a readable safetensors file: .*(truncated|too short)"):
        load(folder)


def test_trailing_bytes_and_offsets_past_the_end_are_refused(folder):
    file = folder / WEIGHTS_FILE
    header, data = _header(file)
    file.write_bytes(file.read_bytes() + b"\0" * 4)
    with pytest.raises(ValueError, match="4 bytes after the last tensor"):
        load(folder)
    last = max(header.values(), key=lambda e: e["data_offsets"][1])
    last["data_offsets"][1] += 4000  # claims data the file does not have
    _write_raw(file, header, data)
    with pytest.raises(ValueError, match=f"{file}.*truncated, its header describes {len(data) + 4000} bytes"):
        load(folder)


def test_overlapping_or_short_tensors_are_refused(folder):
    file = folder / WEIGHTS_FILE
    header, data = _header(file)
    first = min(header.values(), key=lambda e: e["data_offsets"][0])
    first["data_offsets"][0] += 4  # a gap at the start of the data
    _write_raw(file, header, data)
    with pytest.raises(ValueError, match="starts at byte 4 of the data, expected 0"):
        load(folder)
    # A tensor whose offsets span fewer bytes than its shape needs (the next one starts earlier to tile exactly).
    model = Autoencoder(CONFIG)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, file)
    header, data = _header(file)
    a, b = sorted((e for k, e in header.items() if k != "__metadata__"), key=lambda e: e["data_offsets"][0])[:2]
    a["data_offsets"][1] -= 4
    b["data_offsets"][0] -= 4
    _write_raw(file, header, data)
    with pytest.raises(ValueError, match=r"needs \d+ bytes, its offsets span"):
        load(folder)


@pytest.mark.parametrize("entry", [{"dtype": "F32"}, {"dtype": "F32", "shape": "ab", "data_offsets": [0, 8]},
                                   {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, [1, 2], "x"])
def test_malformed_header_entries_are_refused(folder, entry):
    file = folder / WEIGHTS_FILE
    header, data = _header(file)
    header["encoder.0.bias"] = entry
    _write_raw(file, header, data)
    with pytest.raises(ValueError, match=f"{file} is not a readable safetensors file: header entry 'encoder.0.bias'"):
        load(folder)


@pytest.mark.parametrize("header", [b"[1, 2]", b"{not json", b"\xff\xfe", b'{"a": NaN}'])
def test_a_header_that_is_not_a_json_object_is_refused(folder, header):
    file = folder / WEIGHTS_FILE
    file.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ValueError, match=f"{file} is not a readable safetensors file: its header is not"):
        load(folder)


def test_random_damage_is_always_a_value_error(folder):
    """Any byte flip or truncation of the weights: a model, or a ValueError; never an error from the internals."""
    file = folder / WEIGHTS_FILE
    good = file.read_bytes()
    rng = np.random.default_rng(0)
    json_bytes = np.frombuffer(b'0123456789[]{},:"FBI8', dtype=np.uint8)  # damage the JSON can still parse
    outcomes = set()
    for _ in range(400):
        data = bytearray(good)
        if rng.random() < 0.2:
            data = data[: rng.integers(len(data))]
        else:
            for i in rng.integers(0, min(len(data), 300), size=rng.integers(1, 4)):  # mostly the header
                data[i] = rng.choice(json_bytes) if rng.random() < 0.5 else rng.integers(256)
        file.write_bytes(bytes(data))
        try:
            load(folder)
            outcomes.add("loaded")
        except ValueError:
            outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}  # both happened: the harmless flips (spaces, digits of data) load


# --- dtypes and values --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, name", [(torch.int8, "I8"), (torch.bool, "BOOL"), (torch.float16, "F16"),
                                         (torch.float64, "F64"), (torch.int64, "I64")])
def test_weights_in_another_dtype_than_the_config_are_refused(folder, dtype, name):
    file = folder / WEIGHTS_FILE
    model = load(folder)
    save_file({k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}, file)
    with pytest.raises(ValueError, match=f"{file} stores encoder.0.weight as {name}; config.json says the model is "
                                         "float32 .F32., and weights are never cast on load"):
        load(folder)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_every_float_dtype_round_trips_exactly(tmp_path, dtype):
    model = Autoencoder(CONFIG, dtype=dtype).reset_parameters(torch.Generator().manual_seed(1))
    loaded = load(save(model, tmp_path / "run"))
    assert read_config(tmp_path / "run")["dtype"] == str(dtype).removeprefix("torch.")
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and b.dtype == dtype and torch.equal(a, b)
    assert all(p.requires_grad for p in loaded.parameters()) and not loaded.training
    loaded(torch.zeros(3, 8, dtype=dtype))  # usable as it is


def test_an_unknown_config_dtype_is_refused(folder):
    _edit_config(folder, dtype="int8")
    with pytest.raises(ValueError, match=r"config.json names dtype 'int8'; a saved model is one of"):
        load(folder)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value):
    model = Autoencoder(CONFIG)
    with torch.no_grad():
        model.decoder[0].bias[1] = value
        model.encoder[2].weight[0, 0] = value
    folder = save(model, tmp_path / "run")  # saving is allowed (a diverged model can be kept for a look)
    with pytest.raises(ValueError, match=f"{folder / WEIGHTS_FILE} holds 1 NaN or infinite value.s. in "
                                         "encoder.2.weight; the model is damaged"):
        load(folder)


# --- config.json -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [99, 0, "1", True, 1.0, None])
def test_an_unknown_format_version_is_refused(folder, version):
    _edit_config(folder, format_version=version)
    with pytest.raises(ValueError, match=re.escape(f"config.json has format_version {version!r}; this version of "
                                                   "autoenc reads [1]")):
        load(folder)


def test_config_json_is_strict(folder):
    text = (folder / CONFIG_FILE).read_text().replace('"seed": 0', '"seed": NaN')
    (folder / CONFIG_FILE).write_text(text)
    with pytest.raises(ValueError, match=f"{folder / CONFIG_FILE} is not valid JSON: NaN is not strict JSON"):
        load(folder)
    (folder / CONFIG_FILE).write_text(" " * (2**20 + 1))
    with pytest.raises(ValueError, match=r"is 1048577 bytes, more than a model config can be"):
        load(folder)


def test_a_config_of_the_wrong_types_is_a_value_error(folder):
    _edit_config(folder, model={"input_dim": "64", "bottleneck": 2})
    with pytest.raises(ValueError, match=f"{folder / CONFIG_FILE}: input_dim"):
        load(folder)
    _edit_config(folder, model=[1, 2])
    with pytest.raises(ValueError, match=f"{folder / CONFIG_FILE}: ModelConfig.from_dict expects a dict"):
        load(folder)


def test_non_finite_metadata_is_written_as_null(tmp_path):
    metadata = {"loss": float("nan"), "curve": [1.0, float("inf")], "nested": {"x": -float("inf"), "ok": 2.5}}
    folder = save(Autoencoder(CONFIG), tmp_path / "run", metadata=metadata)
    text = (folder / CONFIG_FILE).read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_config(folder)["metadata"] == {"loss": None, "curve": [1.0, None], "nested": {"x": None, "ok": 2.5}}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_saved_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        folder = save(Autoencoder(CONFIG), tmp_path / "run")
    finally:
        os.umask(previous)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        assert oct((folder / name).stat().st_mode & 0o777) == oct(0o666 & ~umask), name


# --- numerical failures name the input scale ----------------------------------------------------------------------

def test_divergence_on_huge_inputs_names_the_scale(rng):
    X = rng.random((64, 8), dtype=np.float32) * np.float32(1e30)
    with pytest.raises(DivergenceError, match=r"^training diverged at epoch 1: loss is (inf|nan); the inputs are "
                                              r"far from unit scale \(max \|x\| = 1e\+30, std = [\d.]+e\+29\), so "
                                              r"standardize them \(--scale standard") as info:
        fit(Autoencoder(CONFIG), X, config=TrainConfig(epochs=3, batch_size=16), progress=False)
    assert "smaller lr" not in str(info.value) and "\n" not in str(info.value)
    results = fit_group([CONFIG, ModelConfig(8, 3, hidden=(4,))], np.stack([X, X / np.float32(1e30)]),
                        train_configs=TrainConfig(epochs=3, batch_size=16), progress=False)
    assert results[0].error == str(info.value)  # the same words from the batched trainer
    assert results[1].error is None


def test_divergence_on_unit_scale_inputs_still_blames_the_lr(rng):
    X = rng.random((64, 8), dtype=np.float32)
    with pytest.raises(DivergenceError, match=r"\(try a smaller lr than 1e\+20\)$") as info:
        fit(Autoencoder(CONFIG), X, config=TrainConfig(epochs=20, batch_size=16, lr=1e20), progress=False)
    assert "scale" not in str(info.value)


def test_pca_on_huge_inputs_fails_with_the_scale_named(rng):
    X = rng.random((64, 8), dtype=np.float32) * np.float32(1e30)
    with pytest.raises(FloatingPointError, match=r"PCA failed on X_train .*max \|x\| = 1e\+30.*--scale standard"):
        pca_baseline(X, 2)
    assert pca_baseline(X / np.float32(1e30), 2).n_components_ == 2
