"""The study folder under fault injection: nothing damaged is trusted, nothing concurrent is mixed, no traceback."""
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import StudyConfig, run_study
from analysis.study.lock import StudyLockedError
from autoenc import TrainConfig
from tiny_study import METRICS, metrics
from tiny_study import study as _study, tiny as _tiny


def tiny(**changes):  # the folder's tests here want two bottlenecks and one seed
    return _tiny(**{"bottlenecks": (2, 4), "seeds": (0,), **changes})


def study(folder, config=None, **kwargs):
    return _study(folder, config or tiny(), **kwargs)

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return study(tmp_path_factory.mktemp("store"))


def copy_study(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow  # a process killed and waited on: CI's separate slow step runs it
def test_a_second_process_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from analysis.study.lock import StudyLock
        with StudyLock({str(tmp_path)!r}):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StudyLockedError, match=str(holder.pid)):
            study(tmp_path)
        assert not (tmp_path / "study.json").exists()
        cli = subprocess.run([sys.executable, "scripts/study.py", "--out", str(tmp_path), "--quiet"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 2 and str(holder.pid) in cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1 and "Traceback" not in cli.stderr
    finally:
        holder.kill()
        holder.wait()
    study(tmp_path)  # the holder is gone: the folder is free again


def test_changed_data_is_refused_and_the_same_content_elsewhere_accepted(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((120, 12)).astype(np.float32)
    first, moved = tmp_path / "chg.npy", tmp_path / "moved.npy"
    np.save(first, X)
    np.save(moved, X)
    out = tmp_path / "study"
    study(out, tiny(dataset=str(first)))
    again = study(out, tiny(dataset=str(moved)))  # the same content under another path: resumed
    assert again.trained == 0 and again.reused == 4
    np.save(first, X * 100 + 5)
    with pytest.raises(ValueError, match="changed since"):
        study(out, tiny(dataset=str(first)))


def test_a_truncated_weights_file_is_retrained_with_a_warning(reference, tmp_path):
    folder = copy_study(reference.path, tmp_path / "s")
    weights = folder / "models" / "ae-k4-h8-s0" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="ae-k4-h8-s0.*damaged.*trained again"):
        again = study(folder)
    assert again.trained == 1
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))


@pytest.mark.parametrize("content", ["{garbage", "{}", '{"run": "../../elsewhere/model", "rows": []}',
                                     '{"run": "/etc/passwd"}'])
def test_a_damaged_result_json_is_retrained_never_trusted(reference, tmp_path, content):
    folder = copy_study(reference.path, tmp_path / "s")
    (folder / "models" / "pca-k2" / "result.json").write_text(content)
    with pytest.warns(RuntimeWarning, match="pca-k2.*damaged"):
        again = study(folder)
    assert again.trained == 1
    pd.testing.assert_frame_equal(metrics(again), metrics(reference))


def test_a_run_folder_pointing_outside_is_never_followed(reference, tmp_path):
    folder = copy_study(reference.path, tmp_path / "s")
    outside = tmp_path / "elsewhere"
    (folder / "models" / "ae-k2-h8-s0").rename(outside)
    (folder / "models" / "ae-k2-h8-s0").symlink_to(outside, target_is_directory=True)
    with pytest.warns(RuntimeWarning, match="symbolic link"):
        again = study(folder)
    assert again.trained == 1 and (outside / "result.json").exists()  # retrained inside, the outside untouched
    assert not (folder / "models" / "ae-k2-h8-s0").is_symlink()


def test_damaged_derived_files_are_rebuilt(tmp_path):
    config = tiny(latent="pca", memorization=True, n_references=4)
    first = study(tmp_path, config)
    for name in ("embeddings.csv", "memorization.csv"):
        (tmp_path / name).write_text("garbage\x00\x01")
    again = study(tmp_path, config)
    assert again.trained == 0
    for name in ("embeddings.csv", "memorization.csv"):
        assert {"run", "sample"} <= set(pd.read_csv(tmp_path / name).columns)
    assert len(pd.read_csv(tmp_path / "memorization.csv")) > 0 and first.selection is not None
    assert not (tmp_path / "audit_summary.csv").exists()  # scores asked for, no audit


def test_os_errors_are_one_line_on_the_command_line(tmp_path, monkeypatch):
    from autoenc_cli import study as cli

    a_file = tmp_path / "file"
    a_file.write_text("x")
    args = ["--out", str(a_file), "--quiet", "--widths", "8", "--seeds", "0", "--bottlenecks", "2", "--epochs", "1",
            "--no-memorization", "--audit", "none", "--latent", "none", "--no-report", "--jobs", "1"]
    assert cli.main(args) == 2

    import autoenc.io

    real = autoenc.io.atomic_write

    def full_disk(path, write):
        if str(path).endswith("result.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, write)

    monkeypatch.setattr(autoenc.io, "atomic_write", full_disk)
    import analysis.study._write

    monkeypatch.setattr(analysis.study._write, "atomic_write", full_disk)
    args[1] = str(tmp_path / "full")
    assert cli.main(args) == 2


def test_the_command_line_says_no_space_in_one_line(tmp_path, capsys, monkeypatch):
    import analysis.study._write
    from autoenc_cli import study as cli

    def full_disk(path, write):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(analysis.study._write, "atomic_write", full_disk)
    code = cli.main(["--out", str(tmp_path / "o"), "--quiet", "--widths", "8", "--seeds", "0", "--bottlenecks", "2",
                     "--epochs", "1", "--no-memorization", "--audit", "none", "--latent", "none", "--no-report",
                     "--jobs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: No space left on device") and "Traceback" not in "\n".join(err)


def test_no_scheduler_is_one_line_and_leaves_nothing_behind(tmp_path):
    cli = subprocess.run([sys.executable, "scripts/study.py", "--out", str(tmp_path / "o"), "--quiet",
                          "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2, cli.stderr
    assert cli.stderr.strip().startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert len(cli.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "study.json").exists()


def test_huge_values_fail_runs_with_their_reason_and_the_study_goes_on(tmp_path):
    X = np.random.default_rng(0).random((150, 10)) * 1e30
    np.save(tmp_path / "huge.npy", X)
    result = study(tmp_path / "o", tiny(dataset=str(tmp_path / "huge.npy"), noise_std=0.0))
    ae = result.results.query("model == 'autoencoder'")
    assert (ae["status"] == "diverged").all() and ae["reason"].str.contains("scale").all()
    assert set(result.results["status"]) <= {"ok", "diverged", "failed"}


def test_a_one_thread_cluster_runs_every_task_on_its_worker(tmp_path):
    import distributed

    from analysis.study.store import StudyStore

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        study_ = run_study(tiny(), tmp_path, scheduler=cluster.scheduler_address, progress=False, report=False)
    workers = {r.worker.rsplit(":", 1)[1] for r in StudyStore(study_.path).records()}
    assert workers and str(os.getpid()) not in workers
    import threading

    assert not any(t.name == "autoenc-parent-watch" for t in threading.enumerate())


def test_data_too_small_for_the_study_is_refused_before_any_work(tmp_path):
    np.save(tmp_path / "three.npy", np.arange(9.0).reshape(3, 3))
    with pytest.raises(ValueError, match="3 samples; a study needs at least 10"):
        study(tmp_path / "o", tiny(dataset=str(tmp_path / "three.npy"), bottlenecks=(1,)))
    np.save(tmp_path / "twelve.npy", np.random.default_rng(0).random((12, 4)))
    with pytest.raises(ValueError, match="too small for this study.*training samples"):
        study(tmp_path / "o", tiny(dataset=str(tmp_path / "twelve.npy"), bottlenecks=(1,), memorization=True,
                                   memorization_method="kfold", n_folds=10))
    assert not (tmp_path / "o").exists()


def test_json_files_are_strict(tmp_path):
    result = study(tmp_path, tiny(noise_std=0.0))
    for file in [tmp_path / "selection.json", *sorted((tmp_path / "models").glob("*/result.json"))]:
        text = file.read_text()
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=lambda name: pytest.fail(f"{file} holds {name}"))
    assert result.selection["metric"] == "mse_denoise"


def test_grow_search_deepens_once_widening_stops_helping(tmp_path):
    from analysis.study.select import grow_proposals, grow_start, grow_update

    state = grow_start([8], 16)
    state = grow_update(state, grow_proposals(state, 32, 3), {(8, (16,)): 1.0}, 0.05)
    proposals = grow_proposals(state, 32, 3)
    assert proposals == {8: [(32,), (16, 16)]}  # wider first, deeper second
    state = grow_update(state, proposals, {(8, (32,)): 0.99, (8, (16, 16)): 0.5}, 0.05)  # widening barely helps
    assert state[8].hidden == (16, 16) and not state[8].done


def test_a_cluster_without_workers_is_one_clear_error(tmp_path):
    import distributed

    from analysis.study._parallel import ClusterError

    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(ClusterError, match="has no workers after 1 s"):
            run_study(tiny(), tmp_path / "o", scheduler=cluster.scheduler_address, timeout=1, progress=False)
    assert not (tmp_path / "o" / "study.json").exists()


@pytest.mark.slow  # a process killed and waited on: CI's separate slow step runs it
def test_the_cluster_drops_a_killed_studys_tasks(tmp_path):
    import signal
    import time

    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        study_process = subprocess.Popen(
            [sys.executable, "scripts/study.py", "--out", str(tmp_path / "o"), "--quiet", "--scheduler",
             cluster.scheduler_address, "--widths", "64,256", "--bottlenecks", "2,4,8", "--epochs", "30",
             "--audit", "none", "--no-memorization"], cwd=ROOT)
        start = time.monotonic()
        while time.monotonic() - start < 60 and len(cluster.scheduler.tasks) < 3:
            time.sleep(0.2)
        assert len(cluster.scheduler.tasks) >= 3  # queued on the cluster
        study_process.send_signal(signal.SIGKILL)
        study_process.wait()
        start = time.monotonic()
        while time.monotonic() - start < 30 and cluster.scheduler.tasks:
            time.sleep(0.2)
        assert not cluster.scheduler.tasks  # released with their client, the running one cancelled


@pytest.mark.parametrize("doc", [
    {"a": [1.0, float("nan"), np.float32(0.1), np.int64(3), np.bool_(True), True, None, "x", (1, 2)],
     "b": {"c": np.array([[1.5, np.nan], [np.inf, 2]]), "d": np.float64(-np.inf)}, "e": np.array(3.25),
     "f": np.arange(3), "g": -0.0, "h": 1e308, "i": 2**70, "j": []},
    {1: "a key JSON turns into a string", "k": 2.5},  # through json itself
    {"l": np.float64(0.1) * 3, "m": [np.nan] * 3},
])
def test_result_json_is_written_as_json_round_trips_it(tmp_path, doc):
    """write_json's one-pass conversion writes what the json round trip it replaces gave, a top-level key a line."""
    from analysis.study._write import _json_default, _strict, write_json

    write_json(tmp_path / "one.json", doc, digest=True)
    reference = _strict(json.loads(json.dumps(doc, default=_json_default)))
    from analysis.study.provenance import DIGEST_KEY, document_digest

    reference[DIGEST_KEY] = document_digest(reference)
    text = (tmp_path / "one.json").read_text(encoding="utf-8")
    assert json.loads(text) == reference and list(json.loads(text)) == list(reference)  # the same, in order
    assert len(text.splitlines()) == len(reference) + 2 and "NaN" not in text and "Infinity" not in text
