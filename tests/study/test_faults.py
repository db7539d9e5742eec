"""Faults from outside: a cluster that loses its workers, a foreign service, hostile files, signals, sizes."""
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import StudyConfig, run_study
from analysis.study.lock import StudyLock
from analysis.study.store import StudyStore
from autoenc import TrainConfig
from autoenc_cli import study as cli

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["mse", "mse_clean", "noise_memorization", "membership_auc"]
FLAGS = ["--quiet", "--bottlenecks", "2", "--widths", "8", "--seeds", "0", "--epochs", "2", "--audit", "none",
         "--no-memorization", "--latent", "none", "--no-landscape", "--no-report", "--jobs", "1"]


def tiny(**changes):
    base = dict(bottlenecks=(2,), widths=(8,), seeds=(0,), memorization=False, audit=(), landscape=False,
                latent="none", train=TrainConfig(epochs=3, batch_size=128, lr=2e-3))
    return StudyConfig(**{**base, **changes})


def metrics(results):
    return results.sort_values(["run", "split"]).reset_index(drop=True)[["run", "split", *METRICS]]


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_losing_every_dask_worker_ends_the_study_with_one_line(tmp_path, monkeypatch, capsys):
    import distributed

    import analysis.study.references

    config = tiny(memorization=True, n_references=4, train=TrainConfig(epochs=60, batch_size=128, lr=2e-3))
    real, worker = analysis.study.references.write_npz, None

    def commit_then_kill(path, **arrays):  # the worker dies once the first reference group is committed
        real(path, **arrays)
        if worker.poll() is None:
            worker.kill()

    monkeypatch.setattr(analysis.study.references, "write_npz", commit_then_kill)
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
                                   "--no-nanny", "--nthreads", "1", "--no-dashboard"], cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not cluster.scheduler.workers and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.1)
            code = cli.main(["--out", str(tmp_path / "o"), "--quiet", "--bottlenecks", "2", "--widths", "8",
                             "--seeds", "0", "--epochs", "60", "--batch-size", "128", "--lr", "0.002",
                             "--n-references", "4", "--audit", "none", "--latent",
                             "none", "--no-landscape", "--no-report", "--scheduler", cluster.scheduler_address,
                             "--scheduler-timeout", "2"])
        finally:
            worker.kill()
            worker.wait()
    assert code == 2, capsys.readouterr().err
    assert "no worker for 2 s" in one_error_line(capsys)
    StudyLock(tmp_path / "o").acquire().release()  # released
    kept = sorted((tmp_path / "o" / "references").glob("*/group-*.npz"))
    assert kept  # what finished stays
    monkeypatch.undo()
    resumed = run_study(config, tmp_path / "o", n_jobs=1, progress=False, report=False)
    fresh = run_study(config, tmp_path / "fresh", n_jobs=1, progress=False, report=False)
    pd.testing.assert_frame_equal(metrics(resumed.results), metrics(fresh.results))
    pd.testing.assert_frame_equal(pd.read_csv(resumed.path / "memorization.csv"),
                                  pd.read_csv(fresh.path / "memorization.csv"))


def test_a_result_lost_with_its_worker_is_awaited_no_longer_than_the_timeout():
    from types import SimpleNamespace

    from analysis.study._parallel import ClusterError, _output, _WorkerWatch

    class LostFuture:  # reported finished, then pending again: the worker holding its result died
        status = "pending"

        def result(self, timeout=None):
            time.sleep(timeout)
            raise TimeoutError()

    client = SimpleNamespace(scheduler=SimpleNamespace(address="tcp://127.0.0.1:1"), nthreads=dict)
    with pytest.raises(ClusterError, match="tcp://127.0.0.1:1 has had no worker for 0.3 s"):
        _output(LostFuture(), client, _WorkerWatch(client, 0.3, every=0.05))


def test_a_service_that_is_no_dask_scheduler_is_one_line(tmp_path, capsys):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_like_http():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 8)
                time.sleep(0.2)

    threading.Thread(target=answer_like_http, daemon=True).start()
    try:
        code = cli.main(["--out", str(tmp_path / "o"), *FLAGS, "--scheduler", f"tcp://127.0.0.1:{port}",
                         "--scheduler-timeout", "3"])
    finally:
        server.close()
    assert code == 2 and "does not answer as a Dask scheduler" in one_error_line(capsys)
    assert not (tmp_path / "o" / "study.json").exists()


@pytest.mark.parametrize("flags, message", [
    (["--widths", "100000000"], "parameters"),
    (["--depths", "10000"], "run ids such as ae-k2-h8-8-8"),
    (["--noise-std", "1e200"], "at most 1e\\+12"),
])
def test_what_cannot_work_is_refused_before_the_folder_exists(tmp_path, capsys, flags, message):
    out = tmp_path / "a" / "o"
    assert cli.main(["--out", str(out), *FLAGS, *flags]) == 2
    assert re.search(message, one_error_line(capsys))
    assert not (tmp_path / "a").exists()  # nothing left behind, not even the folder made for the lock


def test_a_locked_folder_is_refused_before_any_data_is_read(tmp_path, monkeypatch):
    import analysis.study.runner
    from analysis.study.lock import StudyLockedError

    def no_data(*args, **kwargs):
        raise AssertionError("data read while the folder is locked by another study")

    with StudyLock(tmp_path):
        monkeypatch.setattr(analysis.study.runner, "prepare_data", no_data)
        with pytest.raises(StudyLockedError):
            run_study(tiny(), tmp_path, n_jobs=1, progress=False, report=False)
    assert os.listdir(tmp_path) == [".lock"]


def _npy_claiming(shape):
    """An .npy header claiming ``shape`` of float64 (3.55 PiB for (10^9, 10^6)), followed by 64 bytes."""
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + bytes(64)


def test_array_headers_are_checked_before_anything_is_allocated(tmp_path, capsys):
    import zipfile

    from autoenc import load_dataset

    bomb = _npy_claiming((10**9, 10**6))
    (tmp_path / "bomb.npy").write_bytes(bomb)
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("X.npy", bomb)
    for name in ("bomb.npy", "bomb.npz"):
        with pytest.raises(ValueError, match=r"claims shape \(1000000000, 1000000\).*refused"):
            load_dataset(tmp_path / name)
    assert cli.main(["--out", str(tmp_path / "o"), *FLAGS, "--data", str(tmp_path / "bomb.npy")]) == 2
    assert "refused" in one_error_line(capsys) and not (tmp_path / "o").exists()


def test_gzip_idx_is_inflated_no_further_than_its_header_says(tmp_path):
    import gzip

    from autoenc import load_dataset

    header = b"\x00\x00\x08\x03" + np.array([2, 2, 2], ">u4").tobytes()  # 2 images of 2 x 2 bytes
    with gzip.open(tmp_path / "big-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(header)
        for _ in range(64):  # 64 MiB of zeros from a file of about 64 KiB
            f.write(bytes(1 << 20))
    with pytest.raises(ValueError, match="truncated or corrupt.*needs 8 bytes of data, found more"):
        load_dataset(tmp_path / "big-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return run_study(tiny(), tmp_path_factory.mktemp("finished"), n_jobs=1, progress=False, report=False)


def test_a_fifo_or_a_huge_result_json_is_refused_unread(finished, tmp_path):
    import faulthandler
    import shutil

    folder = shutil.copytree(finished.path, tmp_path / "s")
    (folder / "models" / "pca-k2" / "result.json").unlink()
    os.mkfifo(folder / "models" / "pca-k2" / "result.json")  # opened for reading, it would wait for a writer
    with open(folder / "models" / "ae-k2-h8-s0" / "result.json", "r+b") as f:
        f.truncate(1 << 30)  # 1 GiB, sparse: costs no disk, and must cost no memory
    faulthandler.dump_traceback_later(120, exit=True)  # a hang ends the run instead of blocking it forever
    try:
        with pytest.warns(RuntimeWarning) as caught:
            again = run_study(tiny(), folder, n_jobs=1, progress=False, report=False)
    finally:
        faulthandler.cancel_dump_traceback_later()
    said = " ".join(str(w.message) for w in caught)
    assert "pca-k2" in said and "not a regular file" in said and "ae-k2-h8-s0" in said and "bytes, more than" in said
    assert again.trained == 2
    pd.testing.assert_frame_equal(metrics(again.results), metrics(finished.results))


def test_temporary_files_of_a_killed_study_are_removed_on_the_next(finished, tmp_path):
    import shutil

    folder = shutil.copytree(finished.path, tmp_path / "s")
    orphans = [folder / ".results.csv.k2x9q1ab.tmp", folder / "models" / "ae-k2-h8-s0" / ".result.json.a1b2c3d4.tmp",
               folder / "models" / "pca-k2" / ".weights.safetensors.zz99yy88.tmp"]
    for file in orphans:
        file.write_bytes(b"half a file")
    again = run_study(tiny(), folder, n_jobs=1, progress=False, report=False)
    assert again.trained == 0 and not any(f.exists() for f in orphans)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import errno

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write() says it: no file named

    monkeypatch.setattr(np, "savez", no_space)
    assert cli.main(["--out", str(tmp_path / "o"), *FLAGS]) == 2
    line = one_error_line(capsys)
    assert line == f"error: No space left on device: {tmp_path / 'o' / 'splits.npz'}"
    assert not list((tmp_path / "o").glob(".*.tmp"))


def test_an_allocation_failure_is_one_line(tmp_path, monkeypatch, capsys):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.01 EiB for an array")

    monkeypatch.setattr(cli, "run_study", out_of_memory)
    assert cli.main(["--out", str(tmp_path / "o"), *FLAGS]) == 2
    assert one_error_line(capsys) == "error: out of memory: Unable to allocate 3.01 EiB for an array"


def test_sigterm_stops_like_ctrl_c_and_the_rerun_completes_the_study(tmp_path, monkeypatch, capsys):
    def terminated(done, total, runs=()):  # the first group is committed, then the study gets SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cli, "_line_progress", terminated)
    args = ["--out", str(tmp_path / "o"), *[f for f in FLAGS if f != "--quiet"]]
    assert cli.main(args) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"interrupted: finished runs are saved in {tmp_path / 'o'}; run the same command again to resume"
    assert len(StudyStore(tmp_path / "o").finished()) == 1  # the autoencoder; PCA was still to come
    monkeypatch.undo()
    assert cli.main(args) == 0
    config = tiny(train=TrainConfig(epochs=2, batch_size=64, lr=2e-3))
    fresh = run_study(config, tmp_path / "fresh", n_jobs=1, progress=False, report=False)
    pd.testing.assert_frame_equal(metrics(pd.read_csv(tmp_path / "o" / "results.csv", dtype={"hidden": str})),
                                  metrics(fresh.results), check_dtype=False)


@pytest.mark.slow  # a study process and its two workers, interrupted and waited on: CI's separate slow step runs it
def test_ctrl_c_with_worker_processes_leaves_no_leaked_semaphores(tmp_path):
    args = [sys.executable, str(ROOT / "scripts" / "study.py"), "--out", str(tmp_path), "--bottlenecks", "2",
            "--widths", "8", "--seeds", "0", "--epochs", "10", "--n-references", "12", "--audit", "none",
            "--latent", "none", "--no-landscape", "--no-report", "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(tmp_path.glob("references/*/group-*.npz")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # the workers are busy with the other groups
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted: finished runs are saved in")
    assert "resource_tracker" not in err and "leaked" not in err and "Traceback" not in err, err


def test_the_command_line_refuses_a_locked_folder_before_reading_data(tmp_path, monkeypatch, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("data read while the folder is locked by another study")

    monkeypatch.setattr(cli, "load_dataset", no_data)
    with StudyLock(tmp_path):  # no --bottlenecks: the command would read the data to fit the defaults
        assert cli.main(["--out", str(tmp_path), "--quiet", "--no-report"]) == 2
    assert f"in use by process {os.getpid()}" in one_error_line(capsys)


def test_a_folder_name_too_long_for_the_file_system_is_refused_before_work(tmp_path, capsys):
    out = tmp_path / "a" / ("x" * 300)
    assert cli.main([*FLAGS, "--out", str(out)]) == 2
    assert "more than the 255 a file name may have" in one_error_line(capsys)
    assert not (tmp_path / "a").exists()
