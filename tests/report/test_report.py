import html
"""The report is checked from the files it writes: figures, inlined images, tables, failed runs, escaping."""
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from synthetic_study import DIVERGED, DIVERGED_REASON, write_study

import analysis.report.html as report_module
from analysis.report import draw_figures, write_report
from analysis.study import summary_table
from analysis.report.verdict import answer

DPI = 40  # small PNGs keep the tests fast; the content is the same
ALL_FIGURES = {"capacity", "capacity_clean", "gap", "gap_heatmap", "memorization", "membership", "learning_curves",
               "error_distributions", "reconstructions", "latent_ae-k8-h128-s0", "latent_pca-k8",
               "memorization_scores"}
IMG = '<img src="data:image/png;base64,'


@pytest.fixture
def only_figures(monkeypatch):
    """Draw just the named figures (drawing is what makes these tests slow; the full set is drawn once)."""
    def restrict(*names):
        plan = report_module._figure_plan
        monkeypatch.setattr(report_module, "_figure_plan",
                            lambda folder: [(n, make) for n, make in plan(folder) if n in names])
    return restrict


@pytest.fixture(scope="module")
def study(tmp_path_factory, frames):
    folder = write_study(tmp_path_factory.mktemp("study") / "digits", frames)
    report = write_report(folder, dpi=DPI)
    return folder, report


def test_report_inlines_every_figure(study):
    folder, report = study
    assert report == folder / "report.html"
    page = report.read_text(encoding="utf-8")
    assert page.count(IMG) == len(ALL_FIGURES)
    assert {p.stem for p in (folder / "figures").glob("*.png")} == ALL_FIGURES
    for png in (folder / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_is_self_contained(study):
    page = study[1].read_text(encoding="utf-8")
    for external in ('src="http', "src='http", 'href="http', "<script", "<link"):
        assert external not in page


def test_report_lists_failed_run_and_escapes_the_sentence(study, frames):
    page = study[1].read_text(encoding="utf-8")
    failed = page.split("<h2>Failed runs</h2>")[1]
    assert DIVERGED in failed and DIVERGED_REASON in failed
    assert "&lt;ae-k8-h16&gt;" in page and "&amp; unseen MSE 0.0245" in page
    assert "<ae-k8-h16>" not in page
    assert "How to read this" in page and "k/d" in page and "0.5" in page
    assert '"dataset": "digits"' in page.replace("&quot;", '"')
    for package, version in frames["study"]["versions"].items():
        assert f"<td>{package}</td><td>{version}</td>" in page


def test_report_key_numbers_table(study, frames):
    page = study[1].read_text(encoding="utf-8")
    table = page.split("<h2>Key numbers</h2>")[1].split("</table>")[0]
    # 2 bottlenecks x (PCA + 2 widths) rows plus the heading row
    assert table.count("<tr") == 1 + 2 * 3
    assert 'class="selected"' in table  # the selected architecture k=8, hidden 16


def test_summary_md(study, frames):
    folder = study[0]
    text = (folder / "summary.md").read_text(encoding="utf-8")
    assert frames["selection"]["sentence"] in text
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| model | k | hidden | parameters |")
    assert len(lines) == 1 + 6
    assert f"`{DIVERGED}`: {DIVERGED_REASON}" in text
    assert "(figures/capacity.png)" in text


def test_summary_table_values(frames):
    table = summary_table(frames["results"])
    assert list(table["model"][:3]) == ["pca", "autoencoder", "autoencoder"]
    assert list(table["bottleneck"]) == [2, 2, 2, 8, 8, 8]
    row = table[(table.bottleneck == 8) & (table.hidden == "128")].iloc[0]
    assert row.n_seeds == 1  # the other seed diverged
    res = frames["results"]
    expected = res[(res.run == "ae-k8-h128-s0") & (res.split == "test")].mse.iloc[0]
    assert row.test_mse == pytest.approx(expected)
    assert row.nm_seen > row.nm_unseen
    assert row.nm_reference == pytest.approx(8 / 64)  # no nm_reference column: k/d
    assert row.test_mse_ci_low <= row.test_mse <= row.test_mse_ci_high or row.n_seeds == 1


def test_rerun_overwrites_cleanly(tmp_path, frames, only_figures):
    only_figures("capacity", "learning_curves", "latent_pca-k8")
    folder = write_study(tmp_path / "s", frames)
    write_report(folder, dpi=DPI)
    first = (folder / "figures" / "capacity.png").stat().st_mtime_ns
    selection = dict(frames["selection"], sentence="Second sentence.")
    (folder / "selection.json").write_text(json.dumps(selection))
    (folder / "embeddings.csv").unlink()
    page = write_report(folder, dpi=DPI).read_text(encoding="utf-8")
    assert "Second sentence." in page and frames["selection"]["sentence"] not in page
    assert page.count(IMG) == 2  # the latent figure's input is gone, so it is no longer in the report
    assert (folder / "figures" / "capacity.png").stat().st_mtime_ns >= first
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_minimal_folder_plans_what_it_can(tmp_path, frames, only_figures):
    folder = tmp_path / "minimal"
    folder.mkdir()
    results = frames["results"]
    results[results.status == "ok"].to_csv(folder / "results.csv", index=False)
    names = [name for name, _ in report_module._figure_plan(folder)]
    assert names == ["capacity", "capacity_clean", "gap", "gap_heatmap", "memorization", "membership"]
    only_figures("gap_heatmap")
    assert set(draw_figures(folder, dpi=DPI)) == {"gap_heatmap"}
    page = write_report(folder, dpi=DPI).read_text(encoding="utf-8")
    assert "<h2>Failed runs</h2>\n<p>none</p>" in page
    assert "<h2>The evidence</h2>" in page and "No model was selected" in page


def test_report_opens_with_the_answer_then_its_figure_evidence_and_glossary(tmp_path, frames, only_figures):
    only_figures("capacity", "memorization")
    folder = write_study(tmp_path / "v", frames)
    page = write_report(folder, dpi=DPI).read_text(encoding="utf-8")
    sentence = answer(summary_table(frames["results"]), frames["selection"])
    order = [page.index("<h1>"), page.index(f'<p class="sentence">{html.escape(sentence)}</p>'),
             page.index('<figure id="fig-memorization">'), page.index("<h2>The evidence</h2>"),
             page.index("<h2>How to read this</h2>"), page.index("<h2>Key numbers</h2>"), page.index("<table>"),
             page.index("<h2>Figures</h2>"), page.index('<figure id="fig-capacity">')]
    assert order == sorted(order)  # the answer, the figure that shows it, the evidence, the words, then tables
    assert page.count('<figure id="fig-memorization">') == 1
    glossary = page.split('<dl class="glossary">')[1].split("</dl>")[0]
    for term in ("seen / unseen", "noise memorization", "PCA keeps", "membership AUC", "TPR at 1% FPR", "LiRA",
                 "RMIA", "reference models", "split-half agreement", "run id", "loss threshold", "Spearman"):
        assert f"<dt>{html.escape(term)}</dt>" in glossary
    assert html.escape(frames["selection"]["sentence"]) in page  # escaped: the sentence holds < > &
    for field in ("best_error", "tolerance", "metric"):
        assert f"<td>{field}</td>" not in page
    assert "[95% CI]" in page and '<div class="scroll">' in page


def test_failed_reason_is_escaped(tmp_path, frames, only_figures):
    only_figures()
    folder = tmp_path / "escape"
    folder.mkdir()
    results = frames["results"].copy()
    results.loc[results.run == DIVERGED, "reason"] = "<script>alert(1)</script>"
    results.to_csv(folder / "results.csv", index=False)
    (folder / "selection.json").write_text(json.dumps(frames["selection"]))
    page = write_report(folder, dpi=DPI).read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.csv"):
        write_report(tmp_path)


def test_all_diverged_still_writes_a_report(tmp_path, frames):
    folder = tmp_path / "diverged"
    folder.mkdir()
    results = frames["results"].copy()
    ae = results.model == "autoencoder"
    results.loc[ae, "status"] = "diverged"
    results.loc[ae, "reason"] = "loss became NaN"
    results.loc[ae, ["mse", "mse_clean", "noise_memorization", "membership_auc"]] = float("nan")
    results.to_csv(folder / "results.csv", index=False)
    with pytest.warns(RuntimeWarning, match="skipped"):
        page = write_report(folder, dpi=DPI).read_text(encoding="utf-8")
    assert re.search(r"ae-k2-h16-s0</td>", page)
    assert isinstance(summary_table(results), pd.DataFrame)


# --- one visual grammar: legends and captions agree, nothing overlaps ----------------------------------------------

_LINE_WORDS = {"--": "dashed", "-": "solid"}
_MARKER_WORDS = {"o": "circles", "X": "crosses"}
_COLOR_WORDS = {"#1f77b4": "blue", "#ff7f0e": "orange"}  # matplotlib's tab:blue and tab:orange
SPLITS = ("seen (train)", "unseen (test)", "unseen (validation)")


@pytest.fixture(scope="module")
def full_study(tmp_path_factory, frames):
    """A study folder with every optional file, and each figure drawn from it with its caption."""
    from synthetic_study import write_extras

    folder = write_extras(write_study(tmp_path_factory.mktemp("full") / "digits", frames))
    captions = report_module._captions(folder, {name: None for name, _ in report_module._figure_plan(folder)})
    return folder, report_module._figure_plan(folder), captions


def _drawn_words(handle):
    """What a legend handle shows, in words, read from the artist: colour (of a split), line style, marker."""
    from matplotlib.colors import to_hex

    color = _COLOR_WORDS.get(to_hex(handle.get_color()))
    words = [color, _LINE_WORDS.get(handle.get_linestyle()), _MARKER_WORDS.get(handle.get_marker())]
    return ", ".join(w for w in words if w)


def test_every_figure_s_caption_describes_its_legend_s_seen_and_unseen(full_study):
    from matplotlib.colors import to_hex

    folder, plan, captions = full_study
    looks = {}
    assert {"memorization_curves", "landscape", "attractors", "double_descent", "audit_ae-k8-h128-s0",
            "memorized_samples", "latent_ae-k8-h128-s0"} <= {name for name, _ in plan}
    for name, make in plan:
        fig = make()
        for ax in fig.axes:
            legend = ax.get_legend()
            for handle, text in zip(legend.legend_handles if legend else [], legend.get_texts() if legend else []):
                label = text.get_text().removeprefix("PCA, same k, ")
                if label not in SPLITS:  # a line (or patch) of something else never wears a split's colour
                    line = getattr(handle, "get_linestyle", lambda: "None")() not in ("None", "")
                    color = handle.get_edgecolor() if hasattr(handle, "get_edgecolor") else handle.get_color()
                    assert not (line and to_hex(color) in _COLOR_WORDS), (name, label)
                    continue
                words = _drawn_words(handle)
                assert f"{label}: {words}" in captions[name], (name, label, words, captions[name])
                style = (handle.get_linestyle(), handle.get_marker())
                looks.setdefault(label.split()[0], set()).add(style)
        for split, (line, marker) in (("seen", ("--", "o")), ("unseen", ("-", "X"))):  # the caption never lies
            for other in {"dashed", "solid"} - {_LINE_WORDS[line]}:
                assert not re.search(rf"(?<![a-z]){split} \([a-z]+\): [^;.]*\b{other}\b", captions[name]), (name, other)
    # one look per split across all figures: a line style (or none, for scatter) and a marker (or none)
    assert {line for line, _ in looks["seen"]} - {"None"} == {"--"}
    assert {line for line, _ in looks["unseen"]} - {"None"} == {"-"}
    assert {m for _, m in looks["seen"]} - {"None", ""} == {"o"}
    assert {m for _, m in looks["unseen"]} - {"None", ""} == {"X"}


def test_memorization_curves_draw_seen_dashed_as_the_caption_says(full_study):
    _, plan, captions = full_study
    fig = dict(plan)["memorization_curves"]()
    legend = fig.axes[0].get_legend()
    drawn = {t.get_text(): h.get_linestyle() for h, t in zip(legend.legend_handles, legend.get_texts())}
    assert drawn["seen (train)"] == "--" and drawn["unseen (validation)"] == "-"
    assert "seen (train): dashed" in captions["memorization_curves"]
    assert "unseen (validation): solid" in captions["memorization_curves"]


def _tiles(ax, renderer):
    """The display boxes of a mosaic's images (:func:`analysis.report._plotstyle.image_grid`): its frames'."""
    frames = next(c for c in ax.collections if c.get_gid() == "frames")
    return [path.get_extents(frames.get_transform()) for path in frames.get_paths()]


def test_memorized_samples_titles_stay_clear_of_the_images_above(full_study):
    _, plan, _ = full_study
    fig = dict(plan)["memorized_samples"]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    tiles, titles = _tiles(ax, renderer), ax.texts
    assert len(titles) == len(tiles) == 16 and all(t.get_text().startswith("#") for t in titles)
    for title in titles:
        box = title.get_window_extent(renderer)
        for tile in tiles:
            assert not box.overlaps(tile), title.get_text()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["most memorized", "least memorized"]


def test_audit_axes_fit_curves_near_the_top_and_the_title_names_the_model(full_study):
    _, plan, _ = full_study
    fig = dict(plan)["audit_ae-k8-h128-s0"]()
    ax = fig.axes[0]
    fig.canvas.draw()
    curves = [line for line in ax.lines if (line.get_gid() or "").startswith("roc:")]
    assert len(curves) == 6
    to_axes = ax.transData + ax.transAxes.inverted()  # data -> 0..1 of the axes' box
    heights = np.concatenate([to_axes.transform(line.get_xydata())[:, 1] for line in curves])
    assert heights.max() < 0.97 and heights.max() - heights.min() > 0.25  # below the border, spread over the axis
    title = ax.get_title()
    assert "k=8" in title and "2 seeds pooled" in title and "8 reference models" in title
    assert "ae-k8-h128-s1" not in title


def test_latent_map_names_its_method_and_its_scores(full_study):
    folder, plan, captions = full_study
    fig = dict(plan)["latent_ae-k8-h128-s0"]()
    title = fig.axes[0].get_title()
    assert "UMAP" in title and "trustworthiness 0.981" in title and "kNN accuracy 93.8%" in title
    text = captions["latent_ae-k8-h128-s0"]
    assert "UMAP" in text and "trustworthiness 0.981" in text and "kNN accuracy 93.8%" in text
    assert "seen (train): circles" in text and "unseen (test): crosses" in text
    assert "PCA" in captions["latent_pca-k8"] or "UMAP" in captions["latent_pca-k8"]


def test_a_grow_study_with_mixed_hidden_widths_reads_without_dtype_warnings(tmp_path, frames, only_figures):
    """A grow search writes widths "16" and "16-16" into one column; pandas guesses per chunk and warns."""
    only_figures("capacity")
    folder = write_study(tmp_path / "grow", frames)
    rows = 262_144 + 1_000  # past pandas' first low-memory chunk, so the two halves are typed apart
    text = "run,hidden,epoch,train_loss,val_loss\n" + "ae-k2-h16-s0,16,1,0.5,0.5\n" * (rows - 1_000)
    (folder / "history.csv").write_text(text + "ae-k2-h16-16-s0,16-16,1,0.5,0.5\n" * 1_000)
    with pytest.warns(pd.errors.DtypeWarning):  # the symptom, read the plain way
        pd.read_csv(folder / "history.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.DtypeWarning)
        write_report(folder, dpi=DPI)


def test_run_study_from_analysis_writes_the_report_unless_told_not_to(tmp_path, monkeypatch):
    """``analysis.run_study`` is the study and its report, as the command line runs it; the study layer alone
    never draws."""
    import analysis
    import analysis.report.html as html
    from analysis.study import run_study as study_only
    from autoenc import TrainConfig

    drawn = []
    monkeypatch.setattr(html, "write_report", lambda folder: drawn.append(folder))
    config = analysis.StudyConfig(bottlenecks=(2,), widths=(4,), seeds=(0,), memorization=False, audit=(),
                                  landscape=False, latent="none", train=TrainConfig(epochs=1, batch_size=256))
    analysis.run_study(config, tmp_path / "a", n_jobs=1, progress=False)
    assert drawn == [tmp_path / "a"]
    analysis.run_study(config, tmp_path / "b", n_jobs=1, progress=False, report=False)
    study_only(config, tmp_path / "c", n_jobs=1, progress=False)
    assert drawn == [tmp_path / "a"]
    with pytest.raises(TypeError, match="report must be a callable"):
        study_only(config, tmp_path / "d", n_jobs=1, progress=False, report=True)
