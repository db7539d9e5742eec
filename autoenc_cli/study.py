"""Does the autoencoder learn or memorize? Train autoencoders of growing capacity, hold each against PCA at the
same bottleneck on seen (train) and unseen (test) data, and write a report.

    autoenc-study                                   # the default study on digits, into runs/digits
    autoenc-study --data features.npy --out runs/mine
    autoenc-study --data table.csv --label-column target --scale standard
    autoenc-study --config study.toml               # every field of StudyConfig; flags override it
    autoenc-study --scheduler tcp://host:8786       # run on a Dask cluster

(`python scripts/study.py` runs the same command.) Running the same command again resumes: finished runs are
never trained again. Without --bottlenecks, the default bottlenecks smaller than the data's number of features d
are trained (a bottleneck of d is no bottleneck), or d // 2 (at least 1) when none is.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import sys
import threading
import warnings
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from analysis.study import StudyConfig, run_study  # the study alone: the command line passes its own report hook
from analysis.study.config import (AUDIT_TARGETS, CONV_WIDTHS, LATENT_METHODS, MEMORIZATION_METHODS, MLP_WIDTHS,
                                   SCALINGS, SEARCHES, SELECTION_METRICS, SELECTION_RULES)
from analysis.study.lock import StudyLock
from analysis.study.remedies import parse_remedies
from autoenc import ACTIVATIONS, DATASETS, KINDS, load_dataset

from . import _cli

__all__ = ["main", "parse_args", "build_config", "default_bottlenecks"]

_DEFAULT = StudyConfig()


def _csv(values):
    return ",".join(map(str, values))


def _audit_list(text):
    names = [] if text.strip() == "none" else [v for v in text.replace(",", " ").split() if v]
    unknown = [v for v in names if v not in AUDIT_TARGETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown audit target(s) {', '.join(unknown)}: use widest, selected or "
                                         "none")
    return tuple(names)


def _remedy_words(text):
    try:
        parse_remedies(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parse_args(argv=None):
    """Parse the study's command line into an ``argparse.Namespace``; options left out are None."""
    d, t = _DEFAULT, _DEFAULT.train
    p = _cli.Parser(description=__doc__)
    p.add_argument("--config", metavar="PATH", help="a .toml or .json StudyConfig; flags given here override it")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", metavar="NAME",
                     help=f"built-in dataset: {', '.join(DATASETS)} (default {d.dataset})")
    src.add_argument("--data", dest="dataset", metavar="PATH",
                     help="your data: a .npy, .npz, .csv or MNIST-style IDX file")
    p.add_argument("--label-column", metavar="NAME",
                   help="the CSV column that holds the labels: kept out of the features, used to stratify the split,"
                        " colour the latent map and probe the codes")
    p.add_argument("--out", metavar="DIR", help="study folder (default runs/<name of the data>)")
    p.add_argument("--noise-std", type=float, metavar="STD",
                   help=f"std of the static Gaussian noise added once to every sample, 0 for none "
                        f"(default {d.noise_std})")
    p.add_argument("--seed", type=int, metavar="N", help=f"seeds the split and the noise (default {d.seed})")
    p.add_argument("--data-seeds", action="store_true", default=None,
                   help="each training seed also draws its own split and noise, so the spread over seeds includes "
                        "the sampling of the data")
    p.add_argument("--scale", choices=SCALINGS,
                   help=f"per-feature scaling fitted on the training split (default {d.scale}); standard when "
                        "features come in different units")
    p.add_argument("--bottlenecks", type=_cli.int_list, metavar="LIST",
                   help=f"code sizes k, e.g. '2,4,8' (default {_csv(d.bottlenecks)}, those below the number of "
                        "features)")
    p.add_argument("--widths", type=_cli.int_list, metavar="LIST",
                   help=f"hidden layer widths (default {_csv(MLP_WIDTHS)}; channels with --architecture conv, "
                        f"default {_csv(CONV_WIDTHS)})")
    p.add_argument("--depths", type=_cli.int_list, metavar="LIST",
                   help=f"hidden layers per side, e.g. '1,2' (default {_csv(d.depths)})")
    p.add_argument("--seeds", type=_cli.int_list, metavar="LIST",
                   help=f"training seeds, one model each (default {_csv(d.seeds)})")
    p.add_argument("--activation", choices=ACTIVATIONS, help=f"nonlinearity (default {d.activation})")
    p.add_argument("--architecture", choices=KINDS,
                   help=f"fully connected, or strided convolutions on the data's image shape with --widths as "
                        f"channel counts and --depths as stages (default {d.architecture})")
    p.add_argument("--kernel-size", type=int, metavar="N",
                   help=f"convolution kernel size (default {d.kernel_size})")
    p.add_argument("--search", choices=SEARCHES,
                   help=f"grid trains every combination, grow starts small and widens, then deepens "
                        f"(default {d.search})")
    p.add_argument("--tolerance", type=float, metavar="FRACTION",
                   help=f"relative slack for 'adequate' (default {d.tolerance}), in the grow search and under "
                        "--selection-rule tolerance")
    p.add_argument("--selection-metric", choices=SELECTION_METRICS,
                   help=f"error the simplest adequate model is chosen on; auto: against the clean signal when noise "
                        f"was injected, else SURE when --data-noise-std is known, else denoising "
                        f"(default {d.selection_metric})")
    p.add_argument("--selection-rule", choices=SELECTION_RULES,
                   help=f"one_se: within one standard error over seeds of the best; tolerance: within "
                        f"--tolerance of it (default {d.selection_rule})")
    p.add_argument("--data-noise-std", type=float, metavar="STD",
                   help="std of the noise already in the data (after scaling), when known: enables SURE")
    p.add_argument("--no-memorization", dest="memorization", action="store_false", default=None,
                   help="skip the per-sample memorization scores")
    p.add_argument("--memorization-method", choices=MEMORIZATION_METHODS,
                   help=f"per-sample scores from reference models on random halves, or K-fold cross-fitting "
                        f"(default {d.memorization_method})")
    p.add_argument("--n-references", type=int, metavar="N",
                   help=f"reference models per audited architecture, even (default {d.n_references})")
    p.add_argument("--audit", type=_audit_list, metavar="WHICH",
                   help=f"membership audit (LiRA, RMIA) of 'widest', 'selected', both ('widest,selected') or "
                        f"'none' (default {','.join(d.audit)})")
    p.add_argument("--remedies", nargs="+", type=_remedy_words, metavar="REMEDY",
                   help="train the memorizing architectures with remedies and recommend the cheapest that brings "
                        "their leakage to PCA's level, e.g. --remedies weight-decay=1e-4,1e-3 dropout=0.1,0.3 "
                        "denoise=0.1,0.3 early-stop dp=1.0,4.0")
    p.add_argument("--remedy-targets", type=_audit_list, metavar="WHICH",
                   help=f"which architectures get the remedies: 'widest', 'selected' or both (default "
                        f"{','.join(d.remedy_targets)})")
    p.add_argument("--dp-clip", type=float, metavar="C",
                   help=f"DP-SGD's bound on each sample's gradient norm (default {d.dp_clip:g})")
    p.add_argument("--no-remedy-audit", dest="remedy_audit", action="store_false", default=None,
                   help="no membership audit of the remedied models (it trains --n-references models per remedy)")
    p.add_argument("--no-landscape", dest="landscape", action="store_false", default=None,
                   help="skip the loss slices and attractors of the selected and widest models")
    p.add_argument("--double-descent", action="store_true", default=None,
                   help="add a width sweep past the interpolation threshold on 100 training samples (about a "
                        "minute more)")
    p.add_argument("--latent", choices=LATENT_METHODS,
                   help=f"2-D map of the selected model's codes (default {d.latent}; umap compiles numba code: "
                        "10-75 s more); unless none, also latent.csv (codes against PCA and across seeds, latent "
                        "membership, intrinsic dimension) and paths.npz")
    p.add_argument("--epochs", type=int, metavar="N",
                   help=f"training epochs of every model, no early stopping (default {t.epochs})")
    p.add_argument("--batch-size", type=int, metavar="N", help=f"minibatch size (default {t.batch_size})")
    p.add_argument("--lr", type=float, metavar="RATE", help=f"Adam learning rate (default {t.lr:g})")
    p.add_argument("--weight-decay", type=float, metavar="W", help=f"Adam weight decay (default {t.weight_decay:g})")
    p.add_argument("--device", metavar="NAME",
                   help=f"where models train: auto (a GPU when there is one), cpu, cuda, cuda:N, mps (default "
                        f"{t.device})")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the figures and report.html; autoenc-plot DIR draws them later from the folder")
    p.add_argument("--jobs", type=int, metavar="N", help="local worker processes (default: every core)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--scheduler-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the scheduler to answer, for a first worker, and for a worker once all "
                        "are lost (default 30)")
    p.add_argument("--quiet", action="store_true", help="no progress output, only the final lines")
    return p.parse_args(argv)


def build_config(args):
    """The ``StudyConfig`` of parsed arguments: the ``--config`` file (or the defaults) with the flags applied."""
    config = StudyConfig.from_file(args.config) if args.config else StudyConfig()
    fields = {f.name for f in dataclasses.fields(StudyConfig)}
    changes = {k: v for k, v in vars(args).items() if k in fields and k != "train" and v is not None}
    if "remedies" in changes:
        changes["remedies"] = " ".join(changes["remedies"])
    train = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "device")
             if getattr(args, k) is not None}
    if train:
        changes["train"] = config.train.replace(**train)
    if "widths" not in changes and config.widths == StudyConfig(architecture=config.architecture).widths:
        changes["widths"] = None  # the default widths of the architecture the study ends up with
    return config.replace(**changes)


def default_bottlenecks(n_features, defaults=_DEFAULT.bottlenecks):
    """The default bottlenecks that fit data with ``n_features`` features.

    Those smaller than ``n_features`` (a bottleneck of ``n_features`` is no bottleneck: PCA reconstructs exactly),
    or ``max(1, n_features // 2)`` when none is.

    Examples
    --------
    >>> default_bottlenecks(10), default_bottlenecks(64), default_bottlenecks(2)
    ((2, 4, 8), (2, 4, 8, 16, 32), (1,))
    """
    kept = tuple(k for k in defaults if k < n_features)
    return kept or (max(1, n_features // 2),)


def _fit_bottlenecks(config, args):
    """Clip the default bottlenecks to the data; bottlenecks the user chose are left for the study to check."""
    if args.bottlenecks is not None or (args.config and "bottlenecks" in _fields_in(args.config)):
        return config, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the study loads the data again and warns then
        n_features = load_dataset(config.dataset, seed=config.seed, label_column=config.label_column).X.shape[1]
    bottlenecks = default_bottlenecks(n_features, config.bottlenecks)
    if bottlenecks == config.bottlenecks:
        return config, None
    note = (f"bottlenecks {_csv(bottlenecks)}: the defaults below the {n_features} features of {config.dataset} "
            "(choose with --bottlenecks)")
    return config.replace(bottlenecks=bottlenecks), note


def _fields_in(path):
    """The top-level field names a .toml or .json config file sets (it parsed already)."""
    text = Path(path).read_text(encoding="utf-8")
    return set(tomllib.loads(text) if Path(path).suffix.lower() == ".toml" else json.loads(text))


def _line_progress(done, total, runs=()):
    """One line per finished group of models, for output that is not a terminal (a log, a pipe, CI)."""
    runs = list(runs)
    shown = ", ".join(runs[:2]) + (" ..." if len(runs) > 2 else "")
    print(f"trained {done}/{total} models" + (f" ({shown})" if shown else ""), flush=True)


class _ProgressHook:
    """``on_progress``: a line per finished group where asked, and, at the first, the report's drawing code imported
    on a thread (seconds of it: this process is idle while the workers train). Not before: until the tasks are out,
    that import would only delay them."""

    def __init__(self, lines, report):
        self.lines, self.report = lines, report

    def __call__(self, done, total, runs=()):
        if self.report:
            self.report = False
            threading.Thread(target=importlib.import_module, args=("analysis.report.html",), daemon=True,
                             name="autoenc-report-import").start()
        if self.lines:
            _line_progress(done, total, runs)


def _summary_line(result):
    """'60 trained, 5 reused' from the result's counts (runs trained now, runs found in the folder)."""
    counts = {word: getattr(result, word, None) for word in ("trained", "reused")}
    counts = {word: n if isinstance(n, int) else len(n) for word, n in counts.items() if n is not None}
    return ", ".join(f"{n} {word}" for word, n in counts.items()) or None


def _verdict_text(result, width=100):
    """The one-sentence answer, the verdict in plain words, then the key numbers, each within ``width`` columns."""
    import textwrap

    import pandas as pd

    from analysis.report import study_summary
    from analysis.study.tables import INTERVAL_METHOD

    summary = study_summary(result.path, compact=True)
    lines = textwrap.wrap("Answer: " + summary["answer"], width, subsequent_indent="  ")
    lines += ["", "Verdict:"] + [textwrap.fill(line, width, initial_indent="- ", subsequent_indent="  ")
                                 for line in summary["lines"]]
    if len(summary["table"]):
        legend = (f"Key numbers (means over seeds, {INTERVAL_METHOD}; unseen = test split; noise mem. gap = seen "
                  "minus unseen noise memorization):")
        lines += ["", *textwrap.wrap(legend, width),
                  pd.DataFrame(summary["rows"], columns=summary["heads"]).to_string(index=False, line_width=width)]
    return "\n".join(lines)


def _write_report(folder):
    from analysis.report import write_report  # drawing code: seconds to import, so only when a report is asked

    return write_report(folder)


def _main(argv):
    args = parse_args(argv)
    config = build_config(args)
    out = Path(args.out or f"runs/{Path(config.dataset).stem}")
    StudyLock.check_free(out)  # a busy folder is refused before the data are read for the bottlenecks
    config, note = _fit_bottlenecks(config, args)
    if note and not args.quiet:
        print(note, flush=True)
    options = {"n_jobs": args.jobs, "scheduler": args.scheduler, "timeout": args.scheduler_timeout,
               "progress": False if args.quiet else None,
               "report": _write_report if args.report else None}
    lines = not args.quiet and not sys.stdout.isatty()  # no terminal for a progress bar: a line per finished group
    if (lines or args.report) and "on_progress" in inspect.signature(run_study).parameters:
        options["on_progress"] = _ProgressHook(lines, args.report)
    try:
        result = run_study(config, out, **options)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (exit status 143)
        print(f"\ninterrupted: finished runs are saved in {out}; run the same command again to resume",
              file=sys.stderr)
        return _cli.interrupted_status(exc)
    print(_verdict_text(result))
    failed = result.results[result.results["status"] != "ok"]["run"].unique()
    if len(failed):
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (see the report)")
    summary = _summary_line(result)
    if summary:
        print(f"runs: {summary}")
    print(f"report: {out / 'report.html'}" if args.report else f"figures and report: autoenc-plot {out}")
    return 0


def main(argv=None):
    """Run the study command line; return its exit status (0, 2 for a mistake, 130 for Ctrl-C, 143 for SIGTERM)."""
    return _cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
