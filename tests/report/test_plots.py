"""Plots are checked by what they drew (lines, labels, scales, artists), on a synthetic study in the real schema."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from synthetic_study import BOTTLENECKS, D, DIVERGED, WIDTHS

from analysis.report.plots import plot_capacity, plot_gap, plot_membership, plot_memorization
from analysis.report.plots_runs import (plot_error_distributions, plot_latent, plot_learning_curves,
                                        plot_memorization_scores, plot_reconstructions)

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
    plot_memorization(frames["results"].drop(columns="nm_reference", errors="ignore"), ax=ax)
    assert ax.get_xscale() == "log"
    assert "noise memorization" in ax.get_ylabel()
    for k in BOTTLENECKS:
        (ref,) = _gid_lines(ax, f"reference-k{k}")
        assert ref.get_ydata()[0] == pytest.approx(k / D)
    for split in ("train", "test"):  # seen and unseen PCA points are told apart
        (pca,) = [c for c in ax.collections if c.get_gid() == f"pca-{split}"]
        assert len(pca.get_offsets()) == len(BOTTLENECKS)
    assert any("k/d" in t for t in _legend_texts(ax))


def test_memorization_reference_line_is_nm_reference_when_known(frames, ax):
    results = frames["results"].assign(nm_reference=lambda r: 1.5 * r["bottleneck"] / D)
    plot_memorization(results, ax=ax)
    for k in BOTTLENECKS:
        (ref,) = _gid_lines(ax, f"reference-k{k}")
        assert ref.get_ydata()[0] == pytest.approx(1.5 * k / D)
    assert any("nm_reference" in t for t in _legend_texts(ax))


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
    assert {"ae-k8-h16-s0", "ae-k8-h128-s0", "seen (train)", "unseen (validation)"} <= set(texts)


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
    (ax,) = fig.axes  # one mosaic: rows clean, noisy, one per model; a column per sample, 2 blank pixels apart
    assert [t.get_text() for t in ax.get_yticklabels()] == ["clean", "noisy input", "autoencoder", "pca"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(t) for t in r["titles"][:3]]
    mosaic = ax.get_images()[0].get_array()
    assert mosaic.shape == (4 * 8 + 3 * 2, 3 * 8 + 2 * 2)
    assert np.allclose(mosaic[10:18, 20:28], np.reshape(r["noisy"][2], (8, 8)))  # row 1, column 2
    assert np.allclose(mosaic[30:38, 0:8], np.reshape(r["pca"][0], (8, 8)))
    assert mosaic.mask[8:10].all() and mosaic.mask[:, 8:10].all()  # the gaps are blank
    assert len(next(c for c in ax.collections if c.get_gid() == "frames").get_paths()) == 4 * 3
    fig = plot_reconstructions(r["clean"], None, models, (8, 8))  # n=8 capped at the 6 samples given
    assert fig.axes[0].get_images()[0].get_array().shape == (3 * 8 + 2 * 2, 6 * 8 + 5 * 2)


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


def test_tabular_reconstructions_are_heatmap_rows(rng):
    clean = rng.random((8, 31))
    fig = plot_reconstructions(clean, clean + 0.1, {"ae": clean, "pca": clean * 0.9}, (1, 31))
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4  # clean, noisy, two models: one heatmap each, samples as rows
    assert all(ax.images[0].get_array().shape == (8, 31) for ax in panels)
