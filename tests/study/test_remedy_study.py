"""Remedies as an axis of the study: their runs, their audit, the accountant beside the audit's lower bound."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis import StudyConfig, run_study
from analysis.study.remedies import Remedy, parse_remedies
from analysis.study.runspec import RunSpec
from autoenc import TrainConfig

REMEDIES = "weight-decay=0.001 dropout=0.2 denoise=0.3 early-stop dp=0.5,50"


def config(**changes):
    base = dict(bottlenecks=(8,), widths=(64,), seeds=(0, 1), memorization=False, audit=("widest",),
                n_references=4, landscape=False, latent="none", remedies=REMEDIES, remedy_targets=("widest",),
                train=TrainConfig(epochs=6, batch_size=64, lr=2e-3))
    return StudyConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def remedied(tmp_path_factory):
    folder = tmp_path_factory.mktemp("remedied")
    plain = run_study(config(remedies=()), folder, n_jobs=1, progress=False, report=False)
    again = run_study(config(), folder, n_jobs=1, progress=False, report=False)  # remedies added to a study
    return plain, again


def test_remedies_added_to_a_finished_study_train_only_themselves_with_their_own_run_ids(remedied):
    plain, again = remedied
    assert again.trained == 6 * 2  # six remedies x two seeds; the grid is reused
    pd.testing.assert_frame_equal(again.results, plain.results)
    runs = set(again.remedies["run"])
    assert {"ae-k8-h64-wd0.001-s0", "ae-k8-h64-do0.2-s1", "ae-k8-h64-dn0.3-s0", "ae-k8-h64-es-s1",
            "ae-k8-h64-dp0.5-s0", "ae-k8-h64-dp50-s1"} <= runs and len(runs) == 12
    assert (again.remedies["status"] == "ok").all()
    saved = json.loads((again.path / "models" / "ae-k8-h64-dp50-s0" / "config.json").read_text())["metadata"]["train"]
    assert saved["dp_noise"] == 50 and saved["dp_clip"] == 1.0
    assert json.loads((again.path / "study.json").read_text())["config"]["remedies"] == [
        r.text for r in parse_remedies(REMEDIES)]


def test_every_dp_run_s_audited_lower_bound_stays_below_the_accountant_s_epsilon(remedied):
    summary = pd.read_csv(remedied[1].path / "remedy_summary.csv")
    dp = summary[summary["remedy"].str.startswith("dp")].set_index("remedy")
    assert len(dp) == 2 and np.isfinite(dp["epsilon"]).all() and np.isfinite(dp["epsilon_lb"]).all()
    assert (dp["epsilon_lb"] <= dp["epsilon"]).all()
    assert dp.loc["dp50", "epsilon"] < dp.loc["dp0.5", "epsilon"]  # more noise, less privacy loss
    big = dp.loc["dp50"]  # a large noise multiplier leaks nothing measurable
    assert big["membership_auc_ci_low"] <= 0.5 <= big["membership_auc_ci_high"]
    assert set(summary["remedy"]) == {"none", "pca", *[Remedy.parse(t).tag for t in REMEDIES.split(" ")[:4]],
                                      "dp0.5", "dp50"}


def test_early_stopping_keeps_the_weights_of_the_clean_minimum_its_curve_shows(remedied):
    folder = remedied[1].path
    history = pd.read_csv(folder / "remedy_history.csv")
    remedies = pd.read_csv(folder / "remedies.csv")
    for run in ("ae-k8-h64-es-s0", "ae-k8-h64-es-s1"):
        curve = history[history["run"] == run].dropna(subset=["mse_clean_val"])
        assert len(curve) == 6  # measured at every epoch
        best = curve.loc[curve["mse_clean_val"].idxmin()]
        val = remedies[(remedies["run"] == run) & (remedies["split"] == "val")].iloc[0]
        assert val["mse_clean"] == pytest.approx(best["mse_clean_val"], rel=1e-5)
        assert val["best_clean_epoch"] == best["epoch"]


def test_the_audit_of_a_remedy_uses_reference_models_trained_with_it(remedied):
    folder = remedied[1].path
    audited = set(pd.read_csv(folder / "audit_summary.csv")["run"])
    assert {"ae-k8-h64-s0", "ae-k8-h64-wd0.001-s0", "ae-k8-h64-dp50-s0"} <= audited
    assert (folder / "references" / "ae-k8-h64-dp50").is_dir()


def test_the_verdict_recommends_or_says_none_works(remedied):
    from analysis.report.summary import study_summary

    lines = study_summary(remedied[1].path)["lines"]
    said = [line for line in lines if "ae-k8-h64" in line and any(
        words in line for words in ("cheapest remedy", "None of the", "needs no remedy"))]
    assert len(said) == 1
    # six epochs of width 64 do not store their samples: its AUC interval overlaps PCA's, so nothing to remedy
    assert "needs no remedy" in said[0]


def test_remedy_run_ids_round_trip_and_bad_remedies_are_named():
    spec = RunSpec(32, (1024,), 0, remedy="wd0.0001")
    assert RunSpec.from_run(spec.run) == spec and spec.base == RunSpec(32, (1024,), 0)
    assert spec.train_config(TrainConfig()).weight_decay == 0.0001
    assert RunSpec(4, (8,), 1, remedy="dp4").train_config(TrainConfig(), dp_clip=0.5).dp_noise == 4
    for bad, match in (("weight-decay", "needs a value"), ("dropout=1.5", r"in \(0, 1\)"), ("lasso=1", "unknown"),
                       ("early-stop=3", "takes no value"), ("dp=x", "needs a number")):
        with pytest.raises(ValueError, match=match):
            StudyConfig(remedies=bad)
    with pytest.raises(ValueError, match="remedy_targets"):
        StudyConfig(remedies="dp=1", remedy_targets=("largest",))


def test_a_remedies_table_in_toml_round_trips():
    text = config().to_toml()
    assert "[remedies]" in text and StudyConfig.from_toml(text) == config()
    table = StudyConfig.from_toml('[remedies]\n"weight-decay" = [1e-4, 1e-3]\n"early-stop" = true\ntargets = '
                                  '["selected"]\n')
    assert table.remedies == ("weight-decay=0.0001", "weight-decay=0.001", "early-stop")
    assert table.remedy_targets == ("selected",)
