"""The command lines of autoenc: ``autoenc-study``, ``autoenc-train`` and ``autoenc-plot`` (also run as
``python scripts/study.py`` and so on). Each module's ``main(argv=None)`` returns the exit status."""
