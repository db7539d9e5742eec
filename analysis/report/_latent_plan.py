"""The latent figures of a study folder: which of them its files allow, and how each is made (``latent.csv``,
``paths.npz``); :mod:`.html` puts them beside the latent maps."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .summary import _read_csv
from ._plotstyle import single as _single

__all__ = ["latent_plan", "latent_signal"]

# paths.npz: these keys describe the pairs; every "<label>: <run>" key is one model's decoded lines.
_PATHS_RESERVED = ("pairs", "alpha", "image_shape", "clean")


def _similarity(latent):
    from .plots_latent import plot_code_similarity

    fig, (left, right) = plt.subplots(1, 2, figsize=(13.0, 4.6))
    plot_code_similarity(latent, measure="cka", ax=left)
    plot_code_similarity(latent, measure="cca", ax=right)
    left.get_legend().remove()  # one legend, on the right, serves both panels
    fig.tight_layout()
    return fig


def _paths(path):
    from .plots_latent import plot_decoded_paths

    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    models = {k: v for k, v in arrays.items() if k not in _PATHS_RESERVED and np.ndim(v) == 3}
    return plot_decoded_paths(models, tuple(int(s) for s in arrays["image_shape"]), ends=arrays.get("clean"))


def latent_plan(folder):
    """(name, make_figure) for the latent measures' figures whose inputs are in ``folder``."""
    from . import plots_latent

    plan = []
    latent = _read_csv(folder / "latent.csv", dtype={"run": str})
    if latent is not None and (latent["model"] == "autoencoder").any():
        if latent[["cka_pca", "cka_seeds"]].notna().any().any():
            plan.append(("code_similarity", lambda: _similarity(latent)))
        if latent["latent_auc"].notna().any():
            plan.append(("code_membership", _single(lambda ax: plots_latent.plot_code_membership(latent, ax=ax),
                                                    (8.0, 4.6))))
        if latent["intrinsic_dim"].notna().any():
            plan.append(("code_dimension", _single(lambda ax: plots_latent.plot_code_dimension(latent, ax=ax),
                                                   (7.5, 4.6))))
    if (folder / "paths.npz").exists():
        plan.append(("decoded_paths", lambda: _paths(folder / "paths.npz")))
    return plan


def latent_signal(folder):
    """What the data's intrinsic dimension in ``latent.csv`` is of: ``clean``, ``inputs``, or None."""
    latent = _read_csv(folder / "latent.csv", dtype={"run": str})
    if latent is None or "data_signal" not in latent.columns or latent["data_signal"].isna().all():
        return None
    return str(latent["data_signal"].dropna().iloc[0])
