"""analysis: measure what an autoencoder learned or stored; sweep, select, plot and report."""
from .errors import compare_to_pca, pca_baseline, reconstruct_with, reconstruction_errors, sample_errors, seen_unseen
from .memorization import membership_auc, memorization_scores, noise_memorization, tpr_at_fpr
from .latent import embed_latents, knn_probe, trustworthiness
from .config import RunSpec, StudyConfig
from .select import simplest_adequate, summarize_runs
from .study import StudyResult, run_study
from .plots import (plot_capacity, plot_error_distributions, plot_gap, plot_latent, plot_learning_curves,
                    plot_membership, plot_memorization, plot_memorization_scores, plot_reconstructions)
from .report import draw_figures, summary_table, write_report

__all__ = [
    "RunSpec", "StudyConfig", "StudyResult", "compare_to_pca", "draw_figures", "embed_latents", "knn_probe",
    "membership_auc", "memorization_scores", "noise_memorization", "pca_baseline", "plot_capacity",
    "plot_error_distributions", "plot_gap", "plot_latent", "plot_learning_curves", "plot_membership",
    "plot_memorization", "plot_memorization_scores", "plot_reconstructions", "reconstruct_with",
    "reconstruction_errors", "run_study", "sample_errors", "seen_unseen", "simplest_adequate", "summarize_runs",
    "summary_table", "tpr_at_fpr", "trustworthiness", "write_report",
]
