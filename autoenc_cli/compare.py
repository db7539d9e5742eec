"""Put several study folders side by side in one report: capacity curves in a colour per study, a verdict per
study, their selected models and latent similarity. Studies on different data get figures of their own.

    autoenc-compare runs/digits runs/patches
    autoenc-compare runs/laptop runs/cluster --out runs/laptop-vs-cluster

(`python scripts/compare.py` runs the same command.)
"""
from __future__ import annotations

import sys

from . import _cli

__all__ = ["main"]


def _main(argv):
    p = _cli.Parser(description=__doc__)
    p.add_argument("study_dirs", metavar="DIR", nargs="+", help="two or more study folders written by autoenc-study")
    p.add_argument("--out", metavar="DIR", default="runs/compare",
                   help="folder for report.html, compare.csv and figures/ (default %(default)s)")
    args = p.parse_args(argv)
    from analysis.report.compare import compare_studies  # checks the folders before drawing anything

    print(f"report: {compare_studies(args.study_dirs, args.out)}")
    return 0


def main(argv=None):
    """Run the compare command line; return its exit status (0, 2 for a mistake)."""
    return _cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
