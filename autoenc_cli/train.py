"""Train one autoencoder, save it, and compare its seen/unseen error with PCA at the same bottleneck.

    autoenc-train --dataset digits --bottleneck 8 --hidden 256 --epochs 100 --noise-std 0.2
    autoenc-train --data table.csv --label-column target --scale standard --bottleneck 4

(`python scripts/train.py` runs the same command.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from analysis import RunSpec, compare_to_pca
from autoenc import (ACTIVATIONS, DATASETS, KINDS, Autoencoder, ModelConfig, TrainConfig, add_noise, fit, load_dataset,
                     save, split)
from autoenc.data import Scaler, scale_warning
from autoenc.io import versions
from autoenc.train import resolve_device

from . import _cli

__all__ = ["main", "parse_args"]


def parse_args(argv=None):
    """Parse the train command line into an ``argparse.Namespace``."""
    p = _cli.Parser(description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", metavar="NAME", default="digits",
                     help=f"built-in dataset: {', '.join(DATASETS)} (default %(default)s)")
    src.add_argument("--data", metavar="PATH", help="your data: a .npy, .npz, .csv or MNIST-style IDX file")
    p.add_argument("--label-column", metavar="NAME",
                   help="the CSV column that holds the labels: kept out of the features, used to stratify the split")
    p.add_argument("--scale", choices=Scaler.METHODS, default="none",
                   help="per-feature scaling fitted on the training split (default %(default)s); standard when "
                        "features come in different units")
    p.add_argument("--bottleneck", type=int, metavar="K", default=8, help="code size k (default %(default)s)")
    p.add_argument("--hidden", type=_cli.int_list, metavar="LIST", default=[256],
                   help="encoder widths, e.g. '256' or '256,64'; the decoder mirrors them; '' for none (default 256)")
    p.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="nonlinearity (default %(default)s)")
    p.add_argument("--linear", action="store_true", help="no nonlinearity at all (the PCA-equivalent network)")
    p.add_argument("--architecture", choices=KINDS, default="mlp",
                   help="fully connected, or strided convolutions on the data's image shape with --hidden as "
                        "channels per stage (default %(default)s)")
    p.add_argument("--kernel-size", type=int, metavar="N", default=3,
                   help="convolution kernel size, with --architecture conv (default %(default)s)")
    p.add_argument("--epochs", type=int, metavar="N", default=100, help="training epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, metavar="N", default=64, help="minibatch size (default %(default)s)")
    p.add_argument("--lr", type=float, metavar="RATE", default=1e-3, help="Adam learning rate (default %(default)g)")
    p.add_argument("--weight-decay", type=float, metavar="W", default=0.0,
                   help="Adam weight decay (default %(default)g)")
    p.add_argument("--patience", type=int, metavar="N", default=None,
                   help="early stopping on validation loss after this many epochs without improvement (default off)")
    p.add_argument("--device", metavar="NAME", default="cpu",
                   help="where the model trains: auto (a GPU when there is one), cpu, cuda, cuda:N, mps "
                        "(default %(default)s)")
    p.add_argument("--noise-std", type=float, metavar="STD", default=0.2,
                   help="std of the static Gaussian noise added to the inputs, 0 for none (default %(default)s)")
    p.add_argument("--seed", type=int, metavar="N", default=0,
                   help="seeds the split, the noise and the training (default %(default)s)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="model folder (default runs/models/<data>-k<bottleneck>-h<hidden>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    model_config = ModelConfig(1, 1, hidden=args.hidden, activation=args.activation, linear=args.linear)
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               weight_decay=args.weight_decay, patience=args.patience, seed=args.seed,
                               device=args.device)
    resolve_device(train_config.device)  # an absent GPU stops the command before the data load
    data = load_dataset(args.data or args.dataset, seed=args.seed, label_column=args.label_column)
    n_features = data.X.shape[1]
    if args.bottleneck > n_features:
        raise ValueError(f"--bottleneck {args.bottleneck} is larger than the {n_features} features of {data.name}")
    model_config = model_config.replace(input_dim=n_features, bottleneck=args.bottleneck)
    if args.architecture == "conv":  # the data's image shape, one channel (a 1-D signal for tabular data)
        shape = RunSpec(args.bottleneck, tuple(args.hidden), args.seed, kind="conv").model_config(
            n_features, image_shape=data.image_shape, kernel_size=args.kernel_size).input_shape
        model_config = model_config.replace(kind="conv", input_shape=shape, kernel_size=args.kernel_size)
    # class ids (integers or names) keep their proportions across the parts; a continuous target cannot
    labels = data.y if data.y is not None and np.asarray(data.y).dtype.kind in "iuUSO" else None
    parts = split(len(data.X), seed=args.seed, stratify=labels)
    if args.scale == "none" and (warning := scale_warning(data.X[parts.train])):
        _cli.print_warning(warning)
    # as in the study: static noise in the data's units, then scaling fitted on the noisy training inputs
    noisy, noise = add_noise(data.X, args.noise_std, seed=args.seed)
    scaler = Scaler(args.scale).fit(noisy[parts.train])
    X, clean = noisy, data.X
    if args.scale != "none":
        X, clean = scaler.transform(noisy), scaler.transform(data.X)
        noise = X - clean  # the noise in the units the model sees
    model = Autoencoder(model_config)
    history = fit(model, X[parts.train], X[parts.val], train_config, progress=False if args.quiet else None)
    hidden = "-".join(map(str, args.hidden)) or "none"
    kind = "c" if args.architecture == "conv" else "h"  # as in the study's run ids: ae-k8-c16-32-s0
    out = Path(args.out or f"runs/models/{data.name}-k{args.bottleneck}-{kind}{hidden}")
    save(model, out, metadata={"dataset": data.name, "label_column": args.label_column, "noise_std": args.noise_std,
                               "scaling": {"method": args.scale, "offset": scaler.offset_.tolist(),
                                         "scale": scaler.scale_.tolist()},
                               "train": train_config.to_dict(), "epochs_trained": history.epochs,
                               "split_seed": args.seed, "noise_seed": args.seed, "versions": versions()})
    table = compare_to_pca(model, X[parts.train], X[parts.test], clean_train=clean[parts.train],
                           noise_train=noise[parts.train], clean_test=clean[parts.test], noise_test=noise[parts.test])
    columns = ["model", "split", "mse", "mse_clean", "noise_memorization", "gap", "membership_auc"]
    print(f"{data.name}: {len(parts.train)} seen (train) / {len(parts.test)} unseen (test) samples, "
          f"noise std {args.noise_std}, scale {args.scale}, bottleneck {args.bottleneck}, "
          f"{model.n_parameters:,} parameters")
    print(table[[c for c in columns if c in table]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"model saved to {out}")
    return 0


def main(argv=None):
    """Run the train command line; return its exit status (0, 2 for a mistake, 130 for Ctrl-C)."""
    return _cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
