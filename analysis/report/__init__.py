"""The report: reads a study folder and says what it found, in words, tables, figures and one HTML page.

Never imports torch. The words (:func:`verdict`, :func:`answer`, :func:`study_summary`) load without matplotlib;
drawing needs matplotlib and seaborn (seconds to import), so its names load on first use.
"""
import importlib

from .evidence import verdict_inputs
from .verdict import answer, key_numbers, verdict
from .summary import markdown_table, study_summary

_DRAWING = {name: "plots" for name in (
    "plot_capacity", "plot_gap", "plot_memorization", "plot_membership")}
_DRAWING.update({name: "plots_runs" for name in (
    "plot_error_distributions", "plot_latent", "plot_learning_curves", "plot_memorization_scores",
    "plot_reconstructions")})
_DRAWING.update({name: "plots_audit" for name in (
    "plot_audit_roc", "plot_memorization_distribution", "plot_most_memorized")})
_DRAWING.update({name: "plots_dynamics" for name in (
    "plot_attractors", "plot_double_descent", "plot_loss_slice", "plot_memorization_curves")})
_DRAWING.update({name: "plots_latent" for name in (
    "plot_code_dimension", "plot_code_membership", "plot_code_similarity", "plot_decoded_paths")})
_DRAWING.update(draw_figures="html", write_report="html", compare_studies="compare")


def __getattr__(name):
    if name in _DRAWING:
        return getattr(importlib.import_module(f".{_DRAWING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["answer", "key_numbers", "markdown_table", "study_summary", "verdict", "verdict_inputs", *_DRAWING]
