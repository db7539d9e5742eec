"""Before a study does any work: the folder locked first, then every check that can fail, and nothing left behind.

:func:`claim` takes the folder's lock before anything else (a second study on the folder is refused at once, before
any data is read); should a later check fail, the folders it created for the lock are removed again, so a refused
study leaves nothing behind. :func:`check_names` and :func:`check_sizes` refuse what would otherwise fail halfway:
run ids or paths too long for the file system, models too large to build or train on this machine.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from autoenc import Autoencoder
from autoenc.io import MAX_DEPTH, MAX_PARAMETERS

from .lock import LOCK_FILE, StudyLock

__all__ = ["check_names", "check_sizes", "claim"]

NAME_MAX = 255  # bytes in one path component on every common file system
PATH_MAX = 4096
_LONGEST_FILE = ".weights.safetensors.XXXXXXXX.tmp"  # the longest name written inside a run folder
BYTES_PER_PARAMETER = 16  # float32 weights, gradients and Adam's two moments


def _memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def _specs(config, grow_depth):
    """Every run the study may make (the grow search's widest and deepest included), PCA's too."""
    specs = list(config.runs()) + list(config.pca_runs())
    if config.search == "grow":
        from .runspec import RunSpec

        depth = max(config.depths) if max(config.depths) > 1 else grow_depth
        specs += [RunSpec(k, (max(config.widths),) * depth, s, kind=config.architecture)
                  for k in config.bottlenecks for s in config.seeds]
    return specs


def check_names(config, out_dir, grow_depth=3):
    """Refuse run ids and paths the file system cannot hold (ENAMETOOLONG halfway through a study otherwise)."""
    root = Path(os.path.abspath(out_dir))
    long = [part for part in root.parts if len(os.fsencode(part)) > NAME_MAX]
    if long:
        raise ValueError(f"the study folder's name {long[0][:40]!r}... is {len(os.fsencode(long[0]))} bytes, more than "
                         f"the {NAME_MAX} a file name may have; choose a shorter --out")
    runs = [s.run for s in _specs(config, grow_depth)]
    longest = max(runs, key=len)
    if len(longest) > NAME_MAX:
        raise ValueError(f"run ids such as {longest[:40]}... are {len(longest)} characters, more than the "
                         f"{NAME_MAX} a file name may have; use fewer --depths or shorter --widths")
    deepest = root / "models" / longest / _LONGEST_FILE
    if len(os.fsencode(str(deepest))) > PATH_MAX:
        raise ValueError(f"paths in the study folder would be {len(str(deepest))} characters, more than the "
                         f"{PATH_MAX} a path may have; choose a shorter --out")


def _n_parameters(spec, data, config):
    mc = spec.model_config(data.n_features, config.activation, image_shape=data.image_shape,
                           kernel_size=config.kernel_size)
    if mc.kind == "mlp" or spec.model == "pca":  # counted, not built: a huge width costs nothing here
        widths = [mc.input_dim, *mc.hidden, mc.bottleneck]
        return sum(2 * a * b + a + b for a, b in zip(widths[:-1], widths[1:]))
    import torch

    with torch.device("meta"):  # shapes only: nothing is allocated
        return Autoencoder(mc).n_parameters


def check_sizes(config, data, grow_depth=3):
    """Refuse models too deep or too large to save, or to train on this machine (with one model per seed in a
    batched group), before the folder holds anything."""
    memory = _memory_bytes()
    seen = set()
    for spec in _specs(config, grow_depth):
        if spec.architecture in seen:
            continue
        seen.add(spec.architecture)
        if spec.depth > MAX_DEPTH:
            raise ValueError(f"{spec.architecture} has {spec.depth} hidden layers a side, more than a saved model "
                             f"may have ({MAX_DEPTH}); use fewer --depths")
        n = _n_parameters(spec, data, config)
        if n > MAX_PARAMETERS:
            raise ValueError(f"{spec.architecture} has {n:,} parameters on {data.n_features} features, more than a "
                             f"saved model may have ({MAX_PARAMETERS:,}); use smaller --widths or --depths")
        need = n * BYTES_PER_PARAMETER * len(config.seeds)
        if memory is not None and need > memory:
            raise ValueError(f"{spec.architecture} needs about {need / 2**30:.3g} GiB to train its {len(config.seeds)} "
                             f"seed(s), more than this machine's {memory / 2**30:.3g} GiB; use smaller --widths")


@contextlib.contextmanager
def claim(out_dir):
    """Hold the study folder's lock; if the block fails before the folder holds anything but the lock, remove the
    folders created for it (a refused study leaves nothing behind)."""
    folder = Path(out_dir)
    created, parent = [], folder
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    lock = StudyLock(folder).acquire()
    try:
        yield lock
    except BaseException:
        bare = _bare(created)
        if bare:  # unlinked while held: a study starting now makes its own lock file, and its folder stays
            with contextlib.suppress(OSError):
                (folder / LOCK_FILE).unlink()
        lock.release()
        for path in created if bare else ():  # the folder, then the parents made for it, while empty
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    lock.release()


def _bare(created):
    """Whether the folder was created here and holds nothing but its lock file."""
    try:
        return bool(created) and {p.name for p in created[0].iterdir()} <= {LOCK_FILE}
    except OSError:
        return False
