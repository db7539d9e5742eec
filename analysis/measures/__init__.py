"""Measures: arrays and models in, numbers and tidy DataFrames out; nothing here reads or writes files.

Errors seen and unseen against PCA, noise memorization and membership inference, degrees of freedom and SURE,
intervals, reference models and their audit, curves over training, the loss landscape and the latent space.
Each name loads with its module on first use: a study's worker imports only the measures its tasks take.
"""
from autoenc._lazy import lazy_exports as _lazy_exports

__all__ = [
    "attractor_fraction", "attractors", "auc_interval", "cca_similarity", "clean_minimum", "clopper_pearson",
    "compare_to_pca", "degrees_of_freedom", "double_descent", "embed_latents", "intrinsic_dimension", "knn_probe",
    "latent_membership", "linear_cka", "log_epochs", "loss_slice", "mean_interval", "measure_curves",
    "measure_split", "membership_auc", "membership_audit", "memorization_from_references", "memorization_scores",
    "nm_reference", "noise_memorization", "null_level", "pair_metrics", "pca_as_autoencoder", "pca_baseline",
    "permutation_null", "principal_angles", "reconstruct_with", "reconstruction_errors", "reference_masks",
    "sample_errors", "seen_unseen", "sure", "tpr_at_fpr", "tpr_at_fpr_interval", "train_references",
    "training_curves", "trustworthiness", "unfitted_pca",
]

__getattr__, __dir__ = _lazy_exports(__name__, {
    ".reconstruction": ("pca_as_autoencoder", "pca_baseline", "reconstruct_with", "reconstruction_errors",
                        "unfitted_pca"),
    ".errors": ("compare_to_pca", "measure_split", "pair_metrics", "sample_errors", "seen_unseen"),
    ".memorization": ("membership_auc", "memorization_scores", "noise_memorization", "tpr_at_fpr"),
    ".divergence": ("degrees_of_freedom",),
    ".risk": ("nm_reference", "sure"),
    ".intervals": ("auc_interval", "clopper_pearson", "mean_interval", "tpr_at_fpr_interval"),
    ".reference": ("memorization_from_references", "reference_masks", "train_references"),
    ".audit": ("membership_audit",),
    ".dynamics": ("clean_minimum", "double_descent", "log_epochs", "measure_curves", "training_curves"),
    ".landscape": ("attractor_fraction", "attractors", "loss_slice"),
    ".latent": ("embed_latents", "knn_probe", "trustworthiness"),
    ".similarity": ("cca_similarity", "intrinsic_dimension", "latent_membership", "linear_cka", "null_level",
                    "permutation_null", "principal_angles"),
})
