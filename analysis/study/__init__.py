"""The study: a config, its data, its runs as tasks (local processes or Dask), and the locked folder they fill.

Calls :mod:`analysis.measures`; never draws (the report reads the folder afterwards). Each name loads with its
module on first use: a worker that imports the training code imports neither the runner nor the selection.
"""
from autoenc._lazy import lazy_exports as _lazy_exports

__all__ = ["RunSpec", "StudyConfig", "StudyData", "StudyResult", "prepare_data", "run_study", "simplest_adequate",
           "summarize_runs", "summary_table"]

__getattr__, __dir__ = _lazy_exports(__name__, {
    ".config": ("StudyConfig",),
    ".runspec": ("RunSpec",),
    ".prepare": ("StudyData", "prepare_data"),
    ".select": ("simplest_adequate",),
    ".tables": ("summarize_runs", "summary_table"),
    ".runner": ("StudyResult", "run_study"),
})
