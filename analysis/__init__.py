"""analysis: measure what an autoencoder learned or stored; sweep, select, audit, plot and report.

Three layers, each importing only the ones below it: :mod:`analysis.measures` (arrays in, frames out),
:mod:`analysis.study` (a config's runs into a folder) and :mod:`analysis.report` (a folder into words, figures and a
page). Every public name of the three is importable from here.
"""
from .measures import (attractor_fraction, attractors, auc_interval, cca_similarity, clean_minimum, clopper_pearson,
                       compare_to_pca, degrees_of_freedom, double_descent, embed_latents, intrinsic_dimension,
                       knn_probe, latent_membership, linear_cka, log_epochs, loss_slice, mean_interval,
                       measure_curves, measure_split, membership_auc, membership_audit,
                       memorization_from_references, memorization_scores, nm_reference, noise_memorization,
                       null_level, pair_metrics, pca_as_autoencoder, pca_baseline, permutation_null,
                       principal_angles, reconstruct_with, reconstruction_errors, reference_masks, sample_errors,
                       seen_unseen, sure, tpr_at_fpr, tpr_at_fpr_interval, train_references, training_curves,
                       trustworthiness)
from .study import RunSpec, StudyConfig, StudyResult, simplest_adequate, summarize_runs, summary_table
from .report import verdict
from .report.pipeline import run_study  # the study, then its report (the study layer never draws)
from . import report as _report

# Drawing needs matplotlib and seaborn (seconds to import): loaded on first use, so the study's worker
# processes, which only train and measure, never pay for them.
_DRAWING = tuple(_report._DRAWING)


def __getattr__(name):
    if name in _DRAWING:
        return getattr(_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RunSpec", "StudyConfig", "StudyResult", "attractor_fraction", "attractors", "auc_interval", "cca_similarity",
    "clean_minimum", "clopper_pearson", "compare_to_pca", "degrees_of_freedom", "double_descent", "embed_latents",
    "intrinsic_dimension", "knn_probe", "latent_membership", "linear_cka", "log_epochs", "loss_slice",
    "mean_interval", "measure_curves", "measure_split", "membership_auc", "membership_audit",
    "memorization_from_references", "memorization_scores", "nm_reference", "noise_memorization", "null_level",
    "pair_metrics", "pca_as_autoencoder", "pca_baseline", "permutation_null", "principal_angles",
    "reconstruct_with", "reconstruction_errors", "reference_masks", "run_study", "sample_errors", "seen_unseen",
    "simplest_adequate", "summarize_runs", "summary_table", "sure", "tpr_at_fpr", "tpr_at_fpr_interval",
    "train_references", "training_curves", "trustworthiness", "verdict", *_DRAWING,
]
