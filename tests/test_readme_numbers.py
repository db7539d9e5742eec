"""The README shows what the code computes: its Python example's output, and the default study's verdict and table.

``docs/readme_numbers.py`` writes the README's generated regions; these tests rerun what feeds them and compare.
Numbers are compared as numbers, not strings: float32 arithmetic on another CPU (other SIMD kernels, another BLAS)
moved them by up to about 1e-5 relative when measured, so a printed number may differ from a fresh run's by
``RTOL`` (1e-4, a tenfold margin) plus what its printing rounded away. Wording, identifiers and counts stay exact.
That holds among vectorized kernels (AVX2 and AVX-512 gave the same numbers here); torch's scalar kernels
(``ATEN_CPU_CAPABILITY=default``) round differently inside every training step, and 60-100 epochs carry that into
other models (up to 6% apart per run), so the README's numbers are not expected to hold there. Nor with MKL's AVX2
kernels in place of its AVX-512 ones (``AUTOENC_MKL_AVX512=0`` on an AMD CPU, or no compiled ``autoenc._mkl_cpu``):
the width-1024 runs and the Python example move by up to about 1%.

The default study takes a minute or more, so its test is marked ``slow`` (left out of the default run):

    python -m pytest -m slow tests/test_readme_numbers.py                       # runs the default study
    AUTOENC_README_STUDY=runs/digits python -m pytest -m slow tests/test_readme_numbers.py   # reuses one
"""
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from analysis import StudyConfig
from autoenc.io import float_kernels

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "docs" / "readme_numbers.py")
readme_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_numbers)
RTOL = readme_numbers.RTOL
KERNELS = float_kernels()  # the README's numbers come from MKL's AVX-512 kernels; MKL's AVX2 ones move them ~1%


@pytest.fixture(scope="module")
def readme():
    return (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def example(readme):
    """The README's Python example, run as shown (it trains one model): what it printed, and its namespace."""
    return readme_numbers.run_python_example(readme_numbers.python_example_code(readme))


def test_the_readme_marks_every_generated_region(readme):
    marked = readme_numbers.regions(readme)
    assert set(marked) == {*readme_numbers.PYTHON_REGIONS, *readme_numbers.STUDY_REGIONS}
    assert all(body.strip() for body in marked.values())


def test_the_python_example_prints_what_the_readme_shows(readme, example):
    _, namespace = example
    block = re.search(r"```\n(.*?)```", readme_numbers.regions(readme)["python-example"], flags=re.S).group(1)
    header, *shown = [line.split() for line in block.splitlines()]
    table = namespace["table"]
    assert len(shown) == len(table), f"the README shows {len(shown)} rows, the example computes {len(table)}"
    for words, (index, row) in zip(shown, table[header].iterrows()):
        assert words[:3] == [str(index), row["model"], row["split"]]
        for text, column in zip(words[3:], header[2:]):
            # the computed value, unrounded, against the printed one: rtol plus half a unit of its last digit
            half_unit = 0.5 * 10.0 ** -len(text.partition(".")[2])
            assert abs(float(text) - row[column]) <= RTOL * abs(row[column]) + half_unit, (
                f"README shows {column} = {text} for {row['model']} {row['split']}; the example computes "
                f"{row[column]!r} ({KERNELS}): run python docs/readme_numbers.py --only python")


def test_the_words_under_the_python_example_agree_with_it(readme, example):
    computed = readme_numbers.python_regions(*example)["python-example"]
    assert readme_numbers.differences(readme_numbers.regions(readme)["python-example"], computed) == []


@pytest.mark.parametrize("shown, computed", [
    ("AUC 0.408 [0.394, 0.422]", "AUC 0.408 [0.394, 0.422]"),
    ("AUC 0.408 [0.394, 0.422]", "AUC 0.409 [0.393, 0.422]"),  # values at a rounding boundary: one unit
    ("keeps 74% of it", "keeps 75% of it"),
    ("an error of 0.02139 ± 0.00014", "an error of  0.02139 ±\n0.00015"),  # wrapped elsewhere
    ("gap -0.0003", "gap -0.0002"),
])
def test_numbers_within_float_tolerance_agree(shown, computed):
    assert readme_numbers.differences(shown, computed) == []


@pytest.mark.parametrize("shown, computed, why", [
    ("AUC 0.408 [0.394, 0.422]", "AUC 0.410 [0.394, 0.422]", "README shows 0.408, the code computes 0.410"),
    ("keeps 74% of it", "keeps 76% of it", "README shows 74%"),
    ("keeps 74% of it", "keeps 0.74 of it", "README shows 74%"),
    ("bottleneck 16 (10,448 parameters)", "bottleneck 16 (10,449 parameters)", "README shows 10,448"),
    ("at epoch 26", "at epoch 27", "README shows 26"),
    ("at k = 2, 4, 8.", "at k = 2, 4.", "wording"),
    ("audit of ae-k32-h1024", "audit of ae-k32-h256", "wording"),
    ("Width 64 stores a little", "Width 64 stores its training samples", "wording"),
])
def test_other_differences_are_reported(shown, computed, why):
    found = readme_numbers.differences(shown, computed)
    assert found and why in "\n".join(found)


def test_regions_are_replaced_exactly(tmp_path):
    text = ("intro 1.0\n<!-- readme_numbers: a -->\n\nold a\n\n<!-- /readme_numbers -->\nmiddle 2.0\n"
            "<!-- readme_numbers: b -->\nold b\n<!-- /readme_numbers -->\nend\n")
    new = readme_numbers.replace_regions(text, {"a": "new a\nsecond line"})
    assert readme_numbers.regions(new) == {"a": "new a\nsecond line", "b": "old b"}
    assert new.startswith("intro 1.0\n<!-- readme_numbers: a -->\n\nnew a\nsecond line\n\n<!-- /readme_numbers -->\n"
                          "middle 2.0\n<!-- readme_numbers: b -->\nold b\n")
    assert readme_numbers.replace_regions(new, {"a": "new a\nsecond line"}) == new
    with pytest.raises(ValueError, match=r"no region marked \['c'\]"):
        readme_numbers.replace_regions(text, {"c": "x"})
    with pytest.raises(ValueError, match="'a' appears twice"):
        readme_numbers.regions(text + text)


def test_check_lists_what_disagrees_and_a_rewrite_fixes_it(tmp_path, readme, example, monkeypatch, capsys):
    monkeypatch.setattr(readme_numbers, "run_python_example", lambda code: example)  # the example, run once
    shown = readme_numbers.regions(readme)["python-example"]
    first = re.search(r"\d\.\d{6}", shown).group(0)
    changed = shown.replace(first, f"{float(first) + 0.001:.6f}", 1)
    copy = tmp_path / "README.md"
    copy.write_text(readme_numbers.replace_regions(readme, {"python-example": changed}), encoding="utf-8")

    assert readme_numbers.main(["--readme", str(copy), "--only", "python", "--check"]) == 1
    out = capsys.readouterr().out
    assert "python-example: DISAGREES" in out and f"README shows {float(first) + 0.001:.6f}" in out
    assert readme_numbers.main(["--readme", str(copy), "--only", "python"]) == 0
    assert "python-example: rewritten" in capsys.readouterr().out
    assert readme_numbers.main(["--readme", str(copy), "--only", "python", "--check"]) == 0
    rewritten = copy.read_text(encoding="utf-8")
    assert readme_numbers.regions(rewritten)["python-example"] == \
        readme_numbers.python_regions(*example)["python-example"]
    outside = readme_numbers.REGION.sub("", rewritten)
    assert outside == readme_numbers.REGION.sub("", readme)  # nothing outside the regions moves


def test_only_a_finished_default_study_stands_for_the_readme(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    with pytest.raises(ValueError, match="not a finished study folder"):
        readme_numbers.check_default_study(folder)
    (folder / "selection.json").write_text("{}")
    (folder / "study.json").write_text(json.dumps({"config": StudyConfig(noise_std=0.1, seeds=(0,)).to_dict()}))
    with pytest.raises(ValueError, match="not the default study: noise_std, seeds differ"):
        readme_numbers.check_default_study(folder)
    (folder / "study.json").write_text(json.dumps({"config": StudyConfig().to_dict()}))
    readme_numbers.check_default_study(folder)


@pytest.mark.slow
def test_the_readme_shows_what_the_default_study_its_remedies_and_the_patches_grid_compute(tmp_path, readme):
    folder = os.environ.get("AUTOENC_README_STUDY")
    if folder:
        readme_numbers.check_default_study(folder)
    else:
        folder = readme_numbers.run_default_study(tmp_path / "digits")
    computed = readme_numbers.study_regions(folder)
    studies = readme_numbers.readme_studies  # its remedies (in a copy of its folder) and the grid on patches
    computed.update(studies.remedies_regions(studies.run_remedies(folder, tmp_path / "remedies"), readme_numbers._wrap))
    computed.update(studies.patches_regions(studies.run_patches(tmp_path / "patches"), readme_numbers._wrap))
    if not os.environ.get("AUTOENC_README_STUDY"):  # written by this code just now: the README's rows are its rows
        summary_md = (Path(folder) / "summary.md").read_text(encoding="utf-8").splitlines()
        rows = [line for line in computed["study-table"].splitlines() if line.startswith("|")]
        assert len(rows) > 2 and set(rows) <= set(summary_md)
    shown = readme_numbers.regions(readme)
    failures = {name: readme_numbers.differences(shown[name], computed[name]) for name in readme_numbers.STUDY_REGIONS}
    report = "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in failures.items() if lines)
    assert not report, f"the README disagrees with the default study ({folder}, {KERNELS}):\n{report}\n" \
                       "run python docs/readme_numbers.py to regenerate it"
