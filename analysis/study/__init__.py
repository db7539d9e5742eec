"""The study: a config, its data, its runs as tasks (local processes or Dask), and the locked folder they fill.

Calls :mod:`analysis.measures`; never draws (the report reads the folder afterwards).
"""
from .config import StudyConfig
from .runspec import RunSpec
from .prepare import StudyData, prepare_data
from .select import simplest_adequate
from .tables import summarize_runs, summary_table
from .runner import StudyResult, run_study

__all__ = ["RunSpec", "StudyConfig", "StudyData", "StudyResult", "prepare_data", "run_study", "simplest_adequate",
           "summarize_runs", "summary_table"]
