"""The study runner end to end: files, resume after interruption (even SIGKILL), config checks, Dask, grow."""
import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import RunSpec, StudyConfig, run_study, simplest_adequate, write_report
from analysis.study.store import StudyStore
from autoenc import TrainConfig, load, reconstruct

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["mse", "mse_clean", "noise_memorization", "gap", "ratio", "membership_auc", "tpr_at_1pct_fpr",
           "ks_statistic"]


def small_config(**changes):
    base = dict(bottlenecks=(2, 8), widths=(8, 32), seeds=(0, 1), train=TrainConfig(epochs=4, batch_size=128, lr=2e-3),
                memorization=False, latent="none")
    base.update(changes)
    return StudyConfig(**base)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted small study, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("reference")
    return run_study(small_config(), out, n_jobs=1, progress=False, report=False)


def metric_frame(results):
    return results.sort_values(["run", "split"]).reset_index(drop=True)[["run", "split", *METRICS]]


def test_study_writes_the_layout(reference):
    folder = Path(reference.path)
    for name in ("study.json", "splits.npz", "results.csv", "samples.csv", "history.csv", "selection.json",
                 "reconstructions.npz"):
        assert (folder / name).is_file(), name
    results = pd.read_csv(folder / "results.csv")
    # 2 bottlenecks x 2 widths x 2 seeds autoencoders and 2 PCAs, each with a train, val and test row.
    assert len(results) == (8 + 2) * 3
    assert set(results["model"]) == {"autoencoder", "pca"}
    assert (results["status"] == "ok").all()
    study = json.loads((folder / "study.json").read_text())
    assert study["config"] == small_config().to_dict()
    assert {"torch", "numpy", "autoenc"} <= set(study["versions"])
    splits = np.load(folder / "splits.npz")
    assert sum(len(splits[s]) for s in ("train", "val", "test")) == study["n_samples"] == 1797
    samples = pd.read_csv(folder / "samples.csv")
    assert len(samples) == 10 * 1797  # every model, every sample once
    history = pd.read_csv(folder / "history.csv")
    assert len(history) == 8 * 4


def test_saved_models_reproduce_the_recorded_errors(reference):
    folder = Path(reference.path)
    data_X = np.asarray(_noisy_digits(reference))
    test_idx = np.load(folder / "splits.npz")["test"]
    results = reference.results
    for run in ("ae-k8-h32-s1", "pca-k2"):
        model = load(folder / "models" / run)
        err = ((reconstruct(model, data_X[test_idx]) - data_X[test_idx]) ** 2).mean()
        recorded = results[(results["run"] == run) & (results["split"] == "test")]["mse"].item()
        assert err == pytest.approx(recorded, rel=1e-5)


def _noisy_digits(reference):
    from analysis.study import prepare_data

    return prepare_data(small_config()).X


@pytest.mark.parametrize("scale", ["none", "standard"])
def test_study_json_records_the_feature_scale_ratio_of_an_unscaled_study(tmp_path, scale):
    """The report names unequal scales as a cause of a bad fit from this number, without loading the data."""
    from autoenc.data import feature_scale_ratio

    from analysis.study import prepare_data

    raw = np.random.default_rng(0).standard_normal((60, 3)) * np.array([0.1, 1.0, 50.0])
    np.save(tmp_path / "raw.npy", raw)
    config = small_config(dataset=str(tmp_path / "raw.npy"), bottlenecks=(1,), widths=(4,), seeds=(0,), scale=scale,
                          train=TrainConfig(epochs=1), audit=(), landscape=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scales differ: the study warns, as it should
        run_study(config, tmp_path / "o", n_jobs=1, progress=False, report=False)
        recorded = json.loads((tmp_path / "o" / "study.json").read_text())["feature_scale_ratio"]
        expected = feature_scale_ratio(prepare_data(config).clean) if scale == "none" else None
    assert recorded == expected and (scale == "standard" or 200 < recorded < 1000)


def test_one_widest_autoencoder_with_two_depths(tmp_path):
    """The audit and the K-fold memorization scores describe the same model: the widest at the deepest depth."""
    from analysis.study.references import _kfold_runs, early_references

    config = small_config(bottlenecks=(2, 4), widths=(4, 8), depths=(1, 2), seeds=(0,), memorization=True,
                          memorization_method="kfold", n_folds=2, audit=("widest",), n_references=4, landscape=False,
                          train=TrainConfig(epochs=1, batch_size=128))
    widest = config.widest_run()
    assert widest == RunSpec(4, (8, 8), 0)
    assert _kfold_runs(config)[0] == widest and early_references(config) == [widest]
    result = run_study(config, tmp_path, n_jobs=1, progress=False, report=False)
    scored = pd.read_csv(tmp_path / "memorization.csv")
    assert set(scored.loc[scored["model"] == "autoencoder", "run"]) == {widest.run}
    audited = {RunSpec.from_run(r).architecture for r in pd.read_csv(tmp_path / "audit_summary.csv")["run"]}
    assert audited == {widest.architecture}
    assert widest.run in set(result.results["run"])


def test_pca_rows_match_sklearn_pca(reference):
    from sklearn.decomposition import PCA

    from analysis.study import prepare_data

    data = prepare_data(small_config())
    pca = PCA(8).fit(data.X[data.train])
    Xt = data.X[data.test]
    expected = ((pca.inverse_transform(pca.transform(Xt)) - Xt) ** 2).mean()
    row = reference.results.query("run == 'pca-k8' and split == 'test'")
    assert row["mse"].item() == pytest.approx(expected, rel=1e-5)


def test_rerun_trains_nothing_and_gives_identical_results(reference, tmp_path, monkeypatch):
    import analysis.study.runner as study

    calls = []
    monkeypatch.setattr(study, "train_group", lambda *a: calls.append(a) or [])
    again = run_study(small_config(), reference.path, n_jobs=1, progress=False, report=False)
    assert calls == []
    pd.testing.assert_frame_equal(metric_frame(again.results), metric_frame(reference.results))


def test_the_pair_measures_a_worker_leaves_out_are_those_of_the_whole_measure(reference):
    """A worker measures a group without the train/test pair measures (no scipy.stats there); the study process
    fills them in (``training.with_pairs``) before the commit: each run's committed rows equal what measuring its
    saved model whole gives, exactly."""
    from analysis.measures.errors import PAIR_COLUMNS
    from analysis.study.prepare import prepare_data
    from analysis.study.training import _measure

    data, results = prepare_data(small_config()), reference.results
    columns = [c for c in PAIR_COLUMNS if c in results.columns]
    assert "ks_pvalue" in columns and "membership_auc_ci_low" in columns
    for run in results.query("model == 'autoencoder'")["run"].unique():
        model = load(Path(reference.path) / "models" / run)
        rows, _ = _measure(model, data, model.config.bottleneck)
        whole = pd.DataFrame(rows).set_index("split")[columns]
        committed = results[results["run"] == run].set_index("split").loc[whole.index, columns]
        assert committed.loc[["train", "test"]].notna().all().all(), run
        pd.testing.assert_frame_equal(committed, whole, check_exact=True, check_dtype=False, obj=run)


def test_interrupted_study_resumes_to_the_uninterrupted_result(reference, tmp_path, monkeypatch):
    commits = []
    original = StudyStore.commit

    def commit_then_interrupt(self, record):
        original(self, record)
        commits.append(record.run)
        if len(commits) == 5:  # 5 of the 10 runs are in
            raise KeyboardInterrupt

    monkeypatch.setattr(StudyStore, "commit", commit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_study(small_config(), tmp_path, n_jobs=1, progress=False, report=False)
    monkeypatch.setattr(StudyStore, "commit", original)
    assert len(StudyStore(tmp_path).finished()) == 5
    assert (tmp_path / "results.csv").is_file()  # tables of what finished are written on the way out
    resumed = run_study(small_config(), tmp_path, n_jobs=1, progress=False, report=False)
    pd.testing.assert_frame_equal(metric_frame(resumed.results), metric_frame(reference.results))


@pytest.mark.slow  # a process killed and waited on: CI's separate slow step runs it
def test_sigkill_loses_nothing_finished(reference, tmp_path):
    """Kill the command line with SIGKILL mid-study; the rerun finishes it with the uninterrupted numbers."""
    args = [sys.executable, str(ROOT / "scripts" / "study.py"), "--out", str(tmp_path), "--bottlenecks", "2,8",
            "--widths", "8,32", "--seeds", "0,1", "--epochs", "4", "--batch-size", "128", "--lr", "0.002", "--no-memorization",
            "--latent", "none", "--jobs", "1", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(StudyStore(tmp_path).finished()) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = StudyStore(tmp_path).finished()
    assert len(done) >= 3
    for run in done:  # every committed run is complete on disk
        json.loads((tmp_path / "models" / run / "result.json").read_text())
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "report:" in out.stdout
    resumed = pd.read_csv(tmp_path / "results.csv")
    expected = metric_frame(reference.results)
    got = metric_frame(resumed)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)


@pytest.mark.slow  # a process killed and waited on: CI's separate slow step runs it
def test_workers_exit_when_the_study_is_killed(tmp_path):
    import psutil

    args = [sys.executable, str(ROOT / "scripts" / "study.py"), "--out", str(tmp_path), "--bottlenecks", "2,8",
            "--widths", "8,32", "--seeds", "0,1", "--epochs", "200", "--no-memorization", "--latent", "none",
            "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    study, deadline = psutil.Process(proc.pid), time.time() + 120
    while len(StudyStore(tmp_path).finished()) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = [p for p in study.children(recursive=True) if "loky" in " ".join(p.cmdline())]
    assert workers, "the study runs its models in worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"workers outlived the killed study: {[p.pid for p in alive]}"


@pytest.mark.slow  # a process killed and waited on: CI's separate slow step runs it
def test_ctrl_c_stops_cleanly_with_a_line_on_how_to_resume(tmp_path):
    args = [sys.executable, str(ROOT / "scripts" / "study.py"), "--out", str(tmp_path), "--bottlenecks", "2,8",
            "--widths", "8,32", "--seeds", "0,1", "--epochs", "200", "--no-memorization", "--latent", "none",
            "--jobs", "1", "--quiet"]
    # A child of a non-interactive shell may inherit SIGINT ignored; restore the default so Ctrl-C can reach it.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while len(StudyStore(tmp_path).finished()) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == (f"interrupted: finished runs are saved in {tmp_path}; "
                                            "run the same command again to resume")
    assert "Traceback" not in err and len(StudyStore(tmp_path).finished()) >= 1


def test_a_folder_with_another_config_is_refused(reference):
    with pytest.raises(ValueError, match=r"different config.*train\.epochs: 4 in the folder, 5 now"):
        run_study(small_config(train=TrainConfig(epochs=5, batch_size=128, lr=2e-3)), reference.path, n_jobs=1,
                  progress=False)


def test_diverging_runs_are_recorded_and_the_study_goes_on(tmp_path):
    config = small_config(bottlenecks=(2,), widths=(8,), seeds=(0,), train=TrainConfig(epochs=3, lr=1e12))
    with pytest.warns(RuntimeWarning, match="figure '.*' skipped"):  # nothing to draw for the failed runs
        result = run_study(config, tmp_path, n_jobs=1, progress=False, report=write_report)
    ae = result.results[result.results["model"] == "autoencoder"]
    assert (ae["status"] == "diverged").all()
    assert ae["reason"].str.contains("epoch").all()
    assert (result.results.query("model == 'pca'")["status"] == "ok").all()
    report = (tmp_path / "report.html").read_text()
    assert "ae-k2-h8-s0" in report and "diverged" in report


LAYOUT_FILES = ["results.csv", "samples.csv", "history.csv", "memorization.csv", "audit_summary.csv", "audit.csv"]


def test_the_numbers_do_not_depend_on_the_execution_layout(tmp_path):
    """In this process with its thread pools widened beforehand, in two local workers, and on a Dask cluster: the
    same study files, byte for byte (every task and the study's own process compute on one thread)."""
    import distributed  # the 'distributed' extra is part of the test set-up (README, Makefile)
    import torch
    from threadpoolctl import threadpool_limits

    config = small_config(memorization=True, n_references=4, audit=("widest",))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threadpool_limits(2):  # what a notebook or another library may have set
            run_study(config, tmp_path / "here", n_jobs=1, progress=False, report=False)
    finally:
        torch.set_num_threads(before)
    run_study(config, tmp_path / "local", n_jobs=2, progress=False, report=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_study(config, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False, report=False)
    for name in LAYOUT_FILES:
        here = (tmp_path / "here" / name).read_bytes()
        assert len(here) > 100, name
        for layout in ("local", "dask"):
            assert (tmp_path / layout / name).read_bytes() == here, f"{name} differs with {layout} workers"


def test_grow_search_starts_small_and_records_every_step(tmp_path):
    config = small_config(search="grow", bottlenecks=(8,), widths=(8, 64), depths=(1, 2), seeds=(0,),
                          train=TrainConfig(epochs=6, batch_size=64), tolerance=0.01)
    result = run_study(config, tmp_path, n_jobs=1, progress=False, report=False)
    runs = set(result.results.query("model == 'autoencoder'")["run"])
    assert "ae-k8-h8-s0" in runs  # the start: one narrow layer
    for run in runs:
        widths = [int(w) for w in run.split("-h")[1].split("-s")[0].split("-")]
        assert len(set(widths)) == 1 and widths[0] in (8, 16, 32, 64) and len(widths) <= 2
    assert len(runs) >= 2  # 6 epochs on digits: wider is clearly better than 8 units


def test_bottleneck_larger_than_the_data_is_refused_before_work(tmp_path):
    with pytest.raises(ValueError, match=r"bottlenecks \[128\] are larger than the number of features \(64\)"):
        run_study(small_config(bottlenecks=(8, 128)), tmp_path, n_jobs=1, progress=False)
    assert not (tmp_path / "study.json").exists()


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown backend 'spark'; valid values are \['loky', 'dask'\]"):
        run_study(small_config(), tmp_path, backend="spark")


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        run_study(small_config(dataset="nope"), tmp_path, n_jobs=1)


# -- StudyConfig ----------------------------------------------------------------------------------------------
def test_config_round_trips_through_json_and_toml(tmp_path):
    config = small_config(noise_std=0.1, depths=(1, 2), train=TrainConfig(epochs=7, patience=3))
    assert StudyConfig.from_json(config.to_json()) == config
    assert StudyConfig.from_toml(config.to_toml()) == config
    (tmp_path / "s.toml").write_text(config.to_toml())
    assert StudyConfig.from_file(tmp_path / "s.toml") == config


@pytest.mark.parametrize("changes, message", [
    (dict(noise_std=-1), "noise_std"),
    (dict(fractions=(0.5, 0.5, 0.0)), "fractions"),
    (dict(fractions=(0.5, 0.2, 0.2)), "summing to 1"),
    (dict(bottlenecks=()), "bottlenecks must not be empty"),
    (dict(widths=(0, 8)), r"widths\[0\] must be >= 1"),
    (dict(seeds=(1, 1)), "seeds has duplicates"),
    (dict(search="random"), r"unknown search 'random'; valid values are \['grid', 'grow'\]"),
    (dict(latent="tsne"), "unknown latent"),
    (dict(activation="swish"), "unknown activation"),
    (dict(n_folds=1), "n_folds must be >= 2"),
    (dict(train={"epochs": 0}), "epochs must be >= 1"),
])
def test_config_rejects_nonsense(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        small_config(**changes)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown StudyConfig key\(s\) \['widht'\]"):
        StudyConfig.from_dict({"widht": [8]})


def test_runs_expand_the_grid():
    runs = small_config(depths=(1, 2)).runs()
    assert len(runs) == 2 * 2 * 2 * 2
    assert RunSpec(8, (32, 32), 1) in runs and RunSpec(8, (32, 32), 1).run == "ae-k8-h32-32-s1"


# -- selection ------------------------------------------------------------------------------------------------
def _frame(rows):
    keys = ["run", "model", "bottleneck", "hidden", "depth", "width", "n_params", "split", "mse"]
    return pd.DataFrame([dict(zip(keys, r)) for r in rows]).assign(status="ok")


def test_simplest_adequate_picks_the_fewest_parameters_within_tolerance():
    results = _frame([
        ("a-s0", "autoencoder", 4, "16", 1, 16, 1000, "val", 0.105),
        ("a-s1", "autoencoder", 4, "16", 1, 16, 1000, "val", 0.107),  # mean 0.106: 6% worse than best -> out
        ("b-s0", "autoencoder", 8, "64", 1, 64, 5000, "val", 0.103),  # mean 0.103: within 5% -> the answer
        ("c-s0", "autoencoder", 8, "256", 1, 256, 20000, "val", 0.100),  # the best
        ("c-s0", "autoencoder", 8, "256", 1, 256, 20000, "test", 0.120),
        ("b-s0", "autoencoder", 8, "64", 1, 64, 5000, "test", 0.110),
    ])
    choice = simplest_adequate(results, tolerance=0.05)
    assert (choice["bottleneck"], choice["n_params"]) == (8, 5000)
    assert choice["error"] == pytest.approx(0.103) and choice["best_error"] == pytest.approx(0.100)
    assert choice["test_error"] == pytest.approx(0.110)
    assert "5,000 parameters" in choice["sentence"]
    assert simplest_adequate(results, tolerance=0.10)["n_params"] == 1000
    assert simplest_adequate(results, tolerance=0.0)["n_params"] == 20000


def test_simplest_adequate_rejects_bad_input():
    results = _frame([("a", "autoencoder", 4, "16", 1, 16, 1000, "test", 0.1)])
    with pytest.raises(ValueError, match="no finished rows for split='val'"):
        simplest_adequate(results)
    with pytest.raises(ValueError, match="tolerance"):
        simplest_adequate(results, tolerance=-1, split="test")
    with pytest.raises(ValueError, match="missing column"):
        simplest_adequate(results.drop(columns="n_params"), split="test")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"timeout": 0}, ValueError, "timeout must be a finite number > 0"),
    ({"on_progress": "yes"}, TypeError, "on_progress must be a callable"),
])
def test_run_study_rejects_bad_options_before_work(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        run_study(small_config(), tmp_path / "o", n_jobs=1, progress=False, **kwargs)
    assert not (tmp_path / "o").exists()


def test_a_group_trained_in_the_study_process_shows_its_epochs(tmp_path, capsys):
    config = StudyConfig(bottlenecks=(2,), widths=(8,), seeds=(0,), memorization=False, latent="none", audit=(),
                         landscape=False, train=TrainConfig(epochs=3, batch_size=64))
    run_study(config, tmp_path, n_jobs=1, progress=True, report=False)
    err = capsys.readouterr().err
    assert "training: 100%" in err and "0/3 [" in err and "epoch" in err  # the group's epochs, under the models
    run_study(config, tmp_path / "quiet", n_jobs=1, progress=False, report=False)
    assert capsys.readouterr().err == ""


def test_timings_count_the_training_flops_of_what_was_trained(tmp_path):
    from autoenc import ModelConfig, training_flops

    config = small_config(bottlenecks=(2,), widths=(4, 8), seeds=(0,), audit=(), landscape=False,
                          train=TrainConfig(epochs=2, batch_size=256))
    run_study(config, tmp_path, n_jobs=1, progress=False, report=False)
    timings = json.loads((tmp_path / "timings.json").read_text())
    expected = sum(training_flops(ModelConfig(64, 2, hidden=(h,)), 1078, 2) for h in (4, 8))  # PCA is not trained
    assert timings["training_flops"] == expected == 6 * 1078 * 2 * (2 * 64 * 4 + 2 * 4 * 2 + 2 * 64 * 8 + 2 * 8 * 2)
    assert timings["references_and_audit_flops"] == 0 and timings["training"] > 0
    run_study(config, tmp_path, n_jobs=1, progress=False, report=False)  # nothing left to train
    assert json.loads((tmp_path / "timings.json").read_text())["training_flops"] == 0
