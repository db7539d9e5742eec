"""Curves over training: PCA as the linear oracle, pure noise, solo fits as the oracle of the batched hook."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA

from analysis.measures.dynamics import (MEASURES, clean_minimum, double_descent, log_epochs, measure_curves,
                               training_curves)
from analysis.measures.memorization import noise_memorization
from autoenc import Autoencoder, ModelConfig, TrainConfig, reconstruct
from autoenc.batched import fit_group


def _lowrank(rng, n=600, d=16, rank=3, noise_std=0.3):
    """Rank-3 signal plus isotropic noise: 400 train and 200 validation rows, with their clean parts and noise."""
    clean = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))
    noise = noise_std * rng.standard_normal((n, d))
    X = clean + noise
    return X[:400], X[400:], clean[:400], clean[400:], noise[:400], noise[400:]


# --- epochs ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_epochs, n_points", [(60, 12), (1000, 12), (12, 12), (5, 12), (200, 2), (7, 1)])
def test_log_epochs(n_epochs, n_points):
    epochs = log_epochs(n_epochs, n_points)
    assert len(epochs) == min(n_points, n_epochs) and epochs[-1] == n_epochs
    assert all(b > a for a, b in zip(epochs[:-1], epochs[1:])) and epochs[0] >= 1
    if n_points > 1:
        assert epochs[0] == 1
    if n_epochs == 1000:  # no collisions after rounding: exactly the rounded geometric grid
        assert epochs == [int(round(t)) for t in np.geomspace(1, 1000, 12)]


def test_log_epochs_rejects():
    with pytest.raises(ValueError, match="n_epochs must be >= 1"):
        log_epochs(0)
    with pytest.raises(TypeError, match="n_points must be an integer"):
        log_epochs(10, 2.5)


# --- the measures on constructed reconstructions -----------------------------------------------------------------

def test_measures_of_identity_and_perfect_denoiser(rng):
    X_tr, X_va, c_tr, c_va, e_tr, e_va = _lowrank(rng)
    recorder = measure_curves(X_tr, X_va, clean_train=c_tr, clean_val=c_va, noise_train=e_tr, noise_val=e_va)
    clean_of = {x.tobytes(): c for x, c in zip(np.concatenate([X_tr, X_va]), np.concatenate([c_tr, c_va]))}
    denoiser = lambda X: np.array([clean_of[x.tobytes()] for x in X])  # noqa: E731 (called split by split)
    recorder(3, lambda X: np.stack([X, denoiser(X)]))  # member 0 copies its input, member 1 removes all the noise
    assert list(recorder.frame().columns) == ["member", "epoch", *MEASURES]
    copy, denoise = recorder.frame().to_dict("records")
    assert copy["epoch"] == denoise["epoch"] == 3 and (copy["member"], denoise["member"]) == (0, 1)
    assert copy["noise_memorization_train"] == pytest.approx(1) and copy["noise_memorization_val"] == pytest.approx(1)
    assert copy["mse_clean_val"] == pytest.approx(np.mean(e_va**2)) and copy["membership_auc_val"] == 0.5
    assert copy["mse_train"] == copy["mse_val"] == 0
    assert denoise["noise_memorization_train"] == pytest.approx(0, abs=1e-12) and denoise["mse_clean_val"] == 0
    assert denoise["mse_val"] == pytest.approx(np.mean(e_va**2))


def test_measures_default_clean_and_no_noise(rng):
    X_tr, X_va, c_tr, c_va, e_tr, e_va = _lowrank(rng)
    with_clean = measure_curves(X_tr, X_va, clean_train=c_tr, clean_val=c_va, noise_train=e_tr, noise_val=e_va)
    derived = measure_curves(X_tr, X_va, noise_train=e_tr, noise_val=e_va)  # clean = X - noise
    pca = PCA(3).fit(X_tr)
    for recorder in (with_clean, derived):
        recorder(1, lambda X: pca.inverse_transform(pca.transform(X)))
    pd.testing.assert_frame_equal(with_clean.frame(), derived.frame())
    expected = noise_memorization(pca.inverse_transform(pca.transform(X_va)), c_va, e_va)
    assert with_clean.frame()["noise_memorization_val"].item() == pytest.approx(expected)
    plain = measure_curves(X_tr, X_va)
    plain(1, lambda X: X[None])
    row = plain.frame().iloc[0]
    assert np.isnan(row["noise_memorization_train"]) and row["mse_clean_val"] == 0


def test_measure_curves_rejects(rng):
    X_tr, X_va, c_tr, c_va, e_tr, e_va = _lowrank(rng)
    with pytest.raises(ValueError, match="both noise_train and noise_val or neither"):
        measure_curves(X_tr, X_va, noise_train=e_tr)
    with pytest.raises(ValueError, match=r"noise_val has shape \(5, 16\) but X_val has shape \(200, 16\)"):
        measure_curves(X_tr, X_va, noise_train=e_tr, noise_val=e_va[:5])
    with pytest.raises(ValueError, match="X_val has 15 features, expected 16"):
        measure_curves(X_tr, X_va[:, 1:])


# --- oracles over training ---------------------------------------------------------------------------------------

def test_linear_autoencoder_curve_ends_at_pca_without_overshooting(rng):
    X_tr, X_va, c_tr, c_va, e_tr, e_va = _lowrank(rng)
    k = 3
    pca = PCA(k).fit(X_tr)
    nm_pca = [noise_memorization(pca.inverse_transform(pca.transform(X)), c, e)
              for X, c, e in ((X_tr, c_tr, e_tr), (X_va, c_va, e_va))]
    tc = TrainConfig(epochs=150, batch_size=50, lr=1e-2)
    kw = dict(clean_train=c_tr, clean_val=c_va, noise_train=e_tr, noise_val=e_va, epochs=log_epochs(150, 15))
    shallow = training_curves([ModelConfig(16, k, (), linear=True)] * 2, X_tr, X_va,
                              [tc.replace(seed=0), tc.replace(seed=1)], **kw)  # a batched group of two seeds
    deep = training_curves(Autoencoder(ModelConfig(16, k, (16,), linear=True)), X_tr, X_va, tc, **kw)  # solo fit
    assert set(shallow["member"]) == {0, 1} and len(shallow) == 2 * 15 and len(deep) == 15
    for curve in (shallow[shallow["member"] == 0], shallow[shallow["member"] == 1], deep):
        for column, reference in zip(("noise_memorization_train", "noise_memorization_val"), nm_pca):
            values = curve.sort_values("epoch")[column].to_numpy()
            assert abs(values[-1] - reference) < 0.02, (column, values[-1], reference)
            assert values.max() < reference + 0.02, (column, values.max(), reference)


def test_wide_autoencoder_on_pure_noise_memorizes_what_it_sees(rng):
    noise = rng.standard_normal((96, 16)).astype(np.float32)
    zeros = np.zeros_like(noise)
    curves = training_curves(ModelConfig(16, 4, (512,)), noise[:64], noise[64:],
                             TrainConfig(epochs=300, batch_size=16, lr=2e-3), clean_train=zeros[:64],
                             clean_val=zeros[64:], noise_train=noise[:64], noise_val=noise[64:],
                             epochs=log_epochs(300, 10))
    seen = curves["noise_memorization_train"].to_numpy()
    assert seen[-1] > 0.9 and seen[0] < 0.5
    assert np.all(np.diff(seen) > -0.02)  # rises, up to small fluctuations
    assert curves["noise_memorization_val"].iloc[-1] < seen[-1] - 0.3  # what it stores does not carry over
    assert curves["membership_auc_val"].iloc[-1] > 0.95


def test_batched_hook_gives_the_curves_of_solo_fits(rng):
    X_tr, X_va, c_tr, c_va, e_tr, e_va = _lowrank(rng)
    configs = [ModelConfig(16, 2, (24,)), ModelConfig(16, 6, (32,), activation="relu")]
    tcs = [TrainConfig(epochs=12, batch_size=64, lr=3e-3, seed=s) for s in (0, 3)]
    kw = dict(clean_train=c_tr, clean_val=c_va, noise_train=e_tr, noise_val=e_va, epochs=[1, 2, 5, 9])
    group = training_curves(configs, X_tr, X_va, tcs, dtype=torch.float64, **kw)
    assert group["epoch"].tolist() == [1, 1, 2, 2, 5, 5, 9, 9, 12, 12]  # the last epoch is always evaluated
    for m, (config, tc) in enumerate(zip(configs, tcs)):
        solo = training_curves(Autoencoder(config, dtype=torch.float64), X_tr, X_va, tc, **kw)
        mine = group[group["member"] == m].drop(columns="member").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, solo, rtol=1e-9, atol=1e-12)


# --- the hook itself ---------------------------------------------------------------------------------------------

def test_hook_leaves_training_unchanged_and_sees_the_returned_weights(rng):
    X = rng.random((120, 8), dtype=np.float32)
    configs = [ModelConfig(8, 2, (16,)), ModelConfig(8, 4, (12,))]
    tc = TrainConfig(epochs=6, batch_size=32, lr=3e-3)
    seen = {}

    def on_eval(epoch, reconstruct):
        seen[epoch] = reconstruct(X[:10])
        per_member = reconstruct(np.stack([X[:10], X[10:20]]))  # one input per member
        np.testing.assert_array_equal(per_member[0], seen[epoch][0])
        assert per_member.shape == (2, 10, 8)

    hooked = fit_group(configs, X, train_configs=tc, eval_epochs=[2, 4], on_eval=on_eval, progress=False)
    plain = fit_group(configs, X, train_configs=tc, progress=False)
    assert sorted(seen) == [2, 4, 6] and seen[6].shape == (2, 10, 8) and seen[6].dtype == np.float32
    for a, b in zip(hooked, plain):
        assert a.history.train_loss == b.history.train_loss
        np.testing.assert_allclose(seen[6][configs.index(a.model.config)], reconstruct(a.model, X[:10]),
                                   rtol=0, atol=1e-6)


def test_hook_on_diverged_and_early_stopped_members(rng):
    X = rng.random((100, 8), dtype=np.float32)
    X_val = rng.random((40, 8), dtype=np.float32)
    inputs = np.stack([X, X * 1e20, rng.random(X.shape, dtype=np.float32)])  # member 1 overflows at epoch 1
    tc = TrainConfig(epochs=30, batch_size=20, lr=1e-2, weight_decay=1e-3, patience=2)
    calls = []
    results = fit_group([ModelConfig(8, 4, (16,))] * 3, inputs, X_val, tc, eval_epochs=[1],
                        on_eval=lambda e, r: calls.append((e, r(X_val))), progress=False)
    assert results[1].model is None and np.all(np.isnan(calls[0][1][1]))
    last_epoch, last = calls[-1]
    assert last_epoch == max(r.history.epochs for r in results)
    for m in (0, 2):  # stopped early: its reconstructions are those of the weights it returns (its best epoch's)
        assert results[m].history.stopped_early
        np.testing.assert_allclose(last[m], reconstruct(results[m].model, X_val), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"eval_epochs": [1, 2]}, ValueError, "eval_epochs is set but on_eval is None"),
    ({"eval_epochs": [2, 2], "on_eval": print}, ValueError, r"strictly increasing, got \[2, 2\]"),
    ({"eval_epochs": [1, 9], "on_eval": print}, ValueError, r"eval_epochs\[1\] must be <= 5, got 9"),
    ({"eval_epochs": [0], "on_eval": print}, ValueError, r"eval_epochs\[0\] must be >= 1"),
    ({"on_eval": "yes"}, TypeError, "on_eval must be callable"),
])
def test_fit_group_hook_rejects(rng, kwargs, error, match):
    with pytest.raises(error, match=match):
        fit_group([ModelConfig(8, 2)], rng.random((20, 8)), train_configs=TrainConfig(epochs=5), progress=False,
                  **kwargs)


# --- clean minimum -----------------------------------------------------------------------------------------------

def test_clean_minimum_per_run():
    curves = pd.DataFrame({
        "member": [0, 0, 0, 1, 1, 1], "width": [16] * 3 + [64] * 3, "epoch": [1, 5, 20] * 2,
        "mse_clean_val": [0.5, 0.2, 0.3, 0.4, np.nan, 0.1],
        "noise_memorization_train": [0.1, 0.3, 0.8, 0.1, 0.5, 0.9], "noise_memorization_val": [0.1, 0.2, 0.3] * 2,
    })
    best = clean_minimum(curves)
    assert best["member"].tolist() == [0, 1] and best["epoch"].tolist() == [5, 20]
    assert best["width"].tolist() == [16, 64]  # other columns come along from the minimum's row
    np.testing.assert_allclose(best["memorization_gap"], [0.1, 0.6])
    np.testing.assert_allclose(best["memorization_gap_final"], [0.5, 0.6])
    assert best["final_epoch"].tolist() == [20, 20]
    one = clean_minimum(curves[curves["member"] == 0].drop(columns="member"))
    assert len(one) == 1 and one["epoch"].item() == 5
    with pytest.raises(ValueError, match=r"curves is missing column\(s\) \['mse_clean_val'\]"):
        clean_minimum(curves.drop(columns="mse_clean_val"))


# --- double descent ----------------------------------------------------------------------------------------------

def test_double_descent_frame_and_linear_oracle(rng):
    X_tr, X_va, c_tr, c_va, *_ = _lowrank(rng, n=500, d=8)
    X_tr, X_te, c_tr, c_te = X_tr[:60], X_va[:50], c_tr[:60], c_va[:50]
    widths = [3, 8, 64]  # at least the bottleneck: narrower linear layers would lower the rank
    frame = double_descent(X_tr, X_te, widths, ModelConfig(8, 3, (1,), linear=True), seeds=(0, 1), clean_train=c_tr,
                           clean_test=c_te, train_config=TrainConfig(epochs=300, batch_size=60, lr=3e-2),
                           eval_epochs=[3, 10])
    ae, pca = frame[frame["model"] == "autoencoder"], frame[frame["model"] == "pca"]
    assert len(ae) == len(widths) * 2 * 3 * 2 and len(pca) == 2  # widths x seeds x epochs (3, 10, 300) x splits
    assert set(ae["epoch"]) == {3, 10, 300} and (frame["interpolation_threshold"] == 60 * 8).all()
    for w in widths:
        n_params = Autoencoder(ModelConfig(8, 3, (w,), linear=True)).n_parameters
        assert (ae.loc[ae["width"] == w, "n_params"] == n_params).all()
    np.testing.assert_allclose(frame["params_ratio"], frame["n_params"] / 480)
    # Eckart-Young: no rank-3 linear map reconstructs the training inputs better than PCA's projection
    pca_train = pca.loc[pca["split"] == "train", "mse"].item()
    assert (ae.loc[ae["split"] == "train", "mse"] >= pca_train * (1 - 1e-6)).all()
    final = ae[(ae["epoch"] == 300) & (ae["split"] == "train")]
    assert (final["mse"] < pca_train * 1.01).all()  # ... and trained linear networks get there at every width
    assert ae["mse_clean"].notna().all()


def test_double_descent_rejects(rng):
    X = rng.random((20, 4))
    with pytest.raises(ValueError, match="widths and seeds must each hold at least one value"):
        double_descent(X, X, [])
    with pytest.raises(TypeError, match="train_config must be a TrainConfig"):
        double_descent(X, X, [4], train_config={"epochs": 3})
    with pytest.raises(ValueError, match="X_test has 3 features, expected 4"):
        double_descent(X, X[:, :3], [4])
    with pytest.raises(TypeError, match="model must be a ModelConfig"):
        double_descent(X, X, [4], {"bottleneck": 2})
    with pytest.raises(ValueError, match="the 4 features of X_train through at least one hidden layer"):
        double_descent(X, X, [4], ModelConfig(5, 2))
    with pytest.raises(ValueError, match="at least one hidden layer"):
        double_descent(X, X, [4], ModelConfig(4, 2, hidden=()))


# --- plots -------------------------------------------------------------------------------------------------------

def test_plot_memorization_curves_draws_seen_unseen_and_the_minima():
    from analysis.report.plots_dynamics import plot_memorization_curves

    epochs = [1, 3, 10, 30]
    rows = [{"run": f"r{w}-{s}", "width": w, "epoch": e, "noise_memorization_train": 0.1 + e / 40 * w / 64,
             "noise_memorization_val": 0.1, "mse_clean_val": abs(e - 10) + w / 100}
            for w in (16, 64) for s in (0, 1) for e in epochs]
    curves = pd.DataFrame(rows)
    unmarked = plot_memorization_curves(curves)  # the plot marks what the study recorded, nothing else
    assert not [c for c in unmarked.collections if len(c.get_offsets()) == 4]
    unmarked.figure.clf()
    ax = plot_memorization_curves(curves, minima=clean_minimum(curves)[["run", "epoch"]])
    assert ax.get_xscale() == "log" and "noise memorization" in ax.get_ylabel()
    assert len(ax.lines) >= 4  # two widths x seen/unseen
    stars = [c for c in ax.collections if len(c.get_offsets()) == 4]  # one star per run, on each curve
    assert len(stars) == 2 and set(stars[0].get_offsets()[:, 0]) == {10}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "seen (train)" in labels and "lowest clean val error" in labels


def test_plot_double_descent_marks_the_threshold():
    from analysis.report.plots_dynamics import plot_double_descent

    rows = [{"model": "autoencoder", "width": w, "seed": 0, "epoch": 5, "n_params": 10 * w, "split": s,
             "mse": 1.0 / w if s == "train" else 0.5, "mse_clean": 0.4, "interpolation_threshold": 320}
            for w in (4, 16, 64) for s in ("train", "test")]
    rows += [{"model": "pca", "width": np.nan, "seed": np.nan, "epoch": np.nan, "n_params": 30, "split": s,
              "mse": 0.3, "mse_clean": 0.2, "interpolation_threshold": 320} for s in ("train", "test")]
    ax = plot_double_descent(pd.DataFrame(rows))
    vertical = [line for line in ax.lines if list(line.get_xdata()) == [320, 320]]
    assert len(vertical) == 1 and ax.get_xscale() == "log"
    assert any("interpolation threshold" in t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(ValueError, match="epoch=7 was not recorded"):
        plot_double_descent(pd.DataFrame(rows), epoch=7)


def test_the_study_draws_double_descent_on_request(tmp_path, monkeypatch):
    import analysis.study.finish
    from analysis import StudyConfig, run_study, write_report
    from autoenc import TrainConfig

    monkeypatch.setitem(analysis.study.finish.DOUBLE_DESCENT, "epochs", 20)
    monkeypatch.setitem(analysis.study.finish.DOUBLE_DESCENT, "widths", (4, 128))
    config = StudyConfig(bottlenecks=(4,), widths=(8,), seeds=(0,), memorization=False, audit=(), landscape=False,
                         latent="none", double_descent=True, train=TrainConfig(epochs=2, batch_size=128))
    run_study(config, tmp_path, n_jobs=1, progress=False, report=write_report)
    sweep = pd.read_csv(tmp_path / "double_descent.csv")
    assert set(sweep["width"].dropna()) == {4, 128} and (sweep["interpolation_threshold"] == 100 * 64).all()
    ratios = sweep.dropna(subset=["width"]).groupby("width")["params_ratio"].first()
    assert ratios[4] < 1 < ratios[128]  # the sweep crosses the threshold
    assert (tmp_path / "figures" / "double_descent.png").exists()


def test_double_descent_sweeps_channels_of_a_convolutional_autoencoder(rng):
    X = rng.random((30, 16)).astype(np.float32)
    template = ModelConfig(16, 2, (1,), kind="conv", input_shape=(1, 4, 4))
    frame = double_descent(X[:20], X[20:], [2, 6], template, train_config=TrainConfig(epochs=2), include_pca=False)
    expected = [Autoencoder(ModelConfig(16, 2, (w,), kind="conv", input_shape=(1, 4, 4))).n_parameters for w in (2, 6)]
    assert sorted(frame["n_params"].unique().tolist()) == expected  # the convolutional networks' own counts
    assert (frame["interpolation_threshold"] == 20 * 16).all() and np.isfinite(frame["mse"]).all()
