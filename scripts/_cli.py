"""What every command line shares: one-line errors with exit status 2, Ctrl-C with status 130."""
from __future__ import annotations

import argparse
from argparse import RawDescriptionHelpFormatter  # noqa: F401  (re-exported for the scripts)
import sys


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (and exit status 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def run(main, argv=None):
    """Call ``main(argv)``; turn a user's mistake into one line on stderr and exit status 2, no traceback."""
    try:
        return main(argv)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def positive_int_list(text):
    """argparse type for '2,4,8' or '2 4 8' lists."""
    return [int(v) for v in text.replace(",", " ").split()]
