"""Train one autoencoder, save it, and compare its seen/unseen error with PCA at the same bottleneck.

    python scripts/train.py --dataset digits --bottleneck 8 --hidden 256 --epochs 100 --noise-std 0.2
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402

from autoenc import DATASETS, Autoencoder, ModelConfig, TrainConfig, add_noise, fit, load_dataset, save, split  # noqa: E402
from analysis import compare_to_pca  # noqa: E402
from autoenc.io import versions  # noqa: E402


def parse_args(argv=None):
    p = _cli.Parser(description=__doc__, formatter_class=_cli.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", default="digits", help=f"built-in dataset: {', '.join(DATASETS)}")
    src.add_argument("--data", help="a data file: .npy, .npz, .csv or MNIST-style IDX")
    p.add_argument("--bottleneck", type=int, default=8, help="code size k (default 8)")
    p.add_argument("--hidden", type=_cli.positive_int_list, default=[256],
                   help="encoder widths, e.g. '256' or '256,64'; the decoder mirrors them; '' for none")
    p.add_argument("--activation", default="relu")
    p.add_argument("--linear", action="store_true", help="no nonlinearity at all (the PCA-equivalent network)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--patience", type=int, default=None, help="early stopping on validation loss (default: off)")
    p.add_argument("--noise-std", type=float, default=0.2, help="static Gaussian noise added to the inputs")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, the noise and the training")
    p.add_argument("--out", default=None, help="model folder (default runs/models/<dataset>-k<k>-h<hidden>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model_config = ModelConfig(1, 1, hidden=args.hidden, activation=args.activation, linear=args.linear)
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               weight_decay=args.weight_decay, patience=args.patience, seed=args.seed)
    data = load_dataset(args.data or args.dataset, seed=args.seed)
    model_config = model_config.replace(input_dim=data.X.shape[1], bottleneck=args.bottleneck)
    labels = data.y if data.y is not None and np.issubdtype(data.y.dtype, np.integer) else None
    parts = split(len(data.X), seed=args.seed, stratify=labels)
    X, noise = add_noise(data.X, args.noise_std, seed=args.seed)
    model = Autoencoder(model_config)
    history = fit(model, X[parts.train], X[parts.val], train_config, progress=False if args.quiet else None)
    out = Path(args.out or f"runs/models/{data.name}-k{args.bottleneck}-h{'-'.join(map(str, args.hidden)) or 'none'}")
    save(model, out, metadata={"dataset": data.name, "noise_std": args.noise_std, "train": train_config.to_dict(),
                               "epochs_trained": history.epochs, "split_seed": args.seed, "noise_seed": args.seed,
                               "versions": versions()})
    table = compare_to_pca(model, X[parts.train], X[parts.test], clean_train=data.X[parts.train],
                           noise_train=noise[parts.train], clean_test=data.X[parts.test], noise_test=noise[parts.test])
    columns = ["model", "split", "mse", "mse_clean", "noise_memorization", "gap", "membership_auc"]
    print(f"{data.name}: {len(parts.train)} seen (train) / {len(parts.test)} unseen (test) samples, "
          f"noise std {args.noise_std}, bottleneck {args.bottleneck}, {model.n_parameters:,} parameters")
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"model saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main))
