import html
"""The report is checked from the files it writes: figures, inlined images, tables, failed runs, escaping."""
import json
import re

import pandas as pd
import pytest
from synthetic_study import DIVERGED, DIVERGED_REASON, write_study

import analysis.report as report_module
from analysis.report import draw_figures, summary_table, write_report
from analysis.verdict import answer

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
