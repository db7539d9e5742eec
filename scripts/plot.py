"""Redraw a study's figures and report from its files alone (no retraining).

    python scripts/plot.py runs/digits
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402

from analysis import write_report  # noqa: E402


def main(argv=None):
    p = _cli.Parser(description=__doc__, formatter_class=_cli.RawDescriptionHelpFormatter)
    p.add_argument("study_dir", help="a folder written by scripts/study.py")
    args = p.parse_args(argv)
    folder = Path(args.study_dir)
    if not (folder / "results.csv").is_file():
        raise FileNotFoundError(f"{folder} has no results.csv; is it a study folder written by scripts/study.py?")
    print(f"report: {write_report(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main))
