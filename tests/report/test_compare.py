import configparser
import os
import re
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report.compare import compare_studies
from synthetic_study import make_study_frames, write_study

DIGITS, PATCHES = "a" * 64, "b" * 64


def _study(folder, seed=0, *, dataset="digits", fingerprint=DIGITS):
    frames = make_study_frames(seed)
    frames["study"] = {**frames["study"], "dataset": dataset, "data_fingerprint": fingerprint}
    frames["study"]["config"] = {**frames["study"]["config"], "dataset": dataset, "seed": seed}
    return write_study(folder, frames)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    laptop, cluster = _study(root / "laptop", 0), _study(root / "cluster", 1)
    patches = _study(root / "patches", 2, dataset="patches", fingerprint=PATCHES)
    runs = pd.read_csv(laptop / "results.csv").drop_duplicates("run")
    pd.DataFrame({"run": runs["run"], "cka_pca": np.linspace(0.5, 0.9, len(runs)), "latent_auc": 0.6}).to_csv(
        laptop / "latent.csv", index=False)
    return {"laptop": laptop, "cluster": cluster, "patches": patches}


@pytest.fixture(scope="module")
def two_on_the_same_data(studies, tmp_path_factory):
    """laptop and cluster compared (the same data): the output folder and the report returned, read by the tests."""
    out = tmp_path_factory.mktemp("same") / "cmp"
    return out, compare_studies([studies["laptop"], studies["cluster"]], out)


@pytest.fixture(scope="module")
def three_on_two_data(studies, tmp_path_factory):
    """laptop, patches and cluster compared, in this order (patches on other data, between the two on digits)."""
    out = tmp_path_factory.mktemp("apart") / "cmp"
    return out, compare_studies([studies[n] for n in THREE], out)


THREE = ["laptop", "patches", "cluster"]


def _section(page, heading):
    return page.split(f"<h2>{heading}</h2>")[1].split("<h2>")[0]


def test_two_studies_on_the_same_data_overlay(two_on_the_same_data):
    out, report = two_on_the_same_data
    page = report.read_text()
    assert "All 2 studies ran on the same data" in page and "different data" not in page
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["capacity-A.png"]
    tidy = pd.read_csv(out / "compare.csv")
    assert set(tidy["study"]) == {"laptop", "cluster"} and set(tidy["data"]) == {"A"}
    assert {"mse", "mse_clean", "noise_memorization", "n_seeds"} <= set(tidy.columns)
    one = tidy[(tidy["study"] == "laptop") & (tidy["hidden"] == 16) & (tidy["bottleneck"] == 8)]
    assert sorted(one["split"]) == ["test", "train"] and (one["n_seeds"] == 2).all()


def test_one_figure_draws_every_study_on_the_same_data(studies):
    from analysis.report.compare import _curves, _load
    from analysis.report.plots_compare import plot_compared, study_palette

    frames = [_curves(_load(studies[n], n), "A") for n in ("laptop", "cluster")]
    curves = pd.concat(frames, ignore_index=True)
    palette = study_palette(["laptop", "cluster"])
    fig = plot_compared(curves, palette=palette, title="data A")
    # rows: error, noise memorization, and CKA to PCA (the laptop study has a latent.csv); a column per bottleneck
    assert fig.axes[0].get_title() == "k=2" and len(fig.axes) == 3 * 2
    cka = {line.get_gid() for line in fig.axes[4].get_lines()}
    assert cka == {"laptop-unseen (test)"}
    panel = fig.axes[0]
    gids = {line.get_gid() for line in panel.get_lines()}
    assert {"laptop-seen (train)", "laptop-unseen (test)", "cluster-seen (train)", "cluster-unseen (test)",
            "pca-laptop", "pca-cluster"} <= gids
    colours = {line.get_gid(): line.get_color() for line in panel.get_lines()}
    assert colours["laptop-seen (train)"] == colours["laptop-unseen (test)"] != colours["cluster-seen (train)"]
    assert panel.get_yscale() == "log" and panel.get_xscale() == "log"
    with pytest.raises(ValueError, match=r"palette has no colour for the studies \['cluster'\]"):
        plot_compared(curves, palette={"laptop": "red"})


def test_studies_on_different_data_are_drawn_apart_and_labelled(three_on_two_data):
    out, report = three_on_two_data
    page = report.read_text()
    assert "These studies ran on different data" in page
    assert f"data A: digits (72 x 64), data {DIGITS[:8]}" in page and f"data B: patches (72 x 64), data " \
        f"{PATCHES[:8]}" in page
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["capacity-A.png", "capacity-B.png"]
    tidy = pd.read_csv(out / "compare.csv")
    assert tidy.groupby("study")["data"].agg(set).to_dict() == {"laptop": {"A"}, "cluster": {"A"},
                                                                "patches": {"B"}}
    verdicts = _section(page, "Verdicts")
    assert "<b>patches</b> (data B)" in verdicts and "<b>cluster</b> (data A)" in verdicts


def test_the_selected_models_table_has_one_row_per_study(three_on_two_data):
    page = three_on_two_data[1].read_text()
    table = _section(page, "Selected models")
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)[1:]
    assert [re.findall(r"<td>(.*?)</td>", row)[0] for row in rows] == THREE  # in the order given
    assert all(re.findall(r"<td>(.*?)</td>", row)[2:5] == ["autoencoder", "8", "16"] for row in rows)


def test_latent_similarity_is_shown_where_latent_csv_is_and_never_required(two_on_the_same_data):
    out, report = two_on_the_same_data
    page = report.read_text()
    latent = _section(page, "Latent similarity")
    assert "<th>cka_pca</th>" in latent and "<th>latent_auc</th>" in latent
    assert "No latent.csv in cluster." in latent and latent.count("<td>laptop</td>") == 2  # selected, widest
    tidy = pd.read_csv(out / "compare.csv")
    assert tidy.loc[tidy["study"] == "laptop", "cka_pca"].notna().all()
    assert tidy.loc[tidy["study"] == "cluster", "cka_pca"].isna().all()


def test_names_tell_apart_folders_of_the_same_name(tmp_path):
    a, b = _study(tmp_path / "laptop" / "digits"), _study(tmp_path / "cluster" / "digits", 1)
    tidy_dir = tmp_path / "cmp"
    compare_studies([a, b], tidy_dir)
    assert set(pd.read_csv(tidy_dir / "compare.csv")["study"]) == {"laptop/digits", "cluster/digits"}


def test_bad_input_is_refused_before_any_work(studies, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="folders must name at least two study folders to compare, got 1"):
        compare_studies([studies["laptop"]], out)
    with pytest.raises(ValueError, match="folders must be a list of at least two study folders"):
        compare_studies(str(studies["laptop"]), out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"folders: .*empty is not a study folder \(no results.csv and study.json\)"):
        compare_studies([studies["laptop"], tmp_path / "empty"], out)
    with pytest.raises(ValueError, match="folders names the same study more than once"):
        compare_studies([studies["laptop"], studies["laptop"]], out)
    with pytest.raises(ValueError, match="out_dir .* is one of the study folders"):
        compare_studies([studies["laptop"], studies["cluster"]], studies["cluster"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out_dir .*file exists and is not a folder"):
        compare_studies([studies["laptop"], studies["cluster"]], tmp_path / "file")
    assert not out.exists()


def test_an_unwritable_out_dir_is_refused(studies, tmp_path, monkeypatch):
    from analysis.report import compare

    locked = tmp_path / "locked"
    locked.mkdir()
    # a read-only folder, as a user who is not root sees it (root writes anywhere)
    monkeypatch.setattr(compare.os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(ValueError, match=r"out_dir .*locked.cmp cannot be written \(.*locked is not a writable"):
        compare_studies([studies["laptop"], studies["cluster"]], locked / "cmp")
    assert list(locked.iterdir()) == []


def test_the_command_line_writes_the_report(studies, tmp_path, capsys):
    from autoenc_cli import compare

    out = tmp_path / "cmp"
    assert compare.main([str(studies["laptop"]), str(studies["patches"]), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out / 'report.html'}"
    assert (out / "report.html").is_file() and (out / "compare.csv").is_file()


@pytest.mark.parametrize("args, message", [
    (["{laptop}"], "folders must name at least two study folders to compare, got 1"),
    (["{laptop}", "{missing}"], "is not a study folder"),
    (["{laptop}", "{cluster}", "--out", "{file}"], "exists and is not a folder"),
])
def test_the_command_line_refuses_bad_input_in_one_line(studies, tmp_path, capsys, args, message):
    from autoenc_cli import compare

    (tmp_path / "file").write_text("x")
    paths = {**{k: str(v) for k, v in studies.items()}, "missing": str(tmp_path / "nope"),
             "file": str(tmp_path / "file")}
    assert compare.main([a.format(**paths) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_the_command_line_needs_folders(capsys):
    from autoenc_cli import compare

    with pytest.raises(SystemExit) as stop:
        compare.main([])
    assert stop.value.code == 2 and "the following arguments are required: DIR" in capsys.readouterr().err


def test_compare_is_exported_and_installed():
    import analysis
    from autoenc_cli import compare

    assert analysis.compare_studies is compare_studies and "compare_studies" in analysis.__all__
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    assert "autoenc-compare = autoenc_cli.compare:main" in cfg["options.entry_points"]["console_scripts"]
    namespace = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" / "compare.py"))
    assert namespace["main"] is compare.main


def test_two_real_studies_with_their_latent_csv_compare(tmp_path):
    """latent.csv as the study writes it (hidden widths read back as numbers, PCA's as empty) joins its runs."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tiny_study import study, tiny

    folders = [study(tmp_path / f"s{seed}", tiny(latent="pca", seed=seed)).path for seed in (0, 1)]
    page = compare_studies(folders, tmp_path / "out")
    text = page.read_text(encoding="utf-8")
    assert "Latent similarity" in text and "cka_pca" in text
    compared = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert compared.loc[compared["model"] == "autoencoder", "cka_pca"].between(0, 1).all()
