"""What importing costs: the packages load their names on first use, so a study's worker imports only what its
tasks run (no scikit-learn, no scipy until a measure needs it), and every public name still comes from where it did.
"""
import importlib
import pickle
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.study.runner import WORKER_MODULES

ROOT = Path(__file__).resolve().parents[1]
LAZY = ("autoenc", "analysis", "analysis.measures", "analysis.study")  # the packages whose names load on first use
HEAVY = ("sklearn", "scipy", "pandas", "matplotlib", "dp_accounting")


HEAVY_LOADED = f"import sys\nprint(*(m for m in {HEAVY!r} if m in sys.modules))"  # a line: the HEAVY ones loaded


def _loaded(code, timeout=120):
    """The lines ``code`` printed in a fresh interpreter, as lists of words, and last the HEAVY packages imported."""
    script = f"{code}\n{HEAVY_LOADED}"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines()]


def test_import_autoenc_and_training_load_neither_sklearn_nor_scipy():
    """One interpreter, step by step (each step imports what the one before did, and more)."""
    steps = ["import autoenc", "from autoenc import Autoencoder, ModelConfig, TrainConfig, fit, load_dataset, save",
             "from autoenc import AutoencoderTransformer"]
    package, training, transformer = _loaded(f"\n{HEAVY_LOADED}\n".join(steps))
    assert package == [] and training == []
    assert "sklearn" in transformer  # there when asked for


def test_the_worker_modules_load_neither_sklearn_nor_scipy():
    loaded = _loaded("".join(f"import {m}\n" for m in WORKER_MODULES))[-1]
    assert loaded == ["pandas"]  # the measures' tables: the only one a worker needs


def test_a_study_prepares_the_built_in_data_without_sklearn_or_scipy():
    """What runs before the workers get their first task: loading digits, the split, the noise, the PCA noise
    references (numpy's eigendecomposition): none of it may spend a second importing scikit-learn."""
    out = _loaded("from analysis import StudyConfig\nfrom analysis.study.prepare import prepare_data\n"
                  "data = prepare_data(StudyConfig())\nprint(round(data.nm_reference(16), 4))")
    assert out[0] == ["0.2462"] and "sklearn" not in out[-1] and "scipy" not in out[-1]


def test_a_study_imports_no_sklearn_or_scipy_before_its_first_task(tmp_path):
    """Everything the study command does before its tasks go out (the data, the folder, the versions it records,
    the reference plans): scikit-learn's import (about 1 s) would hold back the workers waiting for their first
    task."""
    code = f"""
import sys
import analysis.study.runner as runner
seen = []
def first_tasks(*args, **kwargs):
    seen.append([m for m in ("sklearn", "scipy") if m in sys.modules])
    raise KeyboardInterrupt
runner.run_tasks = first_tasks
from autoenc_cli.study import main
try:
    main(["--out", {str(tmp_path / "study")!r}, "--jobs", "1", "--quiet"])
except (KeyboardInterrupt, SystemExit):
    pass
print("before", *seen[0])
"""
    assert _loaded(code)[0] == ["before"]


def test_the_recorded_versions_are_the_packages_own_without_importing_sklearn():
    recorded, before, imported, _ = _loaded(f"from autoenc.io import versions\nprint(versions()['scikit-learn'])\n"
                                            f"{HEAVY_LOADED}\nimport sklearn\nprint(sklearn.__version__)")
    assert before == []  # versions() read the metadata, imported nothing heavy
    assert recorded == imported and "." in recorded[0]


def test_a_worker_trains_and_measures_autoencoders_without_sklearn(tmp_path):
    """The tasks themselves, in a fresh process as on a worker: reference autoencoders import nothing heavy more, and
    neither does a measured group of autoencoders: no scikit-learn (the PCA noise references come with the data,
    fitted where it was prepared), no scipy (the pair measures that need scipy.stats, the exact KS p-value,
    Clopper-Pearson and the normal quantile, are left to the study process: ``training.with_pairs``)."""
    from analysis import StudyConfig
    from analysis.study.prepare import prepare_data
    from analysis.study.references import plan_references
    from analysis.study.runspec import Run
    from autoenc import TrainConfig

    config = StudyConfig(dataset="lowrank", bottlenecks=(2, 4), widths=(8,), seeds=(0,), n_references=2,
                         train=TrainConfig(epochs=2, batch_size=64))
    data = prepare_data(config)
    plan = plan_references(config.widest_run(), data, config, tmp_path)
    reference = (plan.model, plan.train, data, plan.masks, plan.pool, plan.tasks[0])
    (tmp_path / "tasks.pkl").write_bytes(pickle.dumps((config, data, [Run.of(s, config, data) for s in config.runs()],
                                                       reference)))
    code = f"""
import pickle, sys
{"".join(f"import {m}" + chr(10) for m in WORKER_MODULES)}
from analysis.study.references import _train_task
from analysis.study.training import train_group
config, data, runs, reference = pickle.loads(open({str(tmp_path / "tasks.pkl")!r}, "rb").read())
_train_task(*reference)
print(*(m for m in {HEAVY!r} if m in sys.modules))
assert len(train_group(runs, data, config)) == 2
"""
    after_references, after_group = _loaded(code, timeout=300)
    assert after_references == ["pandas"] and after_group == ["pandas"]


@pytest.mark.parametrize("package", [*LAZY, "analysis.report"])
def test_every_public_name_is_importable_from_its_package(package):
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__)
    if package in LAZY:  # dir() lists the names not loaded yet too (the report's lists its drawing names once drawn)
        assert set(module.__all__) <= set(dir(module))
    namespace = {}
    exec(f"from {package} import *", namespace)
    assert set(module.__all__) <= set(namespace)
    assert all(getattr(module, name) is namespace[name] for name in module.__all__)


@pytest.mark.parametrize("package", LAZY)
def test_no_public_name_is_also_a_submodule(package):
    """Importing a submodule sets the package's attribute of its name: a public name spelled the same would then
    read as the module."""
    module = importlib.import_module(package)
    assert set(module.__all__) & {m.name for m in pkgutil.iter_modules(module.__path__)} == set()


def test_the_top_package_hands_out_the_layers_own_objects():
    import analysis
    import analysis.report
    from analysis.report.pipeline import run_study
    from analysis.study.runner import run_study as study_only

    assert set(analysis._DRAWING) == set(analysis.report._DRAWING)
    assert analysis.run_study is run_study and analysis.run_study is not study_only  # the study, then its report
    assert analysis.verdict is analysis.report.verdict and callable(analysis.verdict)
    assert analysis.seen_unseen is importlib.import_module("analysis.measures.errors").seen_unseen
    assert analysis.measures.__name__ == "analysis.measures"  # submodules still read as attributes
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        analysis.nothing_here
