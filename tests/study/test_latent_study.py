"""The study's latent measures: latent.csv and paths.npz on the shared tiny study."""
import numpy as np
import pandas as pd
import pytest
from tiny_study import study, tiny

from analysis.study.latent_table import LATENT_COLUMNS


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("latent")
    study(out, tiny(latent="pca"))
    return out


def test_latent_csv_has_one_sane_row_per_run(folder):
    table = pd.read_csv(folder / "latent.csv", dtype={"run": str})
    results = pd.read_csv(folder / "results.csv", dtype={"run": str})
    assert list(table.columns) == list(LATENT_COLUMNS)
    assert sorted(table["run"]) == sorted(results["run"].unique())
    ae, pca = table[table["model"] == "autoencoder"], table[table["model"] == "pca"]
    for column in ("cka_pca", "cca_pca", "cka_seeds", "cca_seeds"):
        assert ae[column].between(0, 1).all() and pca[column].isna().all()
    assert (ae["cka_null"] < 0.05).all() and (ae["cca_null"] < 0.05).all()  # 2-D codes of ~360 unseen samples
    assert ae["cka_seeds"].nunique() == 1  # two seeds: one pair, the same number on both rows
    assert table["max_angle_pca"].isna().all()  # the tiny study's decoders are nonlinear
    assert ((table["latent_auc_low"] <= table["latent_auc"]) & (table["latent_auc"] <= table["latent_auc_high"])).all()
    assert table[["latent_auc_low", "latent_auc_high"]].stack().between(0, 1).all()
    test_auc = results[results["split"] == "test"].set_index("run")["membership_auc"]
    np.testing.assert_allclose(table.set_index("run")["membership_auc"], test_auc.loc[table["run"]])
    assert table["intrinsic_dim"].between(0.5, 4).all()  # 2-D codes
    assert table["data_signal"].eq("clean").all() and table["data_intrinsic_dim"].nunique() == 1
    assert 3 < table["data_intrinsic_dim"].iloc[0] < 20  # digits, clean: a handful of dimensions of 64
    assert (table["n_samples"] == len(np.load(folder / "splits.npz")["test"])).all()


def test_decoded_paths_run_between_pairs_of_unseen_samples(folder):
    with np.load(folder / "paths.npz") as npz:
        pairs, alpha, shape = npz["pairs"], npz["alpha"], tuple(npz["image_shape"])
        models = {k: npz[k] for k in npz.files if ":" in k}
        test = np.load(folder / "splits.npz")["test"]
    assert np.isin(pairs, test).all() and alpha[0] == 0 and alpha[-1] == 1 and shape == (8, 8)
    assert {k.split(":")[0] for k in models} == {"pca", "selected", "largest"}
    assert all(v.shape == (len(pairs), len(alpha), 64) for v in models.values())


def test_no_latent_analysis_writes_no_latent_files(tmp_path):
    study(tmp_path, tiny(seeds=(0,)))  # latent="none"
    assert not (tmp_path / "latent.csv").exists() and not (tmp_path / "paths.npz").exists()


def test_a_damaged_or_outdated_latent_csv_is_rebuilt(folder, tmp_path):
    import shutil

    copy = shutil.copytree(folder, tmp_path / "copy")
    expected = pd.read_csv(folder / "latent.csv", dtype={"run": str})
    for damage in ("garbage\x00\x01", expected.drop(columns="latent_auc").to_csv(index=False)):
        (copy / "latent.csv").write_text(damage)
        assert study(copy, tiny(latent="pca")).trained == 0
        pd.testing.assert_frame_equal(pd.read_csv(copy / "latent.csv", dtype={"run": str}), expected)


FINISHED = ("latent.csv", "latent.json", "embeddings.csv", "landscape.csv", "attractors.csv", "paths.npz",
            "reconstructions.npz")


@pytest.fixture(scope="module")
def wider(tmp_path_factory):
    """Two bottlenecks, the landscape too: finish has a task per bottleneck and per landscape run."""
    out = tmp_path_factory.mktemp("finish")
    config = tiny(latent="pca", landscape=True, bottlenecks=(2, 3), widths=(8, 16))
    study(out, config)
    return out, config


def _finish_again(folder, config, tmp_path, **kwargs):
    import json
    import shutil

    from analysis.study.finish import finish
    from analysis.study.prepare import prepare_data
    from analysis.study.store import StudyStore

    copy = shutil.copytree(folder, tmp_path)
    for name in FINISHED:
        (copy / name).unlink()
    store = StudyStore(copy)
    results = store.tables()[0]
    finish(store, prepare_data(config), config, results, json.loads((copy / "selection.json").read_text()), **kwargs)
    return copy


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_finish_on_threads_writes_the_studys_own_numbers(wider, tmp_path, n_jobs):
    folder, config = wider
    copy = _finish_again(folder, config, tmp_path / "copy", n_jobs=n_jobs)
    for name in FINISHED:
        if name.endswith(".npz"):
            with np.load(copy / name) as mine, np.load(folder / name) as theirs:
                assert mine.files == theirs.files and all(np.array_equal(mine[k], theirs[k]) for k in mine.files)
        else:
            assert (copy / name).read_bytes() == (folder / name).read_bytes(), name


def test_finish_tasks_can_go_to_worker_processes(wider, tmp_path):
    import json
    import pickle
    import shutil

    from analysis.study.finish import finish_tasks
    from analysis.study.prepare import prepare_data
    from analysis.study.store import StudyStore

    folder, config = wider
    copy = shutil.copytree(folder, tmp_path / "copy")
    for name in FINISHED:
        (copy / name).unlink()
    store = StudyStore(copy)
    tasks = finish_tasks(store, prepare_data(config), config, store.tables()[0],
                         json.loads((copy / "selection.json").read_text()))
    names = [task.fn.__name__ for task in tasks]
    assert names.count("_latent_rows") == 2 and names.count("_data_dimensions") == 1  # a part per bottleneck
    assert {"_landscape", "_embeddings", "_reconstructions", "path_arrays"} <= set(names)
    for task in tasks:
        pickle.loads(pickle.dumps((task.fn, task.args)))  # what a local worker would be sent


def test_each_autoencoder_is_compared_with_pca_at_its_bottleneck_and_of_its_seed():
    from analysis.study.latent_table import _pca_partner, _pca_runs

    nan = float("nan")
    runs = pd.DataFrame({"run": ["pca-k2", "pca-k4", "ae-k2-s0", "ae-k8-s0"], "model": ["pca", "pca", "ae", "ae"],
                         "bottleneck": [2, 4, 2, 8], "seed": [nan, nan, 0.0, 0.0]})
    pcas = _pca_runs(runs)
    assert [_pca_partner(pcas, row) for _, row in runs.iloc[2:].iterrows()] == ["pca-k2", None]
    seeded = pd.DataFrame({"run": ["pca-k2-s0", "pca-k2-s1", "ae-k2-s1", "ae-k2-s2"], "bottleneck": [2, 2, 2, 2],
                           "model": ["pca", "pca", "ae", "ae"], "seed": [0.0, 1.0, 1.0, 2.0]})  # data seeds
    pcas = _pca_runs(seeded)
    assert [_pca_partner(pcas, row) for _, row in seeded.iloc[2:].iterrows()] == ["pca-k2-s1", "pca-k2-s0"]
    assert _pca_partner(_pca_runs(runs.drop(columns="seed")), runs.iloc[2]) == "pca-k2"
