"""The study's memorization scores and audit, written from tasks: the same files in any order, on any thread."""
import json
import shutil

import pytest
from tiny_study import study, tiny

from analysis.study.finish import run_in_threads
from analysis.study.prepare import prepare_data
from analysis.study.references import (audit_tasks, early_references, late_references, plan_references,
                                       write_memorization_and_audit)
from analysis.study.store import StudyStore

WRITTEN = ("memorization.csv", "memorization.json", "audit_summary.csv", "audit.csv", "memorized_samples.npz")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    out = tmp_path_factory.mktemp("audited")
    config = tiny(memorization=True, n_references=4, audit=("widest", "selected"))
    study(out, config)
    return out, config


def _again(folder, config, copy):
    """The runner's arguments to the audit, on a copy of the folder without the audit's files."""
    shutil.copytree(folder, copy)
    for name in WRITTEN:
        (copy / name).unlink()
    data, store = prepare_data(config), StudyStore(copy)
    results, samples, _ = store.tables()
    selection = json.loads((copy / "selection.json").read_text())
    plans = [plan_references(s, data, config, copy, audited=True) for s in early_references(config)]
    plans += [plan_references(s, data, config, copy, audited=True) for s in late_references(config, results, selection)
              if s.architecture not in {p.spec.architecture for p in plans}]
    return plans, data, samples


@pytest.mark.parametrize("how", ["serial", "threads"])
def test_the_audits_tasks_write_the_studys_own_files(audited, tmp_path, how):
    folder, config = audited
    copy = tmp_path / "copy"
    plans, data, samples = _again(folder, config, copy)
    assert len(plans) == 2  # the widest (also the selected: one width) and PCA at its bottleneck
    if how == "serial":
        write_memorization_and_audit(copy, plans, data, samples, config)
    else:
        run_in_threads(audit_tasks(copy, plans, data, samples, config), 2)
    for name in WRITTEN[:4]:
        assert (copy / name).read_bytes() == (folder / name).read_bytes(), name
