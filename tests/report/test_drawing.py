"""Figures drawn on several processes are the figures one process draws; failures reach the caller either way."""
import os
import sys

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from synthetic_study import write_extras, write_study

import analysis.report.html as report_module
from analysis.report._drawing import Drawing, default_processes, save_png

DPI = 40
forks = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="helpers are forked on Linux only")


def _pixels(path):
    return matplotlib.image.imread(path)


def _square(value=0.5):
    def make():
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, value])
        ax.set_title(f"{value}")
        return fig
    return make


@forks
def test_several_processes_draw_the_same_pixels_as_one(tmp_path, frames):
    folder = write_extras(write_study(tmp_path / "digits", frames))
    plan = report_module._figure_plan(folder)
    assert len(plan) >= 15 and "memorized_samples" in dict(plan) and "attractors" in dict(plan)
    with Drawing(plan, tmp_path / "one", DPI, processes=1) as drawing:
        one = drawing.finish()
    with Drawing(plan, tmp_path / "three", DPI, processes=3) as drawing:
        three = drawing.finish()
    assert list(one) == list(three) == [name for name, _ in plan]  # plan order, whoever drew what
    for name, path in one.items():
        assert path == tmp_path / "one" / "figures" / f"{name}.png"
        assert np.array_equal(_pixels(path), _pixels(three[name])), name


def test_save_png_crops_to_what_the_figure_drew_like_a_tight_savefig(tmp_path):
    fig = _square()()
    fig.legend(["a line with a long name"], loc="upper left", bbox_to_anchor=(0.9, 0.9))  # beyond the figure
    save_png(fig, tmp_path / "once.png", DPI)
    fig.savefig(tmp_path / "tight.png", dpi=DPI, bbox_inches="tight")
    once, tight = _pixels(tmp_path / "once.png"), _pixels(tmp_path / "tight.png")
    assert once.shape[2] == 3 and (tight[..., 3] == 1).all()  # opaque: stored without the alpha channel
    assert abs(once.shape[0] - tight.shape[0]) <= 3 and abs(once.shape[1] - tight.shape[1]) <= 3
    assert once.shape[1] > 2 * DPI  # the legend beyond the figure's right edge is in
    border = 0.1 * DPI - 1  # savefig.pad_inches of white around what was drawn
    assert (once[:int(border)] == 1).all() and (once[:, -int(border):] == 1).all()


@forks
def test_a_figure_that_cannot_be_drawn_on_a_helper_is_skipped_with_a_warning(tmp_path):
    def broken():
        raise ValueError("no data")
    plan = [("a", _square(0.1)), ("broken", broken), ("b", _square(0.2)), ("c", _square(0.3))]
    with pytest.warns(RuntimeWarning, match="'broken' skipped: no data"):
        with Drawing(plan, tmp_path, DPI, processes=2) as drawing:
            drawn = drawing.finish()
    assert list(drawn) == ["a", "b", "c"]


@forks
def test_an_error_on_a_helper_is_raised_in_the_caller(tmp_path):
    parent = os.getpid()

    def wrong():
        raise TypeError("a bug") if os.getpid() != parent else TypeError("a bug, here")
    plan = [("a", _square()), ("wrong", wrong)] + [(f"s{i}", _square(i / 10)) for i in range(6)]
    with pytest.raises(TypeError, match="a bug"):
        with Drawing(plan, tmp_path, DPI, processes=2) as drawing:
            drawing.finish()


@forks
def test_the_figures_of_a_helper_that_dies_are_drawn_here(tmp_path):
    parent = os.getpid()

    def fatal():
        if os.getpid() != parent:
            os._exit(3)
        return _square(0.9)()
    plan = [("fatal", fatal)] + [(f"s{i}", _square(i / 10)) for i in range(4)]
    with Drawing(plan, tmp_path, DPI, processes=2) as drawing:
        drawn = drawing.finish()
    assert list(drawn) == [name for name, _ in plan]
    assert all(path.is_file() for path in drawn.values())


def test_default_processes_uses_the_cores_within_limits():
    assert default_processes(1) == 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    expected = min(cores, 4) if sys.platform.startswith("linux") else 1
    assert default_processes(100) == max(1, expected)


@forks
def test_an_error_here_lets_the_helpers_finish_their_figure_and_leaves_no_half_written_file(tmp_path):
    plan = [(f"s{i}", _square(i / 10)) for i in range(6)]
    with pytest.raises(RuntimeError, match="stop"):
        with Drawing(plan, tmp_path, DPI, processes=2):
            raise RuntimeError("stop")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_drawing_leaves_the_collector_as_it_found_it(tmp_path):
    import gc

    plan = [("a", _square())]
    assert gc.get_freeze_count() == 0
    with Drawing(plan, tmp_path, DPI) as drawing:
        assert gc.get_freeze_count() > 0  # the caller's objects are not walked while figures are drawn
        drawing.finish()
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller with its own policy keeps it
    try:
        frozen = gc.get_freeze_count()
        with Drawing(plan, tmp_path, DPI) as drawing:
            drawing.finish()
        assert gc.get_freeze_count() > frozen // 2  # not unfrozen (frozen objects that die leave the count)
    finally:
        gc.unfreeze()


@forks
def test_without_a_process_to_fork_this_one_draws_everything(tmp_path, monkeypatch):
    import multiprocessing.process

    def refuse(self):
        raise OSError("Resource temporarily unavailable")
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    plan = [(f"s{i}", _square(i / 10)) for i in range(3)]
    with Drawing(plan, tmp_path, DPI, processes=3) as drawing:
        assert list(drawing.finish()) == ["s0", "s1", "s2"]
