"""analysis: measure what an autoencoder learned or stored; sweep, select, audit, plot and report.

Three layers, each importing only the ones below it: :mod:`analysis.measures` (arrays in, frames out),
:mod:`analysis.study` (a config's runs into a folder) and :mod:`analysis.report` (a folder into words, figures and a
page). Every public name of the three is importable from here, and loads with its module on first use: a study's
worker process, which imports ``analysis.study.training``, gets neither the report nor the measures it never takes.
"""
from autoenc._lazy import lazy_exports as _lazy_exports

# Drawing needs matplotlib and seaborn (seconds to import): analysis.report loads these names on first use too
# (its ``_DRAWING``; written out here so that importing analysis imports no report module).
_DRAWING = (
    "plot_capacity", "plot_gap", "plot_memorization", "plot_membership", "plot_error_distributions", "plot_latent",
    "plot_learning_curves", "plot_memorization_scores", "plot_reconstructions", "plot_audit_roc",
    "plot_memorization_distribution", "plot_most_memorized", "plot_attractors", "plot_double_descent",
    "plot_loss_slice", "plot_memorization_curves", "plot_code_dimension", "plot_code_membership",
    "plot_code_similarity", "plot_decoded_paths", "draw_figures", "write_report", "compare_studies",
)

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

__getattr__, __dir__ = _lazy_exports(__name__, {
    ".measures": (
        "attractor_fraction", "attractors", "auc_interval", "cca_similarity", "clean_minimum", "clopper_pearson",
        "compare_to_pca", "degrees_of_freedom", "double_descent", "embed_latents", "intrinsic_dimension",
        "knn_probe", "latent_membership", "linear_cka", "log_epochs", "loss_slice", "mean_interval",
        "measure_curves", "measure_split", "membership_auc", "membership_audit", "memorization_from_references",
        "memorization_scores", "nm_reference", "noise_memorization", "null_level", "pair_metrics",
        "pca_as_autoencoder", "pca_baseline", "permutation_null", "principal_angles", "reconstruct_with",
        "reconstruction_errors", "reference_masks", "sample_errors", "seen_unseen", "sure", "tpr_at_fpr",
        "tpr_at_fpr_interval", "train_references", "training_curves", "trustworthiness"),
    ".study": ("RunSpec", "StudyConfig", "StudyResult", "simplest_adequate", "summarize_runs", "summary_table"),
    ".report": ("verdict", *_DRAWING),
    ".report.pipeline": ("run_study",),  # the study, then its report (the study layer never draws)
})
