"""The house rules: numbers unchanged by moves, no import cycle, one run id across every file of a study."""
import ast
from pathlib import Path

import pandas as pd
import pytest

from analysis import RunSpec, StudyConfig, run_study
from autoenc import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).parent / "data" / "small_study_results.csv"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study whose results.csv was stored in tests/data before the modules moved."""
    config = StudyConfig(bottlenecks=(2, 8), widths=(8, 32), seeds=(0, 1), memorization=True, n_folds=3,
                         latent="pca", train=TrainConfig(epochs=4, batch_size=128, lr=2e-3))
    return run_study(config, tmp_path_factory.mktemp("house"), n_jobs=1, progress=False, report=False)


# The reference was written on another CPU. Float32 training on other kernels (AVX-512 against AVX2 or none, MKL
# against OpenBLAS) rounds differently in the last bits, and 4 epochs carry that into the weights: measured
# against this file, mse and mse_clean differ by up to 8e-8 relative, noise_memorization by 1.5e-6, the rank
# statistics not at all. rtol 1e-5 keeps a 7x margin; gap is a difference of two errors of about 0.1, so its
# absolute error (3e-9 measured) is what is bounded, by atol 1e-7 (1e-6 of the errors it is taken from). A real
# change in how a number is computed moves it by far more. Identifiers and counts stay exact.
FLOAT_TOLERANCE = dict(rtol=1e-5, atol=1e-7)


@pytest.mark.portable
def test_results_match_the_stored_reference_within_float32_rounding(study):
    expected = pd.read_csv(REFERENCE)
    got = study.results[expected.columns].sort_values(["run", "split"]).reset_index(drop=True)
    exact = ["run", "split", "n_samples"]
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_exact=True, check_dtype=False)
    floats = [c for c in expected.columns if c not in exact]
    pd.testing.assert_frame_equal(got[floats], expected[floats], check_exact=False, check_dtype=False,
                                  **FLOAT_TOLERANCE)


def test_every_file_of_a_study_joins_on_the_run_id(study):
    runs = set(study.results["run"])
    assert {RunSpec.from_run(r).run for r in runs} == runs  # ids parse and print back identically
    checked = []
    for csv in sorted(Path(study.path).glob("*.csv")):
        frame = pd.read_csv(csv, dtype={"run": str})
        if "run" in frame.columns:
            assert set(frame["run"]) <= runs, f"{csv.name} has run ids that results.csv does not"
            checked.append(csv.name)
    assert {"samples.csv", "history.csv", "memorization.csv", "embeddings.csv"} <= set(checked)
    folders = {p.name for p in (Path(study.path) / "models").iterdir()}
    assert folders == runs


def _imports(package, root=ROOT):
    """module -> every module it imports, by absolute name (anywhere in its body: lazy imports count)."""
    graph = {}
    for path in (root / package).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".") if parts[-1] == "__init__" else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        graph[module] = targets - {module}
    return graph


# Each layer, and what it may import of the others: imports go downward only.
LAYERS = {"autoenc": (), "analysis.measures": ("autoenc",), "analysis.study": ("autoenc", "analysis.measures"),
          "analysis.report": ("autoenc", "analysis.measures", "analysis.study")}


def _layer(name):
    return max((layer for layer in LAYERS if name == layer or name.startswith(layer + ".")), key=len, default=None)


def _layer_violations(root=ROOT):
    """Every import that climbs a layer, cycles, or brings torch into the report: a list of sentences."""
    graph = {**_imports("autoenc", root), **_imports("analysis", root)}
    problems = []
    for module, targets in sorted(graph.items()):
        layer = _layer(module)
        if layer == "analysis.report" and any(t == "torch" or t.startswith("torch.") for t in targets):
            problems.append(f"{module} imports torch")
        for target in sorted(targets):
            above = _layer(target) if target.split(".")[0] in ("autoenc", "analysis") else None
            if target == "analysis" or target.startswith("analysis.") and above is None:
                above = "analysis"  # the top package re-exports all three layers: nothing below may import it
            if layer and above and above != layer and above not in LAYERS[layer]:
                problems.append(f"{module} ({layer}) imports {target} ({above})")
    # A package's __init__ re-exports its modules; the cycle that matters is between modules.
    inits = {m for m in graph if (root / m.replace(".", "/") / "__init__.py").is_file()}
    modules = {m: {t for t in ts if t in graph and t not in inits} for m, ts in graph.items() if m not in inits}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for t in sorted(modules.get(m, ())):
            if state.get(t) == "open":
                problems.append(f"import cycle: {' -> '.join(path + [t])}")
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    return problems, modules


def test_imports_go_down_the_layers_only_and_never_in_a_circle():
    """autoenc <- analysis.measures <- analysis.study <- analysis.report: no arrow up, no torch in the report."""
    problems, modules = _layer_violations()
    assert problems == []
    layers = {_layer(m) for m in modules}
    assert set(LAYERS) <= layers and len(modules) > 30


@pytest.mark.parametrize("module, line, expected", [
    ("analysis/measures/risk.py", "from ..study.config import StudyConfig", "analysis.measures.risk (analysis.measures) "
                                                                       "imports analysis.study.config"),
    ("analysis/measures/latent.py", "from analysis.report import verdict", "imports analysis.report"),
    ("analysis/study/select.py", "from ..report.verdict import answer", "imports analysis.report.verdict"),
    ("analysis/report/verdict.py", "import torch", "analysis.report.verdict imports torch"),
    ("autoenc/data.py", "from analysis import RunSpec", "autoenc.data (autoenc) imports analysis"),
    ("analysis/study/tables.py", "from .select import simplest_adequate", "import cycle"),
])
def test_the_layer_check_catches_an_upward_import(tmp_path, module, line, expected):
    """The check above is only as good as what it catches: add one bad import to a copy and it must be named."""
    import shutil

    for package in ("autoenc", "analysis"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n\ndef _added():\n    {line}\n", encoding="utf-8")
    problems, _ = _layer_violations(tmp_path)
    assert any(expected in p for p in problems), problems


def test_no_module_is_a_god_module():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for package in ("autoenc", "analysis") for p in (ROOT / package).rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_the_readme_lists_every_file_a_study_writes(study):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## The study folder", 1)[1].split("```")[1]
    written = {p.name for p in Path(study.path).iterdir() if not p.name.startswith(".")}
    assert {"results.csv", "memorization.csv", "audit.csv", "landscape.csv", "references"} <= written
    assert {name for name in written if name not in block} == set()


def test_the_words_of_a_study_load_without_the_drawing_code():
    """The study's workers and the command line's verdict import analysis and analysis.report's words; neither
    loads matplotlib (seconds), which comes only with the first drawing name."""
    import subprocess
    import sys

    code = ("import sys, analysis, analysis.report\n"
            "from analysis.report import answer, key_numbers, markdown_table, study_summary, verdict\n"
            "assert 'matplotlib' not in sys.modules, 'words pulled in matplotlib'\n"
            "analysis.plot_capacity, analysis.report.write_report\n"
            "assert 'matplotlib' in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
