"""A run is reused only when what it records is what this study would make; every published number is checksummed."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis import StudyConfig, run_study
from autoenc import TrainConfig
from tiny_study import METRICS, metrics, study, tiny

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return study(tmp_path_factory.mktemp("prov"))


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """Another study's runs: more epochs, more noise, a run id outside the reference's grid."""
    config = tiny(bottlenecks=(2, 4), widths=(8, 16), seeds=(0,), noise_std=0.5, train=TrainConfig(
        epochs=5, batch_size=128, lr=2e-3))
    return study(tmp_path_factory.mktemp("other"), config).path


def copy(reference, tmp_path):
    return shutil.copytree(reference.path, tmp_path / "s")


def test_a_run_of_another_study_is_retrained_naming_the_mismatch(reference, other, tmp_path):
    folder = copy(reference, tmp_path)
    shutil.rmtree(folder / "models" / "ae-k2-h8-s0")
    shutil.copytree(other / "models" / "ae-k2-h8-s0", folder / "models" / "ae-k2-h8-s0")
    mismatch = r"ae-k2-h8-s0.*noise_std: 0.5 recorded, 0.2 in this study.*epochs: 5 recorded, 3"
    with pytest.warns(RuntimeWarning, match=mismatch):
        again = study(folder)
    assert again.trained == 1
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))
    assert (again.results["epochs"][again.results["model"] == "autoencoder"] == 3).all()


def test_runs_outside_the_grid_are_ignored_never_adopted(reference, other, tmp_path):
    folder = copy(reference, tmp_path)
    for run in ("ae-k4-h16-s0", "ae-k2-h16-s0", "pca-k4"):
        shutil.copytree(other / "models" / run, folder / "models" / run)
    with pytest.warns(RuntimeWarning, match="ae-k4-h16-s0.*not a run of this study"):
        again = study(folder)  # an adopted ae-k4-h16-s0 once made the selection crash here
    assert again.trained == 0
    assert set(again.results["run"]) == set(reference.results["run"])
    assert (folder / "models" / "ae-k4-h16-s0" / "result.json").exists()  # left alone, not deleted
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))


def test_swapped_weights_config_and_checksums_are_caught(reference, tmp_path):
    folder = copy(reference, tmp_path)
    s0, s1 = folder / "models" / "ae-k2-h8-s0", folder / "models" / "ae-k2-h8-s1"
    for name in ("config.json", "weights.safetensors"):
        a, b = (s0 / name).read_bytes(), (s1 / name).read_bytes()
        (s0 / name).write_bytes(b)
        (s1 / name).write_bytes(a)
    docs = [json.loads((f / "result.json").read_text()) for f in (s0, s1)]
    docs[0]["checksums"], docs[1]["checksums"] = docs[1]["checksums"], docs[0]["checksums"]
    for f, doc in zip((s0, s1), docs):
        (f / "result.json").write_text(json.dumps(doc))
    with pytest.warns(RuntimeWarning, match="ae-k2-h8-s0.*damaged"):
        again = study(folder)
    assert again.trained == 2
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))


def test_a_consistent_swap_is_caught_by_the_recorded_run(reference, tmp_path):
    """config.json names its run: weights and config of s1 under s0, the checksums recomputed to match."""
    from analysis.study.integrity import folder_checksums
    from analysis.study.provenance import document_digest

    folder = copy(reference, tmp_path)
    s0, s1 = folder / "models" / "ae-k2-h8-s0", folder / "models" / "ae-k2-h8-s1"
    for name in ("config.json", "weights.safetensors"):
        shutil.copy(s1 / name, s0 / name)
    doc = json.loads((s0 / "result.json").read_text())
    doc["checksums"] = folder_checksums(s0, ["config.json", "weights.safetensors"])
    doc["sha256"] = document_digest(doc)
    (s0 / "result.json").write_text(json.dumps(doc))
    with pytest.warns(RuntimeWarning, match="ae-k2-h8-s0.*config.json.*ae-k2-h8-s1"):
        again = study(folder)
    assert again.trained == 1
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))


def test_an_edited_number_in_result_json_is_recomputed(reference, tmp_path):
    folder = copy(reference, tmp_path)
    file = folder / "models" / "ae-k2-h8-s1" / "result.json"
    doc = json.loads(file.read_text())
    doc["rows"][2]["mse"] = 0.0
    file.write_text(json.dumps(doc))
    with pytest.warns(RuntimeWarning, match="ae-k2-h8-s1.*numbers changed"):
        again = study(folder)
    assert again.trained == 1
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))


def test_nan_weights_with_recomputed_checksums_are_retrained(reference, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from analysis.study.integrity import folder_checksums
    from analysis.study.provenance import document_digest

    folder = copy(reference, tmp_path)
    run = folder / "models" / "ae-k2-h8-s0"
    weights = load_file(run / "weights.safetensors")
    weights = {k: torch.full_like(v, float("nan")) for k, v in weights.items()}
    save_file(weights, run / "weights.safetensors")
    doc = json.loads((run / "result.json").read_text())
    doc["checksums"] = folder_checksums(run, ["config.json", "weights.safetensors"])
    doc["sha256"] = document_digest(doc)
    (run / "result.json").write_text(json.dumps(doc))
    with pytest.warns(RuntimeWarning, match="ae-k2-h8-s0.*NaN"):
        again = study(folder)
    assert again.trained == 1
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))


def test_a_zeroed_reference_group_is_recomputed(tmp_path):
    config = tiny(seeds=(0,), memorization=True, n_references=4, audit=("widest",))
    first = study(tmp_path / "a", config)
    summary = pd.read_csv(first.path / "audit_summary.csv")
    memo = pd.read_csv(first.path / "memorization.csv")
    group = sorted((first.path / "references" / "ae-k2-h8").glob("group-*.npz"))[0]
    with np.load(group) as npz:
        arrays = dict(npz)
    arrays["errors"] = np.zeros_like(arrays["errors"])
    np.savez(group, **arrays)
    with pytest.warns(RuntimeWarning, match=f"{group.name}.*recomputed"):
        again = study(tmp_path / "a", config)
    pd.testing.assert_frame_equal(pd.read_csv(again.path / "audit_summary.csv"), summary)
    pd.testing.assert_frame_equal(pd.read_csv(again.path / "memorization.csv"), memo)


def test_runs_trained_with_other_float_kernels_are_recorded_and_said(reference, tmp_path, monkeypatch):
    """Each trained run records the CPU and float kernels of the process that trained it; a folder whose runs
    record more than one kind says so, since their numbers then differ by float32 rounding."""
    import warnings

    from analysis.study import training
    from autoenc.io import float_kernels

    folder = copy(reference, tmp_path)
    recorded = {p.parent.name: json.loads(p.read_text())["kernels"] for p in (folder / "models").glob("*/result.json")}
    assert {k for run, k in recorded.items() if run.startswith("ae-")} == {float_kernels()}
    with warnings.catch_warnings(record=True) as caught:  # one kind: nothing to say
        warnings.simplefilter("always")
        study(folder)
    assert not [w for w in caught if "kinds of CPU or float kernels" in str(w.message)]
    shutil.rmtree(folder / "models" / "ae-k2-h8-s1")
    monkeypatch.setattr(training, "float_kernels", lambda: "another CPU; torch AVX2; MKL's own choice of kernels")
    with pytest.warns(RuntimeWarning, match=r"2 kinds of CPU or float kernels \(1 on .+; 1 on .+\)"):
        again = study(folder)
    assert again.trained == 1
    assert json.loads((folder / "models" / "ae-k2-h8-s1" / "result.json").read_text())["kernels"].startswith(
        "another CPU")
