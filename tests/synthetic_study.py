"""A synthetic study folder in the real schema (results, samples, history, ...), for the plot and report tests."""
import json

import numpy as np
import pandas as pd

D = 64
BOTTLENECKS = (2, 8)
WIDTHS = (16, 128)
SEEDS = (0, 1)
DIVERGED = "ae-k8-h128-s1"
DIVERGED_REASON = "loss became NaN at epoch 3 (lr too high?)"


def _ae_params(k, w, d=D):
    return (d * w + w + w * k + k) + (k * w + w + w * d + d)


def make_study_frames(seed=0):
    """Frames and arrays in the study folder's schema: 2 bottlenecks x 2 widths x 2 seeds + PCA, one diverged."""
    rng = np.random.default_rng(seed)
    n_train, n_val, n_test, epochs = 40, 12, 20, 15
    rows, samples, history = [], [], []

    def add(run, model, k, w, s, n_params, train_mse, test_mse, nm_train, nm_test, auc):
        hidden = "" if w is None else str(w)
        for split, n, mse, nm in (("train", n_train, train_mse, nm_train), ("val", n_val, test_mse, np.nan),
                                  ("test", n_test, test_mse, nm_test)):
            pair = split != "val"
            rows.append(dict(
                run=run, model=model, bottleneck=k, hidden=hidden, width=np.nan if w is None else w,
                depth=0 if w is None else 1, seed=np.nan if s is None else s, n_params=n_params, n_features=D,
                noise_std=0.2, split=split, n_samples=n, mse=mse, mse_clean=mse * 0.6, noise_memorization=nm,
                gap=test_mse - train_mse if pair else np.nan, ratio=test_mse / train_mse if pair else np.nan,
                membership_auc=auc if pair else np.nan, tpr_at_1pct_fpr=(auc - 0.5) / 2 if pair else np.nan,
                ks_statistic=(auc - 0.5) if pair else np.nan, ks_pvalue=0.01 if pair else np.nan,
                status="ok", reason="", epochs=epochs if model == "autoencoder" else 0, train_seconds=1.5))
            if split != "val":
                errors = rng.lognormal(np.log(mse), 0.4, n)
                samples.extend(dict(run=run, model=model, bottleneck=k, width=w, depth=rows[-1]["depth"], seed=s,
                                    split=split, sample=i + (0 if split == "train" else 100), label=i % 10,
                                    error=e, error_clean=e * 0.6) for i, e in enumerate(errors))

    for k in BOTTLENECKS:
        pca_mse = 0.04 - 0.002 * k
        add(f"pca-k{k}", "pca", k, None, None, k * D + D, pca_mse * 0.98, pca_mse, k / D, k / D + 0.005, 0.51)
        for w in WIDTHS:
            for s in SEEDS:
                run = f"ae-k{k}-h{w}-s{s}"
                if run == DIVERGED:
                    for split in ("train", "val", "test"):
                        rows.append(dict(run=run, model="autoencoder", bottleneck=k, hidden=str(w), width=w, depth=1,
                                         seed=s, n_params=_ae_params(k, w), n_features=D, noise_std=0.2, split=split,
                                         status="diverged", reason=DIVERGED_REASON, epochs=3, train_seconds=0.2))
                    continue
                memo = w / 160  # wider networks store more of their training noise
                train_mse = pca_mse * (1 - 0.6 * memo) + rng.normal(0, 5e-4)
                test_mse = pca_mse * (1 + 0.2 * memo) + rng.normal(0, 5e-4)
                add(run, "autoencoder", k, w, s, _ae_params(k, w), train_mse, test_mse,
                    k / D + memo * 0.7, k / D + 0.01, 0.5 + 0.35 * memo)
                t = np.arange(1, epochs + 1)
                history.extend(dict(run=run, bottleneck=k, width=w, depth=1, seed=s, epoch=e,
                                    train_loss=train_mse * (1 + 3 / e), val_loss=test_mse * (1 + 2.5 / e))
                               for e in t)
    results = pd.DataFrame(rows)
    n_img = 6
    clean = rng.uniform(0, 1, (n_img, D))
    noisy = clean + rng.normal(0, 0.2, clean.shape)
    recon = {"autoencoder": clean + rng.normal(0, 0.05, clean.shape), "pca": clean + rng.normal(0, 0.1, clean.shape)}
    emb = []
    for run, model in (("ae-k8-h128-s0", "autoencoder"), ("pca-k8", "pca")):
        for split, n in (("train", 60), ("test", 30)):
            labels = rng.integers(0, 10, n)
            xy = rng.normal(0, 0.3, (n, 2)) + np.c_[np.cos(labels), np.sin(labels)] * 3
            emb.append(pd.DataFrame(dict(run=run, model=model, split=split, sample=np.arange(n), label=labels,
                                         x=xy[:, 0], y=xy[:, 1])))
    memo = pd.concat([pd.DataFrame(dict(model=m, sample=np.arange(50), label=np.arange(50) % 10,
                                        error_seen=seen, error_unseen=seen + gap,
                                        score=gap))
                      for m, seen, gap in (("autoencoder", rng.uniform(0.01, 0.03, 50), rng.exponential(0.01, 50)),
                                           ("pca", rng.uniform(0.02, 0.04, 50), rng.normal(0.001, 0.001, 50)))])
    study = {"config": {"dataset": "digits", "noise_std": 0.2, "bottlenecks": list(BOTTLENECKS),
                        "widths": list(WIDTHS), "depths": [1], "seeds": list(SEEDS),
                        "train": {"epochs": epochs, "batch_size": 32, "lr": 0.003}},
             "versions": {"python": "3.12", "torch": "2.4", "autoenc": "0.1.0"},
             "n_features": D, "n_samples": n_train + n_val + n_test, "image_shape": [8, 8],
             "created": "2025-01-01T00:00:00"}
    selection = {"run": "ae-k8-h16-s0", "n_params": _ae_params(8, 16), "bottleneck": 8, "hidden": "16",
                 "test_mse": 0.0245, "tolerance": 0.05,
                 "sentence": "The simplest adequate model is <ae-k8-h16> with 2,392 parameters & unseen MSE 0.0245."}
    return dict(results=results, samples=pd.DataFrame(samples), history=pd.DataFrame(history),
                embeddings=pd.concat(emb, ignore_index=True), memorization=memo, study=study, selection=selection,
                reconstructions=dict(clean=clean, noisy=noisy, image_shape=np.array([8, 8]),
                                     titles=np.array([f"sample {i}" for i in range(n_img)]), **recon))


def write_study(folder, frames):
    """Write ``make_study_frames`` output into ``folder`` as the study runner does."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.json").write_text(json.dumps(frames["study"]))
    (folder / "selection.json").write_text(json.dumps(frames["selection"]))
    for name in ("results", "samples", "history", "embeddings", "memorization"):
        frames[name].to_csv(folder / f"{name}.csv", index=False)
    np.savez(folder / "reconstructions.npz", **frames["reconstructions"])
    return folder


def write_extras(folder, seed=0):
    """The optional files of a study with every step on: curves over training, loss slices, attractors, the
    double-descent sweep, a membership audit, the most memorized samples, the latent scores and the map's method."""
    rng = np.random.default_rng(seed)
    history = pd.read_csv(folder / "history.csv")
    growth = history["width"] / 160 * (1 - np.exp(-history["epoch"] / 5))
    history = history.assign(noise_memorization_train=history["bottleneck"] / D + 0.7 * growth,
                             noise_memorization_val=history["bottleneck"] / D + 0.01 * growth,
                             mse_clean_val=0.02 + 0.01 * (history["epoch"] - 8) ** 2 / 64)
    history.to_csv(folder / "history.csv", index=False)
    runs = ("ae-k8-h16-s0", "ae-k8-h128-s0")
    alpha = np.linspace(-1, 1, 11)
    pd.concat([pd.DataFrame({"alpha": alpha, "split": split, "loss": base + alpha ** 2, "run": run})
               for run in runs for split, base in (("train", 0.01), ("test", 0.03))]).to_csv(
        folder / "landscape.csv", index=False)
    radius = np.r_[rng.uniform(0.4, 0.9, 6), rng.uniform(1.0, 1.4, 14)]
    pd.concat([pd.DataFrame({"sample": np.arange(10), "spectral_radius": radius[s::2], "attractor":
                             (radius[s::2] < 0.95) & (split == "train"), "run": run, "split": split, "margin": 0.05})
               for run in runs for s, split in enumerate(("train", "test"))]).to_csv(
        folder / "attractors.csv", index=False)
    widths = (4, 16, 64)
    pd.concat([pd.DataFrame({"model": "autoencoder", "width": w, "seed": s, "epoch": 100, "n_params": 160 * w,
                             "split": split, "mse_clean": 0.02 + 0.01 * (split == "test") / w,
                             "interpolation_threshold": 6400}, index=[0])
               for w in widths for s in SEEDS for split in ("train", "test")]
              + [pd.DataFrame({"model": "pca", "width": np.nan, "seed": np.nan, "epoch": 0, "n_params": 576,
                               "split": ["train", "test"], "mse_clean": [0.03, 0.031],
                               "interpolation_threshold": 6400})]).to_csv(folder / "double_descent.csv", index=False)
    fpr = np.geomspace(1e-3, 1, 30)
    attacks = ("loss", "lira_offline", "lira_online", "lira_offline_fixed", "lira_online_fixed", "rmia")
    pd.concat([pd.DataFrame({"run": "ae-k8-h128-s0", "attack": a, "fpr": np.r_[0, fpr],
                             "tpr": np.r_[0, np.minimum(1, 0.9 + 0.1 * fpr ** (0.2 + 0.1 * i))]})
               for i, a in enumerate(attacks)]).to_csv(folder / "audit.csv", index=False)
    pd.DataFrame({"run": "ae-k8-h128-s0", "targets": "ae-k8-h128-s0 ae-k8-h128-s1", "attack": attacks,
                  "auc": 0.95, "fpr": 0.01, "fpr_achieved": 0.01, "tpr": 0.92, "tpr_ci_low": 0.9,
                  "tpr_ci_high": 0.94, "n_true_positives": 74, "n_false_positives": 1, "n_members": 80,
                  "n_nonmembers": 100, "n_targets": 2, "n_references": 8, "fpr_resolved": True}).to_csv(
        folder / "audit_summary.csv", index=False)
    np.savez(folder / "memorized_samples.npz", X=rng.uniform(0, 1, (16, D)), sample=np.arange(100, 116),
             score=np.r_[np.linspace(0.04, 0.02, 8), np.linspace(0.002, -0.001, 8)], image_shape=np.array([8, 8]),
             run=np.array("ae-k8-h128-s0"))
    (folder / "latent.json").write_text(json.dumps(
        {"autoencoder": {"run": "ae-k8-h128-s0", "trustworthiness": 0.9812, "knn_accuracy": 0.9375},
         "pca": {"run": "pca-k8", "trustworthiness": 0.9723, "knn_accuracy": 0.9}}))
    study = json.loads((folder / "study.json").read_text())
    study["config"]["latent"] = "umap"
    (folder / "study.json").write_text(json.dumps(study))
    return folder
