"""analysis: measure what an autoencoder learned or stored; sweep, select, plot and report."""
import importlib

from .reconstruction import pca_as_autoencoder, pca_baseline, reconstruct_with, reconstruction_errors
from .errors import compare_to_pca, sample_errors, seen_unseen
from .memorization import membership_auc, memorization_scores, noise_memorization, tpr_at_fpr
from .latent import embed_latents, knn_probe, trustworthiness
from .config import RunSpec, StudyConfig
from .select import simplest_adequate
from .tables import summarize_runs, summary_table
from .study import StudyResult, run_study

# Drawing needs matplotlib and seaborn (seconds to import): loaded on first use, so the study's worker
# processes, which only train and measure, never pay for them.
_DRAWING = {name: "plots" for name in (
    "plot_capacity", "plot_error_distributions", "plot_gap", "plot_latent", "plot_learning_curves",
    "plot_membership", "plot_memorization", "plot_memorization_scores", "plot_reconstructions")}
_DRAWING.update(draw_figures="report", write_report="report")


def __getattr__(name):
    if name in _DRAWING:
        return getattr(importlib.import_module(f".{_DRAWING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RunSpec", "StudyConfig", "StudyResult", "compare_to_pca", "embed_latents", "knn_probe", "membership_auc",
    "memorization_scores", "noise_memorization", "pca_as_autoencoder", "pca_baseline", "reconstruct_with", "reconstruction_errors",
    "run_study", "sample_errors", "seen_unseen", "simplest_adequate", "summarize_runs", "summary_table",
    "tpr_at_fpr",
    "trustworthiness", *_DRAWING,
]
