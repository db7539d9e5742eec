"""The command lines of autoenc: ``autoenc-study``, ``autoenc-train`` and ``autoenc-plot`` (also run as
``python scripts/study.py`` and so on). Each module's ``main(argv=None)`` returns the exit status."""


def study_main(argv=None):
    """``autoenc-study``: its local workers start first (:mod:`._early`), then the command imports and runs; the
    process leaves with its exit status (:func:`._early.leave`)."""
    import sys

    from ._early import leave, start_workers

    early = start_workers(sys.argv[1:] if argv is None else list(argv))
    from .study import main

    return leave(main(argv), early, whole_process=argv is None)  # None: the console's own command line
