"""Plots are checked by what they drew (lines, labels, scales, artists), on a synthetic study in the real schema."""
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis.plots import (  # noqa: E402
    plot_capacity, plot_error_distributions, plot_gap, plot_latent, plot_learning_curves, plot_membership,
    plot_memorization, plot_memorization_scores, plot_reconstructions,
)

D = 64
BOTTLENECKS = (2, 8)
WIDTHS = (16, 128)
SEEDS = (0, 1)
DIVERGED = "ae-k8-h128-s1"
DIVERGED_REASON = "loss became NaN at epoch 3 (lr too high?)"


def _ae_params(k, w, d=D):
    return (d * w + w + w * k + k) + (k * w + w + w * d + d)


def make_study_frames(seed=0):
    """Frames and arrays in the study folder's schema: 2 bottlenecks x 2 widths x 2 seeds + PCA, one diverged."""
    rng = np.random.default_rng(seed)
    n_train, n_val, n_test, epochs = 40, 12, 20, 15
    rows, samples, history = [], [], []

    def add(run, model, k, w, s, n_params, train_mse, test_mse, nm_train, nm_test, auc):
        hidden = "" if w is None else str(w)
        for split, n, mse, nm in (("train", n_train, train_mse, nm_train), ("val", n_val, test_mse, np.nan),
                                  ("test", n_test, test_mse, nm_test)):
            pair = split != "val"
            rows.append(dict(
                run=run, model=model, bottleneck=k, hidden=hidden, width=np.nan if w is None else w,
                depth=0 if w is None else 1, seed=np.nan if s is None else s, n_params=n_params, n_features=D,
                noise_std=0.2, split=split, n_samples=n, mse=mse, mse_clean=mse * 0.6, noise_memorization=nm,
                gap=test_mse - train_mse if pair else np.nan, ratio=test_mse / train_mse if pair else np.nan,
                membership_auc=auc if pair else np.nan, tpr_at_1pct_fpr=(auc - 0.5) / 2 if pair else np.nan,
                ks_statistic=(auc - 0.5) if pair else np.nan, ks_pvalue=0.01 if pair else np.nan,
                status="ok", reason="", epochs=epochs if model == "autoencoder" else 0, train_seconds=1.5))
            if split != "val":
                errors = rng.lognormal(np.log(mse), 0.4, n)
                samples.extend(dict(run=run, model=model, bottleneck=k, width=w, depth=rows[-1]["depth"], seed=s,
                                    split=split, sample=i + (0 if split == "train" else 100), label=i % 10,
                                    error=e, error_clean=e * 0.6) for i, e in enumerate(errors))

    for k in BOTTLENECKS:
        pca_mse = 0.04 - 0.002 * k
        add(f"pca-k{k}", "pca", k, None, None, k * D + D, pca_mse * 0.98, pca_mse, k / D, k / D + 0.005, 0.51)
        for w in WIDTHS:
            for s in SEEDS:
                run = f"ae-k{k}-h{w}-s{s}"
                if run == DIVERGED:
                    for split in ("train", "val", "test"):
                        rows.append(dict(run=run, model="autoencoder", bottleneck=k, hidden=str(w), width=w, depth=1,
                                         seed=s, n_params=_ae_params(k, w), n_features=D, noise_std=0.2, split=split,
                                         status="diverged", reason=DIVERGED_REASON, epochs=3, train_seconds=0.2))
                    continue
                memo = w / 160  # wider networks store more of their training noise
                train_mse = pca_mse * (1 - 0.6 * memo) + rng.normal(0, 5e-4)
                test_mse = pca_mse * (1 + 0.2 * memo) + rng.normal(0, 5e-4)
                add(run, "autoencoder", k, w, s, _ae_params(k, w), train_mse, test_mse,
                    k / D + memo * 0.7, k / D + 0.01, 0.5 + 0.35 * memo)
                t = np.arange(1, epochs + 1)
                history.extend(dict(run=run, bottleneck=k, width=w, depth=1, seed=s, epoch=e,
                                    train_loss=train_mse * (1 + 3 / e), val_loss=test_mse * (1 + 2.5 / e))
                               for e in t)
    results = pd.DataFrame(rows)
    n_img = 6
    clean = rng.uniform(0, 1, (n_img, D))
    noisy = clean + rng.normal(0, 0.2, clean.shape)
    recon = {"autoencoder": clean + rng.normal(0, 0.05, clean.shape), "pca": clean + rng.normal(0, 0.1, clean.shape)}
    emb = []
    for run, model in (("ae-k8-h128-s0", "autoencoder"), ("pca-k8", "pca")):
        for split, n in (("train", 60), ("test", 30)):
            labels = rng.integers(0, 10, n)
            xy = rng.normal(0, 0.3, (n, 2)) + np.c_[np.cos(labels), np.sin(labels)] * 3
            emb.append(pd.DataFrame(dict(run=run, model=model, split=split, sample=np.arange(n), label=labels,
                                         x=xy[:, 0], y=xy[:, 1])))
    memo = pd.concat([pd.DataFrame(dict(model=m, sample=np.arange(50), label=np.arange(50) % 10,
                                        error_seen=seen, error_unseen=seen + gap,
                                        score=gap))
                      for m, seen, gap in (("autoencoder", rng.uniform(0.01, 0.03, 50), rng.exponential(0.01, 50)),
                                           ("pca", rng.uniform(0.02, 0.04, 50), rng.normal(0.001, 0.001, 50)))])
    study = {"config": {"dataset": "digits", "noise_std": 0.2, "bottlenecks": list(BOTTLENECKS),
                        "widths": list(WIDTHS), "depths": [1], "seeds": list(SEEDS),
                        "train": {"epochs": epochs, "batch_size": 32, "lr": 0.003}},
             "versions": {"python": "3.12", "torch": "2.4", "autoenc": "0.1.0"},
             "n_features": D, "n_samples": n_train + n_val + n_test, "image_shape": [8, 8],
             "created": "2025-01-01T00:00:00"}
    selection = {"run": "ae-k8-h16-s0", "n_params": _ae_params(8, 16), "bottleneck": 8, "hidden": "16",
                 "test_mse": 0.0245, "tolerance": 0.05,
                 "sentence": "The simplest adequate model is <ae-k8-h16> with 2,392 parameters & unseen MSE 0.0245."}
    return dict(results=results, samples=pd.DataFrame(samples), history=pd.DataFrame(history),
                embeddings=pd.concat(emb, ignore_index=True), memorization=memo, study=study, selection=selection,
                reconstructions=dict(clean=clean, noisy=noisy, image_shape=np.array([8, 8]),
                                     titles=np.array([f"sample {i}" for i in range(n_img)]), **recon))


def write_study(folder, frames):
    """Write ``make_study_frames`` output into ``folder`` as the study runner does."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.json").write_text(json.dumps(frames["study"]))
    (folder / "selection.json").write_text(json.dumps(frames["selection"]))
    for name in ("results", "samples", "history", "embeddings", "memorization"):
        frames[name].to_csv(folder / f"{name}.csv", index=False)
    np.savez(folder / "reconstructions.npz", **frames["reconstructions"])
    return folder


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def frames():
    return make_study_frames()


@pytest.fixture
def ax():
    return plt.subplots()[1]


def _legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def _gid_lines(ax, prefix):
    return [line for line in ax.lines if (line.get_gid() or "").startswith(prefix)]


def test_capacity_draws_seen_unseen_lines_per_bottleneck_and_pca_references(frames, ax):
    out = plot_capacity(frames["results"], ax=ax)
    assert out is ax
    assert ax.get_xscale() == "log"
    assert "parameters" in ax.get_xlabel() and "MSE" in ax.get_ylabel()
    data_lines = [line for line in ax.lines if line.get_gid() is None and len(line.get_xdata()) == len(WIDTHS)]
    assert len(data_lines) == len(BOTTLENECKS) * 2  # one per bottleneck x split
    pca = _gid_lines(ax, "pca-k")
    assert len(pca) == len(BOTTLENECKS)
    res = frames["results"]
    expected = res[(res.model == "pca") & (res.split == "test") & (res.bottleneck == 8)].mse.iloc[0]
    assert _gid_lines(ax, "pca-k8")[0].get_ydata()[0] == pytest.approx(expected)
    texts = _legend_texts(ax)
    assert {"k=2", "k=8", "seen (train)", "unseen (test)", "PCA, same k (unseen)"} <= set(texts)
    assert len(ax.collections) >= 1  # confidence bands over seeds


def test_capacity_other_metric_and_gca_fallback(frames):
    plt.figure()
    ax = plot_capacity(frames["results"], metric="mse_clean")
    assert ax is plt.gca()
    assert "clean" in ax.get_ylabel()


def test_capacity_ignores_diverged_rows(frames, ax):
    res = frames["results"].copy()
    res.loc[res.run == DIVERGED, ["mse"]] = 1e6  # would dominate the axis if drawn
    plot_capacity(res, ax=ax)
    assert ax.get_ylim()[1] < 1


def test_gap_line_has_zero_line_and_pca(frames, ax):
    plot_gap(frames["results"], ax=ax)
    assert ax.get_xscale() == "log"
    assert "gap" in ax.get_ylabel() and "MSE" in ax.get_ylabel()
    assert len(_gid_lines(ax, "pca-k")) == len(BOTTLENECKS)
    assert any(list(line.get_ydata()) == [0, 0] for line in ax.lines)
    assert {"k=2", "k=8"} <= set(_legend_texts(ax))


def test_gap_heatmap_has_one_annotated_cell_per_bottleneck_and_width(frames, ax):
    plot_gap(frames["results"], kind="heatmap", ax=ax)
    cells = ax.collections[0].get_array()
    assert cells.size == len(BOTTLENECKS) * len(WIDTHS)
    annotations = [t.get_text() for t in ax.texts]
    assert len(annotations) == len(BOTTLENECKS) * len(WIDTHS)
    assert "width" in ax.get_xlabel() and "bottleneck" in ax.get_ylabel()
    res = frames["results"]
    one = res[(res.run == "ae-k2-h16-s0")].set_index("split").mse
    other = res[(res.run == "ae-k2-h16-s1")].set_index("split").mse
    expected = ((one.test - one.train) + (other.test - other.train)) / 2
    assert float(cells.reshape(2, 2)[0, 0]) == pytest.approx(expected)


def test_gap_rejects_unknown_kind(frames, ax):
    with pytest.raises(ValueError, match="kind"):
        plot_gap(frames["results"], kind="bars", ax=ax)


def test_memorization_has_k_over_d_reference_and_pca_points(frames, ax):
    plot_memorization(frames["results"], ax=ax)
    assert ax.get_xscale() == "log"
    assert "noise memorization" in ax.get_ylabel()
    for k in BOTTLENECKS:
        (ref,) = _gid_lines(ax, f"k/d-k{k}")
        assert ref.get_ydata()[0] == pytest.approx(k / D)
    pca = [c for c in ax.collections if c.get_gid() == "pca"]
    assert len(pca) == 1 and len(pca[0].get_offsets()) == 2 * len(BOTTLENECKS)  # train and test per bottleneck
    assert any("k/d" in t for t in _legend_texts(ax))


def test_memorization_without_noise_says_so(frames, ax):
    res = frames["results"].assign(noise_memorization=np.nan)
    with pytest.raises(ValueError, match="noise"):
        plot_memorization(res, ax=ax)


def test_membership_has_chance_line(frames, ax):
    plot_membership(frames["results"], ax=ax)
    (chance,) = _gid_lines(ax, "chance")
    assert chance.get_ydata()[0] == 0.5
    assert ax.get_xscale() == "log" and "AUC" in ax.get_ylabel()
    assert "chance (0.5): no leakage" in _legend_texts(ax)


def test_learning_curves_default_runs_log_y(frames, ax):
    plot_learning_curves(frames["history"], ax=ax)
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    drawn = [line for line in ax.lines if len(line.get_xdata()) > 1]
    # seven runs > six: one per width at the largest bottleneck, seed 0, each with train and val curves
    assert len(drawn) == 2 * len(WIDTHS)
    texts = _legend_texts(ax)
    assert {"ae-k8-h16-s0", "ae-k8-h128-s0", "train (seen)", "validation (unseen)"} <= set(texts)


def test_learning_curves_selected_runs_and_unknown_run(frames, ax):
    plot_learning_curves(frames["history"], runs=["ae-k2-h16-s1"], ax=ax)
    assert len([line for line in ax.lines if len(line.get_xdata()) > 1]) == 2
    with pytest.raises(ValueError, match="nope"):
        plot_learning_curves(frames["history"], runs=["nope"], ax=ax)


def test_error_distributions_default_run_and_pca_panel(frames):
    fig = plot_error_distributions(frames["samples"])
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_xscale() == "log"
    assert "error" in axes[0].get_xlabel()
    assert "k=8" in axes[0].get_title() or "k=2" in axes[0].get_title()
    assert "PCA" in axes[1].get_title()
    assert len(axes[0].get_legend().get_texts()) == 2


def test_error_distributions_single_axes(frames, ax):
    fig = plot_error_distributions(frames["samples"], run="ae-k2-h16-s0", ax=ax)
    assert fig is ax.figure and "ae-k2-h16-s0" in ax.get_title()
    with pytest.raises(ValueError, match="not in samples"):
        plot_error_distributions(frames["samples"], run="missing", ax=ax)


def test_reconstructions_grid(frames):
    r = frames["reconstructions"]
    models = {"autoencoder": r["autoencoder"], "pca": r["pca"]}
    fig = plot_reconstructions(r["clean"], r["noisy"], models, (8, 8), n=3, titles=r["titles"])
    assert len(fig.axes) == 4 * 3
    assert [fig.axes[i * 3].get_ylabel() for i in range(4)] == ["clean", "noisy input", "autoencoder", "pca"]
    assert fig.axes[0].get_images()[0].get_array().shape == (8, 8)
    fig = plot_reconstructions(r["clean"], None, models, (8, 8))  # n=8 capped at the 6 samples given
    assert len(fig.axes) == 3 * 6


def test_reconstructions_rejects_wrong_image_shape(frames):
    r = frames["reconstructions"]
    with pytest.raises(ValueError, match="image_shape"):
        plot_reconstructions(r["clean"], r["noisy"], {}, (7, 7))
    with pytest.raises(ValueError, match="pca"):
        plot_reconstructions(r["clean"], r["noisy"], {"pca": r["pca"][:, :10]}, (8, 8))


def test_latent_marks_seen_and_unseen(frames, ax):
    plot_latent(frames["embeddings"], ax=ax)
    assert "ae-k8-h128-s0" in ax.get_title()
    texts = _legend_texts(ax)
    assert {"seen (train)", "unseen (test)"} <= set(texts)
    assert {str(i) for i in range(10)} <= set(texts)
    n = len(frames["embeddings"].query("run == 'ae-k8-h128-s0'"))
    assert sum(len(c.get_offsets()) for c in ax.collections) == n
    assert "embedding" in ax.get_xlabel()


def test_latent_selects_run(frames, ax):
    plot_latent(frames["embeddings"], run="pca-k8", ax=ax)
    assert "pca-k8" in ax.get_title()


def test_memorization_scores(frames, ax):
    plot_memorization_scores(frames["memorization"], ax=ax)
    assert "memorization score" in ax.get_xlabel()
    assert {"autoencoder", "pca"} <= set(_legend_texts(ax))


@pytest.mark.parametrize("func, frame, column", [
    (plot_capacity, "results", "n_params"),
    (plot_gap, "results", "mse"),
    (plot_memorization, "results", "n_features"),
    (plot_membership, "results", "membership_auc"),
    (plot_learning_curves, "history", "val_loss"),
    (plot_error_distributions, "samples", "error"),
    (plot_latent, "embedding", "split"),
    (plot_memorization_scores, "memorization", "score"),
])
def test_missing_columns_are_named(frames, func, frame, column):
    data = frames["embeddings" if frame == "embedding" else frame]
    with pytest.raises(ValueError, match=f"^{frame} is missing column.*'{column}'"):
        func(data.drop(columns=column))


def test_gap_heatmap_needs_width(frames):
    with pytest.raises(ValueError, match="'width'"):
        plot_gap(frames["results"].drop(columns="width"), kind="heatmap")
