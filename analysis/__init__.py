"""analysis: measure what an autoencoder learned or stored; sweep, select, audit, plot and report."""
import importlib

from .reconstruction import pca_as_autoencoder, pca_baseline, reconstruct_with, reconstruction_errors
from .errors import compare_to_pca, measure_split, pair_metrics, sample_errors, seen_unseen
from .memorization import membership_auc, memorization_scores, noise_memorization, tpr_at_fpr
from .divergence import degrees_of_freedom
from .risk import nm_reference, sure
from .intervals import auc_interval, clopper_pearson, mean_interval, tpr_at_fpr_interval
from .reference import memorization_from_references, reference_masks, train_references
from .audit import membership_audit
from .dynamics import clean_minimum, double_descent, log_epochs, measure_curves, training_curves
from .landscape import attractor_fraction, attractors, loss_slice
from .latent import embed_latents, knn_probe, trustworthiness
from .config import RunSpec, StudyConfig
from .select import simplest_adequate
from .tables import summarize_runs, summary_table
from .verdict import verdict
from .study import StudyResult, run_study

# Drawing needs matplotlib and seaborn (seconds to import): loaded on first use, so the study's worker
# processes, which only train and measure, never pay for them.
_DRAWING = {name: "plots" for name in (
    "plot_capacity", "plot_error_distributions", "plot_gap", "plot_latent", "plot_learning_curves",
    "plot_membership", "plot_memorization", "plot_memorization_scores", "plot_reconstructions")}
_DRAWING.update({name: "plots_audit" for name in (
    "plot_audit_roc", "plot_memorization_distribution", "plot_most_memorized")})
_DRAWING.update({name: "plots_dynamics" for name in (
    "plot_attractors", "plot_double_descent", "plot_loss_slice", "plot_memorization_curves")})
_DRAWING.update(draw_figures="report", write_report="report")


def __getattr__(name):
    if name in _DRAWING:
        return getattr(importlib.import_module(f".{_DRAWING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RunSpec", "StudyConfig", "StudyResult", "attractor_fraction", "attractors", "auc_interval", "clean_minimum",
    "clopper_pearson", "compare_to_pca", "degrees_of_freedom", "double_descent", "embed_latents", "knn_probe",
    "log_epochs", "loss_slice", "mean_interval", "measure_curves", "measure_split", "membership_audit",
    "membership_auc", "memorization_from_references", "memorization_scores", "nm_reference", "noise_memorization",
    "pair_metrics", "pca_as_autoencoder", "pca_baseline", "reconstruct_with", "reconstruction_errors",
    "reference_masks", "run_study", "sample_errors", "seen_unseen", "simplest_adequate", "summarize_runs",
    "summary_table", "sure", "tpr_at_fpr", "tpr_at_fpr_interval", "train_references", "training_curves",
    "trustworthiness", "verdict", *_DRAWING,
]
