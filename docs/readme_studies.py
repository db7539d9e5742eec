"""The README's regions that come from studies beside the default one: its remedies, and the default grid on the
built-in ``patches`` (natural image patches). Used by ``readme_numbers.py``.

    remedies   the default study again with ``--remedies`` (:data:`REMEDIES`), in a copy of its folder: the grid is
               reused, only the remedy runs and their audits train; the recommendation and the remedies table
    patches    ``autoenc-study --dataset patches``: its answer, its verdict and the key numbers at the largest k
"""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

REMEDIES = ["weight-decay=1e-3", "dropout=0.3", "denoise=0.3", "early-stop", "dp=1"]
REMEDY_ARGS = ["--remedies", *REMEDIES, "--remedy-targets", "widest"]
PATCHES_ARGS = ["--dataset", "patches"]
REGIONS = ("remedies-verdict", "remedies-table", "patches-verdict", "patches-table")


def _study(args):
    from autoenc_cli.study import main as study_main

    with contextlib.redirect_stdout(io.StringIO()):  # its own verdict: the README shows it
        status = study_main([*args, "--quiet"])
    if status not in (0, None):
        raise RuntimeError(f"autoenc-study {' '.join(args)} exited with status {status}")


def run_remedies(default_folder, out):
    """The default study with the README's remedies, in ``out`` (a copy of ``default_folder``; a finished one
    there is reused)."""
    out = Path(out)
    if not (out / "remedy_summary.csv").exists():
        shutil.copytree(default_folder, out, dirs_exist_ok=True)
        _study(["--out", str(out), *REMEDY_ARGS])
    return out


def run_patches(out):
    _study(["--out", str(out), *PATCHES_ARGS])
    return Path(out)


def remedies_regions(folder, wrap):
    import pandas as pd

    from analysis.report import markdown_table
    from analysis.report.remedies import recommend, remedy_rows

    summary = pd.read_csv(Path(folder) / "remedy_summary.csv", dtype={"target": str, "remedy": str})
    return {"remedies-verdict": "\n".join(wrap(line, "- ") for line in recommend(summary)),
            "remedies-table": markdown_table(*remedy_rows(summary))}


def patches_regions(folder, wrap):
    from analysis.report import markdown_table, study_summary

    summary = study_summary(folder)
    table = summary["table"]
    k = int(table["bottleneck"].max())
    keep = [i for i, value in enumerate(table["bottleneck"].to_numpy()) if int(value) == k]
    return {"patches-verdict": "\n".join([wrap(summary["answer"]), ""] + [wrap(line, "- ")
                                                                            for line in summary["lines"]]),
            "patches-table": markdown_table(summary["heads"], [summary["rows"][i] for i in keep])}


def publish(remedies_folder, docs):
    from autoenc.io import atomic_write

    data = (Path(remedies_folder) / "figures" / "remedies.png").read_bytes()
    atomic_write(Path(docs) / "remedies.png", lambda tmp: Path(tmp).write_bytes(data))
    print(f"docs/remedies.png: copied from {Path(remedies_folder) / 'figures' / 'remedies.png'}")
