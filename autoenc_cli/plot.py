"""Redraw a study's figures and report from its files alone (no retraining).

    autoenc-plot runs/digits

(`python scripts/plot.py` runs the same command.)
"""
from __future__ import annotations

import sys
from pathlib import Path

from . import _cli

__all__ = ["main"]


def _main(argv):
    p = _cli.Parser(description=__doc__)
    p.add_argument("study_dir", metavar="DIR", help="a study folder written by autoenc-study")
    args = p.parse_args(argv)
    folder = Path(args.study_dir)
    if not (folder / "results.csv").is_file():
        raise FileNotFoundError(f"{folder} has no results.csv; is it a study folder written by autoenc-study?")
    from analysis import write_report  # drawing code: seconds to import, so only once the arguments are sound

    print(f"report: {write_report(folder)}")
    return 0


def main(argv=None):
    """Run the plot command line; return its exit status (0, 2 for a mistake)."""
    return _cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
