"""What every command line shares: help with defaults, one-line errors with exit status 2, Ctrl-C with 130 and
SIGTERM with 143 (the same clean stop)."""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks (its examples) and fits the options to a wide terminal."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (and exit status 2) instead of the usage block."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: the same clean stop, with exit status 143."""


def interrupted_status(exc):
    """The exit status of a stop: 143 for SIGTERM (128 + 15), 130 for Ctrl-C (128 + 2)."""
    return 143 if isinstance(exc, Terminated) else 130


@contextlib.contextmanager
def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def stop(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(main, argv=None):
    """Call ``main(argv)``; turn a user's mistake into one line on stderr and exit status 2, no traceback.

    Warnings print as ``warning: <message>`` lines, without the source line Python would show. SIGTERM stops the
    command like Ctrl-C (exit status 143 instead of 130).
    """
    with warnings.catch_warnings(), _sigterm_as_interrupt():
        warnings.showwarning = _show_warning
        try:
            return main(argv)
        except (ValueError, TypeError, RuntimeError, ImportError) as exc:  # mistakes, a busy folder, a cluster
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return 2
        except OSError as exc:  # disk full, read-only folder, a file where a folder should be: the OS's words
            where = f": {exc.filename}" if exc.filename else ""
            print(f"error: {exc.strerror or one_line(exc)}{where}", file=sys.stderr)
            return 2
        except (MemoryError, ArithmeticError) as exc:  # an allocation or a number too large for this machine
            what = "out of memory" if isinstance(exc, MemoryError) else "numbers out of range"
            print(f"error: {what}: {one_line(exc) or type(exc).__name__}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            print("\ninterrupted", file=sys.stderr)
            return interrupted_status(exc)


def one_line(message):
    """``message`` (any object) as a single line: its lines joined with '; '."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {one_line(message)}", file=sys.stderr if file is None else file, flush=True)


def int_list(text):
    """argparse type for '2,4,8' or '2 4 8': a list of whole numbers ('' gives an empty list)."""
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        message = f"expected whole numbers separated by commas, like '2,4,8', got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


int_list.__name__ = "list of whole numbers"  # what argparse would otherwise print for the type


def print_warning(message):
    """Print a warning the command itself found, in the same one-line form as the library's."""
    _show_warning(message, UserWarning, "", 0)
