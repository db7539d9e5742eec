"""``run_study`` as a user calls it from ``analysis``: the study, then its report.

The study layer never draws (it sits below the report); this is where the two meet, so that
``analysis.run_study(config, out)`` writes ``report.html`` as the command line does.
"""
from ..study import run_study as _run_study_only

__all__ = ["run_study"]


def run_study(config, out_dir, *, report=True, **options):
    """Run (or resume) the study ``config`` into ``out_dir``, then write its report.

    The same as :func:`analysis.study.run_study`, whose other keyword arguments it passes on, except for
    ``report``.

    Parameters
    ----------
    config : StudyConfig
    out_dir : str or PathLike
    report : bool or callable, default True
        True draws the figures and writes ``report.html`` and ``summary.md``
        (:func:`analysis.report.write_report`); False writes no report; a callable is called as ``report(folder)``.
    **options
        ``n_jobs``, ``backend``, ``scheduler``, ``progress``, ``on_progress``, ``timeout``.

    Returns
    -------
    StudyResult

    Examples
    --------
    >>> result = run_study(StudyConfig(widths=(16, 64), seeds=(0,)), "runs/small")  # doctest: +SKIP
    >>> (result.path / "report.html").is_file()  # doctest: +SKIP
    True
    """
    if report is True:
        from .html import write_report  # matplotlib and seaborn load here, only when a report is drawn

        report = write_report
    return _run_study_only(config, out_dir, report=report, **options)
