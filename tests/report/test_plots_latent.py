"""The latent measures' figures: what they drew, and their place and captions in the report."""
import numpy as np
import pandas as pd
import pytest
from synthetic_study import D, write_study

import analysis.report.html as report_module
from analysis.report import draw_figures
from analysis.report._report_text import caption
from analysis.report.plots_latent import (plot_code_dimension, plot_code_membership, plot_code_similarity,
                                          plot_decoded_paths)
from analysis.study.latent_table import LATENT_COLUMNS

LATENT_FIGURES = ["code_similarity", "code_membership", "code_dimension", "decoded_paths"]


def make_latent(frames, signal="clean"):
    """latent.csv for the synthetic study's successful runs: codes closer to PCA for wider models."""
    rng = np.random.default_rng(0)
    runs = frames["results"].query("status == 'ok' and split == 'test'").reset_index(drop=True)
    ae = (runs["model"] == "autoencoder").to_numpy()
    n = len(runs)
    auc = np.where(ae, 0.5 + runs["width"].fillna(0) / 400, 0.5) + rng.normal(0, 0.01, n)
    table = runs[["run", "model", "bottleneck", "hidden", "seed", "n_params", "membership_auc"]].assign(
        n_samples=20, cka_pca=np.where(ae, rng.uniform(0.6, 0.95, n), np.nan),
        cca_pca=np.where(ae, rng.uniform(0.7, 0.99, n), np.nan), cka_null=np.where(ae, 0.02, np.nan),
        cca_null=np.where(ae, runs["bottleneck"] / 19, np.nan), cka_seeds=np.where(ae, rng.uniform(0.5, 0.9, n), np.nan),
        cca_seeds=np.where(ae, rng.uniform(0.6, 0.95, n), np.nan), max_angle_pca=np.nan, latent_auc=auc,
        latent_auc_low=auc - 0.05, latent_auc_high=auc + 0.05,
        intrinsic_dim=runs["bottleneck"] * rng.uniform(0.5, 0.9, n), data_intrinsic_dim=5.5,
        data_intrinsic_dim_mle=5.1, data_signal=signal)
    return table[list(LATENT_COLUMNS)]


def make_paths(n_pairs=2, steps=5, d=D):
    rng = np.random.default_rng(1)
    return {f"{label}: run": rng.uniform(0, 1, (n_pairs, steps, d)) for label in ("pca", "selected", "largest")}


def test_similarity_draws_both_comparisons_the_null_band_and_the_ceiling(frames):
    ax = plot_code_similarity(make_latent(frames), measure="cca")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"to PCA's scores, same k", "across seeds"} <= set(labels)
    assert any(label.startswith("unrelated codes (null") for label in labels)
    null = [p for p in ax.patches if p.get_gid() == "null"]
    assert len(null) == 1 and null[0].get_extents().height > 0
    assert "canonical correlation" in ax.get_ylabel() and ax.get_xscale() == "log"
    assert any(line.get_ydata()[0] == 1.0 for line in ax.lines if line.get_gid() == "same")


def test_membership_draws_the_code_beside_the_reconstruction_with_intervals(frames):
    latent = make_latent(frames)
    ax = plot_code_membership(latent)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"distance to the nearest training code", "reconstruction error", "PCA's scores, same k"} <= set(labels)
    intervals = sum(len(c.get_segments()) for c in ax.collections if type(c).__name__ == "LineCollection")
    assert intervals == (latent["model"] == "autoencoder").sum()
    assert [c for c in ax.collections if c.get_gid() == "pca"][0].get_offsets().shape[0] == 2


@pytest.mark.parametrize("signal, words", [("clean", "clean signal"), ("inputs", "inputs")])
def test_dimension_marks_the_bottleneck_and_the_datas_own(frames, signal, words):
    ax = plot_code_dimension(make_latent(frames, signal))
    data = [line for line in ax.lines if line.get_gid() == "data"]
    assert len(data) == 1 and data[0].get_ydata()[0] == 5.5
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"the data ({words}): 5.5" in labels and "the bottleneck k" in labels
    assert caption("code_dimension", signal=signal).count(words) >= 1


def test_decoded_paths_grid_has_a_row_per_pair_and_model(rng):
    paths = make_paths()
    fig = plot_decoded_paths(paths, (8, 8), ends=rng.uniform(0, 1, (2, 2, D)))
    ax = fig.axes[0]
    assert ax.get_images()[0].get_array().shape == (2 * 3 * 9 - 1, (5 + 2) * 9 - 1)  # tiles and 1-pixel gaps
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["pair 1: pca: run", "pair 1: selected: run"]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0] == "start" and ticks[-1] == "end" and len(ticks) == 7
    tabular = plot_decoded_paths(paths, (1, D))
    assert len(tabular.axes) == 2 * 3


@pytest.mark.parametrize("call, match", [
    (lambda f: plot_code_similarity(make_latent(f), measure="rsa"), "measure"),
    (lambda f: plot_code_membership(make_latent(f).drop(columns="latent_auc")), "latent_auc"),
    (lambda f: plot_code_dimension(make_latent(f).assign(intrinsic_dim=np.nan)), "intrinsic_dim"),
    (lambda f: plot_decoded_paths({}, (8, 8)), "at least one"),
    (lambda f: plot_decoded_paths(make_paths(), (8, 9)), "image_shape"),
    (lambda f: plot_decoded_paths(make_paths(), (8, 8), ends=np.zeros((1, 2, D))), "ends"),
])
def test_bad_input_is_a_clear_error(frames, call, match):
    with pytest.raises(ValueError, match=match):
        call(frames)


def test_the_report_plans_and_captions_the_latent_figures(tmp_path, frames, monkeypatch):
    folder = write_study(tmp_path / "digits", frames)
    make_latent(frames).to_csv(folder / "latent.csv", index=False)
    np.savez(folder / "paths.npz", pairs=np.array([[100, 101], [102, 103]]), alpha=np.linspace(0, 1, 5),
             image_shape=np.array([8, 8]), clean=np.zeros((2, 2, D)), **make_paths())
    plan = report_module._figure_plan
    monkeypatch.setattr(report_module, "_figure_plan",
                        lambda f: [(n, make) for n, make in plan(f) if n in LATENT_FIGURES])
    figures = draw_figures(folder, dpi=30)
    assert list(figures) == LATENT_FIGURES
    captions = report_module._captions(folder, figures)
    assert "clean signal" in captions["code_dimension"] and "{signal}" not in captions["code_dimension"]
    assert all(captions[name] for name in LATENT_FIGURES)
    assert not pd.read_csv(folder / "latent.csv").empty
