"""Verdicts a reviewer can trust: selection that copying cannot win, the right reference line, intervals."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import StudyConfig, run_study, simplest_adequate
from analysis.study import prepare_data
from autoenc import TrainConfig

FAST = TrainConfig(epochs=5, batch_size=128, lr=2e-3)


def study(tmp_path, **changes):
    config = StudyConfig(**{**dict(widths=(16,), seeds=(0,), memorization=False, latent="none", train=FAST),
                            **changes})
    return run_study(config, tmp_path, n_jobs=1, progress=False, report=False)


@pytest.fixture(scope="module")
def with_identity(tmp_path_factory):
    """k = d = 64 in the grid: PCA with 64 components is the identity map, which wins the noisy error."""
    return study(tmp_path_factory.mktemp("identity"), bottlenecks=(8, 16, 64))


def test_the_identity_map_is_never_chosen(with_identity):
    results = with_identity.results
    noisy = results.query("split == 'val' and status == 'ok'").set_index("run")["mse"]
    assert noisy.idxmin() == "pca-k64" and noisy.min() < 1e-10  # what selecting on the noisy error would pick
    assert with_identity.selection["metric"] == "mse_clean"
    assert with_identity.selection["bottleneck"] != 64
    assert simplest_adequate(results, metric="mse")["bottleneck"] != 64  # copying left out even then


def test_pca_df_is_k_and_sure_tracks_the_clean_error(with_identity):
    pca = with_identity.results.query("model == 'pca' and split != 'train'")
    np.testing.assert_allclose(pca["df"], pca["bottleneck"], rtol=1e-6)  # float32 components
    # SURE is unbiased for the clean error on unseen rows: within a few percent on ~360 rows of 64 features.
    np.testing.assert_allclose(pca["sure"], pca["mse_clean"], rtol=0.05)
    ae = with_identity.results.query("model == 'autoencoder' and split != 'train'")
    assert ((ae["df"] > 0) & (ae["df"] < 64)).all()
    np.testing.assert_allclose(ae["sure"], ae["mse_clean"], rtol=0.08)
    assert with_identity.results.query("split == 'train'")["sure"].isna().all()  # not valid on seen rows


def test_reference_line_and_intervals_are_reported_per_run(with_identity):
    results = with_identity.results.query("status == 'ok'")
    # Isotropic noise in the model's units: the rank-k projection keeps about k/d of it.
    np.testing.assert_allclose(results["nm_reference"], results["bottleneck"] / 64, atol=0.02)
    pca_test = results.query("model == 'pca' and split == 'test'")
    np.testing.assert_allclose(pca_test["noise_memorization"], pca_test["nm_reference"], atol=0.03)
    pair = results[results["split"] != "val"]
    for name in ("membership_auc", "tpr_at_1pct_fpr"):
        assert (pair[f"{name}_ci_low"] <= pair[name]).all() and (pair[name] <= pair[f"{name}_ci_high"]).all()


def test_noise_is_injected_in_the_units_the_model_sees():
    data = prepare_data(StudyConfig(scale="standard", noise_std=0.5))
    assert data.noise[data.train].std() == pytest.approx(0.5, rel=0.01)
    assert data.noise[data.train].std(axis=0) == pytest.approx(np.full(64, 0.5), rel=0.1)  # every feature alike
    clean = data.clean[data.train]
    informative = clean.std(axis=0) > 0
    assert clean[:, informative].std(axis=0) == pytest.approx(np.ones(informative.sum()), rel=1e-4)


def test_without_any_noise_known_the_study_validates_by_denoising(tmp_path):
    result = study(tmp_path, bottlenecks=(4, 16), noise_std=0.0)
    val = result.results.query("split == 'val'")
    assert val["mse_denoise"].notna().all() and result.results.query("split != 'val'")["mse_denoise"].isna().all()
    assert result.selection["metric"] == "mse_denoise"
    assert "denoising" in result.selection["sentence"]


def test_a_known_data_noise_level_selects_on_sure(tmp_path):
    result = study(tmp_path, bottlenecks=(4, 16), noise_std=0.0, data_noise_std=0.1)
    assert result.results.query("split == 'val'")["sure"].notna().all()
    assert result.selection["metric"] == "sure"


def _frame(means, sds, params, seeds=3):
    rows = []
    for i, (m, s, p) in enumerate(zip(means, sds, params)):
        for seed, z in enumerate(np.linspace(-1, 1, seeds) * s * np.sqrt(seeds - 1) / np.sqrt(2)):
            rows.append(dict(model="autoencoder", bottleneck=i + 1, hidden="8", depth=1, width=8, n_params=p,
                             split="val", mse=m + z, mse_clean=m + z, noise_std=0.1, status="ok"))
    return pd.DataFrame(rows)


def test_one_standard_error_rule_accounts_for_the_seed_spread():
    # The best (k=3) has a wide spread over seeds; k=1 sits within one standard error of it, k=2 does not.
    results = _frame(means=[0.108, 0.113, 0.100], sds=[0.001, 0.001, 0.02], params=[10, 20, 30])
    se = 0.02 / np.sqrt(3)
    assert 0.108 < 0.100 + se
    assert simplest_adequate(results)["bottleneck"] == 1
    assert simplest_adequate(results, rule="tolerance", tolerance=0.05)["bottleneck"] == 3


def test_data_seeds_put_the_sampling_of_the_data_into_the_spread(tmp_path):
    from analysis import summary_table

    result = study(tmp_path, bottlenecks=(4,), seeds=(0, 1), data_seeds=True, memorization=True, n_references=4,
                   audit=("widest",))
    runs = set(result.results["run"])
    assert {"pca-k4-s0", "pca-k4-s1", "ae-k4-h16-s0", "ae-k4-h16-s1"} == runs
    samples = result.samples
    seen = {run: set(samples.query("run == @run and split == 'train'")["sample"]) for run in runs}
    assert seen["pca-k4-s0"] == seen["ae-k4-h16-s0"] != seen["pca-k4-s1"] == seen["ae-k4-h16-s1"]
    pca = summary_table(result.results).query("model == 'pca'").iloc[0]
    assert pca["n_seeds"] == 2 and pca["test_mse_clean_ci_low"] < pca["test_mse_clean"] < pca["test_mse_clean_ci_high"]
    memorization = pd.read_csv(tmp_path / "memorization.csv")
    assert set(memorization["run"]) <= runs  # joins on the run id
    audit = pd.read_csv(tmp_path / "audit_summary.csv")
    assert set(audit["targets"]) == {"ae-k4-h16-s0"}  # only the run that shares the references' data draw
    # one run's audit proves at most about log(n_nonmembers / 3.7) (no false positive among half of them)
    assert ((audit["epsilon_lb"] >= 0) & (audit["epsilon_lb"] < np.log(audit["n_nonmembers"] / 2))).all()


def test_a_convolutional_study_runs_end_to_end_with_its_own_run_ids(tmp_path):
    result = study(tmp_path, architecture="conv", bottlenecks=(4,), widths=(8,), depths=(1, 2), memorization=True,
                   n_references=4, audit=("widest",))
    ae = result.results.query("model == 'autoencoder' and split == 'test'")
    assert set(ae["run"]) == {"ae-k4-c8-s0", "ae-k4-c8-8-s0"} and (ae["status"] == "ok").all()
    config = json.loads((tmp_path / "models" / "ae-k4-c8-8-s0" / "config.json").read_text())["model"]
    assert config["kind"] == "conv" and config["input_shape"] == [1, 8, 8]  # digits keep their 8 x 8 shape
    assert (ae["df"] > 0).all() and (ae["df"] < 64).all()
    assert set(pd.read_csv(tmp_path / "audit_summary.csv")["run"]) <= set(ae["run"])


def test_the_verdict_says_which_widths_store_and_which_learn_no_more_than_pca():
    from analysis.report.verdict import verdict

    rows = [dict(model="pca", bottleneck=8, hidden="", n_params=576, n_seeds=1, nm_reference=0.125, nm_seen=0.13,
                 nm_unseen=0.125, membership_auc=0.51, test_mse_clean=0.030, mem_gap=0.005),
            dict(model="autoencoder", bottleneck=8, hidden="16", n_params=2408, n_seeds=3, nm_reference=0.125,
                 nm_seen=0.131, nm_unseen=0.125, membership_auc=0.515, membership_auc_ci_low=0.49,
                 membership_auc_ci_high=0.54, mem_gap=0.006, mem_gap_ci_low=0.0, mem_gap_ci_high=0.012,
                 test_mse_clean=0.031, clean_vs_pca=0.001, clean_vs_pca_ci_low=0.0005, clean_vs_pca_ci_high=0.002),
            dict(model="autoencoder", bottleneck=8, hidden="1024", n_params=149576, n_seeds=3, nm_reference=0.125,
                 nm_seen=0.61, nm_unseen=0.13, membership_auc=0.99, membership_auc_ci_low=0.98,
                 membership_auc_ci_high=1.0, mem_gap=0.48, mem_gap_ci_low=0.45, mem_gap_ci_high=0.51,
                 test_mse_clean=0.029, clean_vs_pca=-0.001, clean_vs_pca_ci_low=-0.0015, clean_vs_pca_ci_high=-0.0005)]
    lines = verdict(pd.DataFrame(rows), {"sentence": "The simplest adequate model is PCA."},
                    agreement=[{"run": "ae-k8-h1024-s0", "n_references": 24, "split_half_spearman": 0.85,
                                "predicted_spearman": 0.92}])
    assert lines[0].startswith("Width 1024 stores its training samples: at k=8 it reproduces 61%")
    assert "membership AUC 0.99 [0.98, 1.00]" in lines[0] and "beats PCA" in lines[0] and "k = 8" in lines[0]
    assert "seen minus unseen 0.480 [0.450, 0.510]" in lines[0]
    assert lines[1].startswith("Width 16 learns no more than PCA") and "never beats PCA" in lines[1]
    assert "Spearman 0.92" in lines[2] and lines[3] == "The simplest adequate model is PCA."


def test_unscaled_features_of_very_different_sizes_are_warned_about(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6)) * np.array([0.01, 0.1, 1, 10, 100, 1000])
    np.save(tmp_path / "raw.npy", X)
    with pytest.warns(UserWarning, match="--scale standard"):
        prepare_data(StudyConfig(dataset=str(tmp_path / "raw.npy"), bottlenecks=(2,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        prepare_data(StudyConfig(dataset=str(tmp_path / "raw.npy"), bottlenecks=(2,), scale="standard"))


def test_a_failed_fit_is_called_one_not_memorization():
    from analysis.report.verdict import verdict

    rows = [dict(model="pca", bottleneck=2, hidden="", n_params=93, n_seeds=1, nm_reference=0.07, nm_seen=0.2,
                 nm_unseen=0.3, membership_auc=0.5, test_mse_clean=1.8),
            dict(model="autoencoder", bottleneck=2, hidden="16", n_params=1121, n_seeds=2, nm_reference=0.07,
                 nm_seen=-0.4, nm_unseen=0.8, membership_auc=0.53, test_mse_clean=400.0, clean_vs_pca=398.2,
                 clean_vs_pca_ci_low=150.0, clean_vs_pca_ci_high=650.0)]
    (line,) = verdict(pd.DataFrame(rows), scale_ratio=1e4)
    assert line.startswith("Width 16 fits the data badly") and "222.2 to 222.2 times PCA's" in line
    assert "negative noise memorization" in line and "--scale standard" in line and "10,000" in line


def test_the_pca_reference_lines_come_from_one_decomposition(monkeypatch):
    import analysis.study.prepare as prepare

    fits = []
    real = prepare.principal_axes
    monkeypatch.setattr(prepare, "principal_axes", lambda X: fits.append(X.shape) or real(X))
    data = prepare_data(StudyConfig(bottlenecks=(2, 4)))
    first = [data.nm_reference(k) for k in (2, 4, 2, 4, 2)]
    assert fits == [(len(data.train), 64)] and first[0] == first[2] == first[4] and first[1] == first[3]
    assert 0 < first[0] < first[1] < 1  # a rank-4 projection keeps more of the noise than a rank-2 one


def _row(hidden, k=8, seeds=3, auc=(0.5, 0.48, 0.52), gap=(0.0, -0.01, 0.01), clean=(0.0, -0.001, 0.001), **extra):
    """A summary_table row with its intervals: (mean, low, high) of membership AUC, memorization gap, clean vs PCA."""
    size = sum(int(w) for w in hidden.split("-")) if hidden else 0
    row = dict(model="autoencoder" if hidden else "pca", bottleneck=k, hidden=hidden, n_params=100 * (size + 1),
               n_seeds=seeds, nm_reference=k / 64, nm_seen=0.2 + gap[0], nm_unseen=0.2, test_mse_clean=0.03)
    for name, (mean, low, high) in (("membership_auc", auc), ("mem_gap", gap), ("clean_vs_pca", clean)):
        row.update({name: mean, f"{name}_ci_low": low, f"{name}_ci_high": high})
    return {**row, **extra}


def test_the_answer_names_the_width_memorization_starts_and_the_model_to_use():
    from analysis.report.verdict import answer

    pca = _row("", seeds=1, auc=(0.51, 0.45, 0.57), gap=(0.005, np.nan, np.nan), clean=(0.0, np.nan, np.nan))
    summary = pd.DataFrame([pca, _row("16"), _row("256", auc=(0.9, 0.85, 0.94), gap=(0.3, 0.25, 0.35)),
                            _row("1024", auc=(0.99, 0.97, 1.0), gap=(0.5, 0.45, 0.55))])
    text = answer(summary, {"model": "pca", "bottleneck": 8, "sentence": "..."})
    assert text.startswith("The autoencoders memorize from width 256 on") and "width 16 learns no more than PCA" in text
    assert text.endswith("use PCA with 8 components, the simplest adequate model.") and text.count(".") == 1
    # the same widths with two seeds and intervals that cover no storage: nothing claimed
    wide = pd.DataFrame([pca, _row("16", seeds=2, auc=(0.5, 0.2, 0.8), gap=(0.0, -0.5, 0.5)),
                         _row("256", seeds=2, auc=(0.9, 0.4, 0.99), gap=(0.3, -0.2, 0.8))])
    text = answer(wide)
    assert "memorize" not in text.split("inconclusive")[0] and "widths 16 and 256 the evidence is inconclusive" in text
    assert "more seeds" in text
    with pytest.raises(TypeError, match="selection"):
        answer(summary, "pca")


def test_the_answer_says_when_the_model_it_recommends_stores_its_samples():
    from analysis.report.verdict import answer

    pca = _row("", seeds=1, auc=(0.51, 0.45, 0.57), gap=(0.005, np.nan, np.nan), clean=(0.0, np.nan, np.nan))
    summary = pd.DataFrame([pca, _row("16"), _row("64", auc=(0.6, 0.55, 0.65), gap=(0.05, 0.01, 0.09)),
                            _row("1024", auc=(0.99, 0.97, 1.0), gap=(0.5, 0.45, 0.55))])
    pick = {"model": "autoencoder", "bottleneck": 8, "hidden": "64", "sentence": "..."}
    assert answer(summary, pick).endswith("use the autoencoder with bottleneck 8 and hidden width 64, the simplest "
                                          "adequate model (though it stores a little of its training samples' noise).")
    assert answer(summary, {**pick, "hidden": "1024"}).endswith("(though it stores its training samples).")
    assert answer(summary, {**pick, "hidden": "16"}).endswith("hidden width 16, the simplest adequate model.")


PCA8 = _row("", seeds=1, auc=(0.51, 0.45, 0.57), gap=(0.005, np.nan, np.nan), clean=(0.0, np.nan, np.nan))


@pytest.mark.parametrize("auc, gap, expected", [
    ((0.9, 0.85, 0.94), (0.3, 0.25, 0.35), "Width 256 stores its training samples"),
    ((0.9, 0.40, 0.99), (0.3, 0.25, 0.35), "Whether width 256 stores its training samples is inconclusive"),
    ((0.9, 0.85, 0.94), (0.3, -0.1, 0.7), "Whether width 256 stores its training samples is inconclusive"),
    ((0.6, 0.55, 0.65), (0.05, 0.01, 0.09), "Width 256 stores a little of its training samples' noise"),
    ((0.5, 0.49, 0.52), (0.0, -0.01, 0.02), "Width 256 learns no more than PCA"),
])
def test_storing_is_claimed_only_when_both_intervals_exclude_no_storage(auc, gap, expected):
    from analysis.report.verdict import verdict

    (line,) = verdict(pd.DataFrame([PCA8, _row("256", seeds=2, auc=auc, gap=gap)]))
    assert line.startswith(expected)
    if "inconclusive" in expected:
        assert "more seeds (--seeds; 2 now), --data-seeds" in line and "stores its training samples:" not in line


@pytest.mark.parametrize("clean, expected", [
    ((-0.004, -0.006, -0.002), "beats PCA on unseen samples' clean signal at k = 8"),
    ((-0.004, -0.020, 0.012), "k = 8 the difference from PCA is not resolved with 3 seeds"),
    ((0.004, 0.002, 0.006), "never beats PCA on unseen samples' clean signal"),
])
def test_beating_pca_is_claimed_only_when_the_difference_interval_excludes_0(clean, expected):
    from analysis.report.verdict import verdict

    (line,) = verdict(pd.DataFrame([PCA8, _row("16", clean=clean)]))
    assert expected in line
    assert ("beats PCA" in line.replace("never beats PCA", "")) == (clean[2] < 0)


def _failed(clean=(398.2, 150.0, 650.0)):
    pca = dict(PCA8, bottleneck=2, test_mse_clean=1.8)
    return pd.DataFrame([pca, _row("16", k=2, seeds=2, clean=clean, test_mse_clean=400.0)])


def _history(last_epochs):
    """history.csv of two runs of width 16: train loss 1 / epoch, or flat after epoch 3."""
    epochs = np.arange(1, 21)
    loss = 1 / epochs if last_epochs == "falling" else np.maximum(1 / epochs, 1 / 3)
    return pd.DataFrame([dict(run=f"ae-k2-h16-s{s}", model="autoencoder", hidden="16", epoch=e, train_loss=v)
                         for s in (0, 1) for e, v in zip(epochs, loss)])


@pytest.mark.parametrize("history, scale_ratio, cause, not_cause", [
    ("falling", None, "still falling when training stopped", "--scale standard"),
    ("flat", 5e3, "scales differ by a factor of 5,000", "--epochs"),
    ("falling", 5e3, "--epochs", "neither"),
    ("flat", 2.0, "neither a train loss still falling", "scales differ"),
])
def test_a_failed_fit_names_the_cause_the_evidence_points_to(history, scale_ratio, cause, not_cause):
    from analysis.report.verdict import verdict

    (line,) = verdict(_failed(), history=_history(history), scale_ratio=scale_ratio)
    assert line.startswith("Width 16 fits the data badly") and cause in line and not_cause not in line
    if history == "falling":
        assert "train longer, --epochs" in line


def test_a_failed_fit_is_claimed_only_when_its_interval_is_above_pca():
    from analysis.report.verdict import verdict

    (line,) = verdict(_failed(clean=(398.2, -50.0, 850.0)))
    assert "fits the data badly" not in line and "k = 2 the difference from PCA is not resolved" in line


def test_the_train_loss_trend_reads_the_last_quarter():
    from analysis.report.evidence import still_falling

    assert still_falling(_history("falling"), ["ae-k2-h16-s0"]) == (True, pytest.approx((1 / 15 - 1 / 20) * 20))
    assert still_falling(_history("flat"), ["ae-k2-h16-s0", "ae-k2-h16-s1"]) == (False, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        still_falling(_history("flat"), ["ae-k2-h16-s0"], threshold=-1)


@pytest.mark.parametrize("positives, expected", [(40, "above the 1.0% a guess flags"), (4, "inconclusive")])
def test_an_audit_claims_leakage_only_above_what_a_guess_flags(positives, expected):
    from analysis.report.verdict import verdict

    audit = pd.DataFrame([dict(run="ae-k8-h1024-s0", targets="ae-k8-h1024-s0", attack=attack, fpr=0.01,
                               tpr=(positives - i) / 400, tpr_ci_low=0.0, tpr_ci_high=0.2,
                               n_true_positives=positives - i, n_members=400, n_nonmembers=400, n_references=8,
                               fpr_resolved=True) for i, attack in enumerate(["rmia", "lira_offline", "loss"])])
    (line,) = verdict(pd.DataFrame(), audit=audit)[1:]
    assert line.startswith("Membership audit of ae-k8-h1024") and expected in line


def test_two_seed_intervals_stay_in_range_where_t_over_seeds_left_it():
    """The wine study's numbers: t over two seeds gave AUC 0.835 [0.558, 1.111], noise memorization 0.763
    [0.373, 1.153] and an unseen error 0.1239 [-0.0051, 0.2529]."""
    from analysis.measures.intervals import mean_interval
    from analysis.study.tables import summary_table

    seeds = {"membership_auc": (0.8132, 0.8568), "noise_memorization": (0.7323, 0.7937), "mse": (0.1137, 0.1341)}
    rows = []
    for s in (0, 1):
        for split in ("train", "test"):
            rows.append(dict(run=f"ae-k4-h256-s{s}", model="autoencoder", bottleneck=4, hidden="256", n_params=9233,
                             seed=s, split=split, n_samples=107 if split == "train" else 36,
                             mse=seeds["mse"][s] * (0.5 if split == "train" else 1), mse_clean=seeds["mse"][s] * 0.9,
                             noise_memorization=seeds["noise_memorization"][s] - (0.4 if split == "test" else 0),
                             membership_auc=seeds["membership_auc"][s]))
    row = summary_table(pd.DataFrame(rows)).iloc[0]
    old = {name: mean_interval(list(values))[2:] for name, values in seeds.items()}
    assert old["membership_auc"][1] > 1 and old["noise_memorization"][1] > 1 and old["mse"][0] < 0
    for name, (lowest, highest) in {"membership_auc": (0, 1), "nm_seen": (0, 1), "test_mse": (0, np.inf),
                                    "test_mse_clean": (0, np.inf)}.items():
        assert lowest < row[f"{name}_ci_low"] < row[name] < row[f"{name}_ci_high"] < highest, name
    assert row["mem_gap"] == pytest.approx(0.4) and row["mem_gap_ci_low"] == row["mem_gap_ci_high"] == 0.4


def test_differences_are_paired_by_seed_where_pca_has_one_run_per_data_seed():
    """With --data-seeds each seed has its own split and its own PCA: the clean error is compared seed by seed."""
    from analysis.study.tables import summary_table

    rows = []
    for s, pca_error in enumerate((0.020, 0.030, 0.045)):  # PCA's error moves with the data draw
        for model, error in (("pca", pca_error), ("autoencoder", pca_error + 0.004)):
            run = f"pca-k4-s{s}" if model == "pca" else f"ae-k4-h16-s{s}"
            for split, nm in (("train", 0.30 + 0.01 * s), ("test", 0.10)):
                rows.append(dict(run=run, model=model, bottleneck=4, hidden="" if model == "pca" else "16",
                                 n_params=100, seed=s, split=split, n_samples=300, mse=error, mse_clean=error,
                                 noise_memorization=nm, membership_auc=0.6))
    ae = summary_table(pd.DataFrame(rows)).query("model == 'autoencoder'").iloc[0]
    assert ae["clean_vs_pca"] == pytest.approx(0.004)
    assert ae["clean_vs_pca_ci_low"] == pytest.approx(0.004) == ae["clean_vs_pca_ci_high"]  # no spread once paired
    assert ae["mem_gap"] == pytest.approx(0.21) and 0.1 < ae["mem_gap_ci_low"] < 0.21 < ae["mem_gap_ci_high"] < 0.4


def test_what_pca_shows_too_is_not_called_storing():
    """The default study's width 16 at k=8: both intervals exclude the nulls, but not PCA's own numbers."""
    from analysis.report.verdict import answer, verdict

    pca = _row("", seeds=1, auc=(0.512, 0.479, 0.546), gap=(0.011, np.nan, np.nan), clean=(0.0, np.nan, np.nan))
    ae = _row("16", auc=(0.511, 0.509, 0.513), gap=(0.010, 0.005, 0.016))
    assert ae["membership_auc_ci_low"] > 0.5 and ae["mem_gap_ci_low"] > 0
    (line,) = verdict(pd.DataFrame([pca, ae]))
    assert line.startswith("Width 16 learns no more than PCA")
    assert "memorize" not in answer(pd.DataFrame([pca, ae]))


def test_the_answer_names_widths_that_memorize_between_inconclusive_ones():
    from analysis.report.verdict import answer

    summary = pd.DataFrame([PCA8, _row("16", seeds=2, auc=(0.5, 0.2, 0.8), gap=(0.0, -0.5, 0.5)),
                            _row("256", seeds=2, auc=(0.9, 0.85, 0.94), gap=(0.3, 0.25, 0.35)),
                            _row("1024", seeds=2, auc=(0.9, 0.4, 0.99), gap=(0.3, -0.2, 0.8))])
    text = answer(summary)
    assert text.startswith("Width 256 memorizes (it reproduces its training samples' noise")
    assert "for widths 16 and 1024 the evidence is inconclusive with 2 seeds" in text


def test_a_study_folder_hands_the_verdict_its_history_and_feature_scales(tmp_path, frames):
    """The report reads the feature scale ratio the study recorded in study.json; it never loads the data."""
    from synthetic_study import write_study

    from analysis.report.evidence import fit_evidence, verdict_inputs

    folder = write_study(tmp_path / "s", frames)
    study_json = dict(frames["study"], config=dict(frames["study"]["config"], dataset=str(tmp_path / "gone.npy"),
                                                     scale="none"), feature_scale_ratio=500.0)
    (folder / "study.json").write_text(json.dumps(study_json))
    evidence = fit_evidence(folder)
    assert evidence["scale_ratio"] == 500.0 and len(evidence["history"]) == len(frames["history"])
    (folder / "study.json").write_text(json.dumps(dict(study_json, feature_scale_ratio=None)))
    inputs = verdict_inputs(folder)
    assert inputs["scale_ratio"] is None and set(inputs) == {"summary", "selection", "audit", "agreement", "remedies",
                                                             "history", "scale_ratio"}
    assert inputs["history"]["run"].map(type).eq(str).all()
    with pytest.raises(ValueError, match="study_dir"):
        verdict_inputs(tmp_path)


@pytest.mark.parametrize("call, error, match", [
    (lambda v: v.verdict(pd.DataFrame(), history=[1, 2]), TypeError, "history must be a DataFrame"),
    (lambda v: v.verdict(pd.DataFrame(), scale_ratio=0.5), ValueError, "scale_ratio must be a number >= 1"),
    (lambda v: v.key_numbers(pd.DataFrame(), compact="yes"), TypeError, "compact must be True or False"),
    (lambda v: v.answer([1, 2]), TypeError, "summary must be a DataFrame"),
])
def test_new_arguments_are_checked(call, error, match):
    import importlib

    module = importlib.import_module("analysis.report.verdict")  # analysis.report.verdict the attribute is the function
    with pytest.raises(error, match=match):
        call(module)


def test_the_compact_table_keeps_the_claims_numbers():
    from analysis.report.verdict import key_numbers

    heads, rows = key_numbers(pd.DataFrame([PCA8, _row("256", auc=(0.9, 0.85, 0.94), gap=(0.3, 0.25, 0.35))]),
                              compact=True)
    assert heads[-2:] == ["noise mem. gap [CI]", "membership AUC [CI]"] and rows[1][0] == "AE"
    assert rows[1][-2:] == ["0.30 [0.25, 0.35]", "0.900 [0.850, 0.940]"]


def test_the_answer_without_autoencoders_or_noise_says_what_it_cannot_tell():
    from analysis.report.verdict import answer

    assert answer(pd.DataFrame([PCA8]), {"model": "pca", "bottleneck": 8}).startswith("No autoencoder finished")
    quiet = pd.DataFrame([PCA8, _row("16")]).assign(nm_seen=np.nan, nm_unseen=np.nan)
    assert answer(quiet).startswith("No noise was injected")
    deep = pd.DataFrame([PCA8, _row("16-16", auc=(0.9, 0.85, 0.94), gap=(0.3, 0.25, 0.35))])
    assert answer(deep).startswith("The autoencoders memorize from hidden widths (16, 16) on")
