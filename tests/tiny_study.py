"""The tiny study that the folder's tests (store, provenance, faults) run, reuse and tamper with."""
from analysis import StudyConfig, run_study
from autoenc import TrainConfig

METRICS = ["mse", "mse_clean", "noise_memorization", "membership_auc"]


def tiny(**changes):
    """One bottleneck, one width, two seeds, 3 epochs: seconds, and every file a run writes."""
    base = dict(bottlenecks=(2,), widths=(8,), seeds=(0, 1), memorization=False, audit=(), landscape=False,
                latent="none", train=TrainConfig(epochs=3, batch_size=128, lr=2e-3))
    return StudyConfig(**{**base, **changes})


def study(folder, config=None, **kwargs):
    return run_study(config or tiny(), folder, n_jobs=1, progress=False, report=False, **kwargs)


def metrics(result):
    return result.results.sort_values(["run", "split"]).reset_index(drop=True)[["run", "split", *METRICS]]
