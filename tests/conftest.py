"""Shared test set-up: the rng, a headless matplotlib, one thread per test process, figures closed after every test,
the synthetic study, the long test files first."""
import sys

import autoenc  # noqa: F401  (first, as in a study's processes: MKL's kernels are chosen before torch loads)
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # before any test imports pyplot: no display here


def pytest_report_header(config):
    """The CPU and kernel level the numbers came from: tests with stored numbers hold within float32 rounding."""
    from autoenc.io import machine

    return "machine: " + ", ".join(f"{k} {v}" for k, v in machine().items())


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_test_process():
    """Torch's, OpenMP's and the BLAS's pools at one thread in the process that runs the tests, as in a study's
    workers: the test processes already fill the cores (two workers on two), and two OpenMP threads in each spin
    against the other worker's (16% more CPU over landscape, similarity and core, measured beside one busy core).
    Tests that need more threads set them and restore this; subprocesses keep their own defaults."""
    from analysis.study._parallel import one_thread

    with one_thread():
        yield


@pytest.fixture
def rng():
    """A fresh seeded generator per test: tests never touch global random state."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _same_unseeded_init():
    """A model built without a seed (``Autoencoder(config)``) gets the same weights whatever ran before it on its
    worker: test order and worker count never decide a test's numbers."""
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="module")
def frames():
    from synthetic_study import make_study_frames

    return make_study_frames()


# The longest test files (3-15 s each on two workers, measured), longest first: xdist's loadfile hands files out in
# this order, so the two workers end together on the many short files. Its own order (by number of tests) left the
# long files with few tests for last, one worker idle for the last 7-13 s. setup.cfg's --no-loadscope-reorder keeps
# this order.
LONG_FIRST = ("study/test_study.py", "study/test_store.py", "test_readme.py", "measures/test_divergence.py",
              "test_cli_early.py", "study/test_faults.py", "test_house.py", "study/test_workers.py",
              "measures/test_landscape.py", "test_cli.py", "report/test_report.py", "report/test_drawing.py",
              "measures/test_similarity.py", "report/test_verdicts.py", "study/test_remedy_study.py", "test_conv.py",
              "report/test_compare.py")


def pytest_collection_modifyitems(config, items):
    rank = {f"tests/{name}": i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest as collected
