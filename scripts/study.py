"""Does the autoencoder learn or memorize? Train autoencoders of growing capacity, hold each against PCA at the
same bottleneck on seen (train) and unseen (test) data, and write a report.

    python scripts/study.py                          # the default study on digits, into runs/digits
    python scripts/study.py --data features.npy --out runs/mine
    python scripts/study.py --config study.toml      # every field of StudyConfig; flags override it
    python scripts/study.py --scheduler tcp://host:8786   # run on a Dask cluster

Running the same command again resumes: finished runs are never trained again.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402

from analysis import StudyConfig, run_study  # noqa: E402


def parse_args(argv=None):
    p = _cli.Parser(description=__doc__, formatter_class=_cli.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a .toml or .json StudyConfig; flags given below override its fields")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", help="built-in dataset name (digits, mnist1d, noise, lowrank, swissroll)")
    src.add_argument("--data", dest="dataset", help="a data file: .npy, .npz, .csv or MNIST-style IDX")
    p.add_argument("--out", help="study folder (default runs/<dataset>)")
    p.add_argument("--noise-std", type=float)
    p.add_argument("--seed", type=int, help="seeds the split and the noise")
    p.add_argument("--scale", choices=["none", "standard", "minmax"])
    p.add_argument("--bottlenecks", type=_cli.positive_int_list, help="e.g. '2,4,8,16,32'")
    p.add_argument("--widths", type=_cli.positive_int_list, help="e.g. '16,64,256,1024'")
    p.add_argument("--depths", type=_cli.positive_int_list, help="hidden layers per side, e.g. '1,2'")
    p.add_argument("--seeds", type=_cli.positive_int_list, help="training seeds, e.g. '0,1,2'")
    p.add_argument("--activation")
    p.add_argument("--search", choices=["grid", "grow"], help="full grid, or start small and grow")
    p.add_argument("--tolerance", type=float, help="relative slack for 'adequate' (default 0.05)")
    p.add_argument("--no-memorization", dest="memorization", action="store_false", default=None,
                   help="skip the per-sample memorization scores")
    p.add_argument("--latent", choices=["pca", "umap", "none"],
                   help="2-D map of the selected model's codes (default pca; umap compiles numba code: ~15 s more)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--jobs", type=int, help="local worker processes (default: every core)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the final lines")
    return p.parse_args(argv)


def build_config(args):
    config = StudyConfig.from_file(args.config) if args.config else StudyConfig()
    fields = {f.name for f in dataclasses.fields(StudyConfig)}
    changes = {k: v for k, v in vars(args).items() if k in fields and k != "train" and v is not None}
    train = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay")
             if getattr(args, k) is not None}
    if train:
        changes["train"] = config.train.replace(**train)
    return config.replace(**changes)


def main(argv=None):
    args = parse_args(argv)
    config = build_config(args)
    out = Path(args.out or f"runs/{Path(config.dataset).stem}")
    try:
        result = run_study(config, out, n_jobs=args.jobs, scheduler=args.scheduler,
                           progress=False if args.quiet else None)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are saved in {out}; run the same command again to resume",
              file=sys.stderr)
        return 130
    from analysis import summary_table  # drawing code: imported while the study trained

    table = summary_table(result.results)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    failed = result.results[result.results["status"] != "ok"]["run"].unique()
    if len(failed):
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (see the report)")
    if result.selection:
        print(result.selection["sentence"])
        among = result.selection.get("autoencoder") or {}
        if among.get("sentence") and among["sentence"] != result.selection["sentence"]:
            print(f"Among the autoencoders: {among['sentence']}")
    print(f"report: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main))
