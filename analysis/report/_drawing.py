"""Turning a report's figure plan into PNG files: each figure rendered once, the plan shared among processes.

A plan is a list of ``(name, make)``: ``make()`` returns a new figure. Figures are independent files, so where the
platform forks safely the plan is shared out to forked helper processes, which pull the next figure from a shared
counter as they finish one (figures take 0.05 to 0.5 s each). A forked helper inherits what this process has
imported and read, so it starts in milliseconds where a fresh interpreter would spend seconds importing matplotlib,
pandas and (through :mod:`analysis`) torch. Forking a process that has threads (torch's, OpenMP's, a Dask client's)
is safe here because a helper only draws with matplotlib, writes its files and leaves with ``os._exit``: it never
touches those threads' state.
"""
from __future__ import annotations

import gc
import io
import multiprocessing
import os
import sys
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import PIL.PngImagePlugin
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from matplotlib.transforms import Bbox

from autoenc.io import atomic_write

__all__ = ["Drawing", "default_processes", "save_png"]

FIGURES_DIR = "figures"
MAX_PROCESSES = 4  # past a few, the slowest figure bounds the time and each helper only adds memory
_MARGIN = 3.0  # inches of canvas around a figure for what reaches beyond it (legends beside the axes)
_GRACE = 10.0  # seconds a helper has to finish its figure when the caller stops early


def default_processes(n_figures):
    """How many processes draw ``n_figures``: the usable cores, at most :data:`MAX_PROCESSES`; 1 without fork.

    Only Linux forks a process with numerical libraries loaded safely (macOS's system frameworks do not survive a
    fork), and a daemonic process may not start helpers.
    """
    if (not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods()
            or multiprocessing.current_process().daemon):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_PROCESSES, n_figures))


def save_png(fig, path, dpi):
    """Write ``fig`` to ``path`` as ``savefig(path, dpi=dpi, bbox_inches="tight")`` does, but rendering it once.

    ``bbox_inches="tight"`` lays the figure out twice: once to measure its artists, once to render them. Here the
    figure is rendered once on a canvas with a margin around it (room for legends beside the axes), then cropped to
    what it drew plus ``savefig.pad_inches``: the look of the tight PNG, give or take a pixel of white border. An
    opaque figure is stored without its alpha channel. Content beyond the margin falls back to ``savefig``.
    """
    if isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine):
        fig.set_layout_engine(None)  # what fig.tight_layout() leaves: it would make savefig lay out the figure again
    fig.set_dpi(dpi)
    width, height = fig.get_size_inches()
    margin = round(_MARGIN * dpi) / dpi  # whole pixels: the figure sits on the pixel grid as savefig puts it
    fig.savefig(io.BytesIO(), format="rgba", dpi=dpi,
                bbox_inches=Bbox.from_extents(-margin, -margin, width + margin, height + margin))
    pixels = np.asarray(fig.canvas.renderer.buffer_rgba())  # the canvas just drawn, top row first
    colors = pixels.view(np.uint32)[..., 0]
    ink = colors != colors[0, 0]  # the corner is background: nothing reaches that far
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows) or rows[0] == 0 or columns[0] == 0 or rows[-1] == len(ink) - 1 or columns[-1] == ink.shape[1] - 1:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    pad = round(matplotlib.rcParams["savefig.pad_inches"] * dpi)
    crop = pixels[max(rows[0] - pad, 0):rows[-1] + 1 + pad, max(columns[0] - pad, 0):columns[-1] + 1 + pad]
    image = PIL.Image.fromarray(crop[..., :3] if (crop[..., 3] == 255).all() else crop)
    info = PIL.PngImagePlugin.PngInfo()
    info.add_text("Software", f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/")  # as savefig
    return atomic_write(path, lambda tmp: image.save(tmp, format="png", dpi=(dpi, dpi), pnginfo=info))


def _draw(name, make, folder, dpi):
    """Draw and save one figure: its path, or None (with a warning) when its inputs cannot be drawn."""
    before = set(plt.get_fignums())
    try:
        return save_png(make(), folder / FIGURES_DIR / f"{name}.png", dpi)
    except (ValueError, KeyError) as exc:  # inputs present but unusable: report the rest
        warnings.warn(f"figure {name!r} skipped: {exc}", RuntimeWarning, stacklevel=4)
        return None
    finally:
        for num in set(plt.get_fignums()) - before:  # ours only, even when drawing failed halfway
            plt.close(num)


def _claim(counter, n):
    """The next figure nobody has started, or None."""
    with counter.get_lock():
        i = counter.value
        counter.value = i + 1
    return i if i < n else None


def _helper(plan, folder, dpi, counter, conn):
    """A forked helper's loop: draw figures until none is left, reporting each, then its warnings."""
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # this process's filters decide, once the warnings are re-issued there
        try:
            while (i := _claim(counter, len(plan))) is not None:
                conn.send(("drawn", i, _draw(*plan[i], folder, dpi)))
        except Exception as exc:  # raised in the caller, as drawing on one process would
            error = exc
    conn.send(("warnings", None, [(w.category, str(w.message)) for w in caught]))
    if error is not None:
        try:
            conn.send(("error", None, error))
        except Exception:  # an exception that does not pickle still reaches the caller, as text
            conn.send(("error", None, RuntimeError(f"{type(error).__name__}: {error}")))
    conn.close()


class Drawing:
    """Draw a figure plan into ``folder/figures`` on ``processes`` processes: this one and forked helpers.

    The helpers start on entering the ``with`` block; this process may do other work, then calls :meth:`finish`,
    which draws what is left here and returns name -> path in plan order. Leaving the block stops the helpers.
    """

    def __init__(self, plan, folder, dpi, processes=1):
        self.plan, self.folder, self.dpi = list(plan), folder, dpi
        self.processes = max(1, min(int(processes), len(self.plan)))
        self._helpers = []

    def __enter__(self):
        # The collector need not walk the objects the caller holds (torch, the study's tables; a full collection of
        # them takes a quarter of a second, and would copy every page it walks in a forked helper). A caller that
        # freezes objects itself keeps its own policy.
        self._froze = gc.get_freeze_count() == 0
        if self._froze:
            gc.freeze()
        if self.processes > 1:
            context = multiprocessing.get_context("fork")
            self._counter = context.Value("i", 0)
            with warnings.catch_warnings():
                # Python 3.12+ warns of any fork in a process with threads; see the module's note on why it is safe
                warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
                for _ in range(self.processes - 1):
                    receive, send = context.Pipe(duplex=False)
                    process = context.Process(target=_helper, args=(self.plan, self.folder, self.dpi,
                                                                     self._counter, send), daemon=True)
                    try:
                        process.start()
                    except OSError:  # no process to be had (limits, memory): those started and this one draw
                        receive.close()
                        send.close()
                        break
                    send.close()  # this process keeps the reading end only: end of file once the helper is gone
                    self._helpers.append((process, receive))
        return self

    def __exit__(self, *exc):
        if self._helpers:  # left early (an error here): nothing more to claim, each helper ends after its figure
            with self._counter.get_lock():
                self._counter.value = len(self.plan)
        for process, receive in self._helpers:
            process.join(timeout=_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
            receive.close()
        self._helpers = []
        if self._froze:
            gc.unfreeze()

    def finish(self):
        """Draw the figures nobody has claimed here, gather the helpers' and return name -> path (drawn ones)."""
        paths = {}
        if not self._helpers:
            for i, (name, make) in enumerate(self.plan):
                paths[i] = _draw(name, make, self.folder, self.dpi)
        else:
            while (i := _claim(self._counter, len(self.plan))) is not None:
                paths[i] = _draw(*self.plan[i], self.folder, self.dpi)
            error = self._gather(paths)
            for i in sorted(set(range(len(self.plan))) - set(paths)):  # a helper died before reporting these
                paths[i] = _draw(*self.plan[i], self.folder, self.dpi)
            if error is not None:
                raise error
        return {self.plan[i][0]: paths[i] for i in range(len(self.plan)) if paths[i] is not None}

    def _gather(self, paths):
        error = None
        for process, receive in self._helpers:
            while True:
                try:
                    kind, i, value = receive.recv()
                except EOFError:
                    break
                if kind == "drawn":
                    paths[i] = value
                elif kind == "warnings":
                    for category, message in value:
                        warnings.warn(message, category, stacklevel=4)
                else:
                    error = error or value
            process.join()
        return error
