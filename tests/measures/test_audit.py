"""Membership audit: constructed truths (no leak, total leak, Gaussian signals with a known optimum), outliers."""
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from analysis.measures.audit import ATTACKS, attack_scores, membership_audit
from analysis.report.plots_audit import plot_audit_roc
from analysis.measures.reference import reference_masks, train_references

FPRS = (0.001, 0.01, 0.1)


def _independent(seed, n=10000, n_targets=2, n_models=16):
    """Errors that ignore membership: each sample has its own level (so a global threshold is not enough)."""
    rng = np.random.default_rng(seed)
    level = rng.normal(0, 0.5, n)
    masks = reference_masks(n, n_models, seed=seed)
    ref = np.exp(level + 0.5 * rng.standard_normal((n_models, n)))
    member = rng.random((n_targets, n)) < 0.1  # few members: the threshold's own noise stays small beside theirs
    target = np.exp(level + 0.5 * rng.standard_normal((n_targets, n)))
    return target, member, ref, masks


def test_a_model_independent_of_the_data_leaks_nothing():
    # 18 checks at once: 99.9% intervals (measured: no failure in 100 seeds of this set-up)
    summary, roc = membership_audit(*_independent(0), fprs=FPRS, confidence=0.999)
    assert set(summary["attack"]) == set(ATTACKS) and len(summary) == len(ATTACKS) * len(FPRS)
    assert (summary["tpr_ci_low"] <= summary["fpr_achieved"]).all()
    assert (summary["fpr_achieved"] <= summary["tpr_ci_high"]).all()
    assert (summary["fpr_achieved"] <= summary["fpr"]).all() and (summary["fpr_achieved"] > 0.9 * summary["fpr"]).all()
    assert summary["auc"].between(0.48, 0.52).all()
    assert summary["fpr_resolved"].all() and (summary["n_members"] + summary["n_nonmembers"] == 20000).all()


class _Lookup:
    """Nearest training sample: stores its training set and answers every query with the closest stored row."""

    def fit(self, X):
        self.X_ = np.asarray(X)
        return self

    def transform(self, X):
        d = (X**2).sum(1)[:, None] - 2 * X @ self.X_.T + (self.X_**2).sum(1)[None]
        return self.X_[np.argmin(d, axis=1)]

    def inverse_transform(self, Z):
        return Z


def test_a_lookup_table_is_caught_at_every_fpr(rng):
    X = rng.standard_normal((1000, 10))
    ref_masks, target_masks = reference_masks(1000, 16, seed=0), reference_masks(1000, 4, seed=1)
    ref = train_references(X, ref_masks, _Lookup, progress=False)
    target = train_references(X, target_masks, _Lookup, progress=False)
    assert np.all(target[target_masks] == 0) and np.all(target[~target_masks] > 0)
    summary, _ = membership_audit(target, target_masks, ref, ref_masks, fprs=FPRS)
    assert (summary["tpr"] == 1).all(), summary[summary["tpr"] < 1]
    assert (summary["auc"] == 1).all()


def _gaussian(seed, shift, n=10000, n_targets=2, n_models=256, sigma=0.5):
    """Log-errors Gaussian with a per-sample level; members lower by ``shift * sigma``: optimal TPR is known."""
    rng = np.random.default_rng(seed)
    level = rng.normal(0, 1, n)
    masks = reference_masks(n, n_models, seed=seed)
    ref = np.exp(level - shift * sigma * masks + sigma * rng.standard_normal((n_models, n)))
    member = rng.random((n_targets, n)) < 0.5
    target = np.exp(level - shift * sigma * member + sigma * rng.standard_normal((n_targets, n)))
    return target, member, ref, masks


@pytest.mark.parametrize("shift", [1.0, 2.0])
def test_lira_reaches_the_optimal_tpr_on_gaussian_signals(shift):
    summary, _ = membership_audit(*_gaussian(0, shift), attacks=["loss", "lira_online_fixed", "lira_online"],
                                  fprs=FPRS)
    s = summary.set_index(["attack", "fpr"])
    for fpr in FPRS:
        row = s.loc[("lira_online_fixed", fpr)]
        alpha = row["fpr_achieved"]
        optimal = norm.cdf(norm.ppf(alpha) + shift)
        slope = norm.pdf(norm.ppf(alpha) + shift) / norm.pdf(norm.ppf(alpha))  # dTPR/dFPR of the optimal curve
        se = np.sqrt(optimal * (1 - optimal) / row["n_members"] + slope**2 * alpha * (1 - alpha) / row["n_nonmembers"])
        assert abs(row["tpr"] - optimal) < 3.5 * se, (fpr, row["tpr"], optimal, se)
        # per-sample variances cost a little at the lowest FPRs, never more than a fifth of the optimum
        assert s.loc[("lira_online", fpr), "tpr"] > 0.8 * optimal - 3.5 * se
        assert s.loc[("loss", fpr), "tpr"] < row["tpr"]  # a global threshold ignores each sample's level
    assert s.loc[("lira_online_fixed", 0.1), "auc"] == pytest.approx(norm.cdf(shift / np.sqrt(2)), abs=0.01)


def test_lira_beats_the_loss_threshold_on_planted_outliers():
    rng = np.random.default_rng(0)
    digits = load_digits().data / 16
    X = np.vstack([digits[rng.permutation(len(digits))[:300]], rng.random((15, 64))])
    ref_masks, target_masks = reference_masks(len(X), 64, seed=0), reference_masks(len(X), 4, seed=1)
    ref = train_references(X, ref_masks, lambda: PCA(16), progress=False)
    target = train_references(X, target_masks, lambda: PCA(16), progress=False)
    summary, _ = membership_audit(target, target_masks, ref, ref_masks, fprs=[0.01])
    s = summary.set_index("attack")
    for attack in ("lira_offline", "lira_online"):
        assert s.loc[attack, "tpr_ci_low"] > s.loc["loss", "tpr_ci_high"], summary
        assert s.loc[attack, "tpr"] > 3 * s.loc["loss", "tpr"]


def test_summary_counts_intervals_and_warning():
    target, _, ref, masks = _independent(1, n=300, n_targets=1)
    member = np.arange(300) % 10 == 0
    with pytest.warns(UserWarning, match=r"only 270 non-members.*0\.001"):
        summary, roc = membership_audit(target, member, ref, masks, attacks=["loss"], fprs=FPRS)
    assert summary["fpr_resolved"].tolist() == [False, True, True]
    first = summary.iloc[0]
    assert first["n_false_positives"] == 0 and first["n_members"] == 30 and first["n_nonmembers"] == 270
    assert first["tpr"] == first["n_true_positives"] / 30
    # the ROC: monotone, from FPR 0 to (1, 1), and the lowest FPR step kept
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    assert roc["fpr"].iloc[0] == 0 and roc[["fpr", "tpr"]].iloc[-1].tolist() == [1, 1]
    assert roc["fpr"][roc["fpr"] > 0].min() == pytest.approx(1 / 270)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said in the frame only
        quiet = membership_audit(target, member, ref, masks, attacks=["loss"], fprs=FPRS, warn_unresolved=False)
    pd.testing.assert_frame_equal(quiet[0], summary)
    pd.testing.assert_frame_equal(quiet[1], roc)


def test_roc_is_thinned_to_about_n_points():
    target, member, ref, masks = _independent(2, n=20000, n_targets=1)
    _, roc = membership_audit(target, member, ref, masks, attacks=["loss", "rmia"], n_roc_points=100)
    assert roc.groupby("attack").size().between(50, 102).all()


def test_attack_scores_are_tidy_and_higher_for_members():
    masks = reference_masks(6, 4, seed=0)
    ref = np.where(masks, 0.5, 1.0) * np.linspace(1, 2, 6)
    member = np.array([True, False, True, False, True, False])
    target = np.where(member, 0.5, 1.0) * np.linspace(1, 2, 6)
    frame = attack_scores(target, ref, masks)
    assert list(frame.columns) == ["attack", "target", "sample", "score"] and len(frame) == 6 * len(ATTACKS)
    for attack, s in frame.groupby("attack"):
        scores = s["score"].to_numpy()
        if attack != "loss":  # calibrated per sample: every member above every non-member
            assert scores[member].min() > scores[~member].max(), attack


@pytest.mark.parametrize("kwargs, match", [
    (dict(attacks=["lira"]), "unknown attack"),
    (dict(fprs=[0.5, 1.0]), "fprs"),
    (dict(confidence=1.0), "confidence"),
    (dict(is_member=np.zeros(20, dtype=bool)), "members and non-members"),
    (dict(is_member=np.ones(20)), "bool"),
    (dict(target_errors=np.ones(19)), "same pool"),
    (dict(target_errors=-np.ones(20)), "non-negative"),
    (dict(ref_masks=np.zeros((4, 20), dtype=bool)), "empty training half"),
])
def test_membership_audit_rejects(rng, kwargs, match):
    masks = reference_masks(20, 4)
    args = dict(target_errors=rng.random(20), is_member=np.arange(20) % 2 == 0, ref_errors=rng.random((4, 20)),
                ref_masks=masks)
    args.update(kwargs)
    if "target_errors" in kwargs and "is_member" not in kwargs and len(kwargs["target_errors"]) != 20:
        args["is_member"] = np.arange(19) % 2 == 0
    with pytest.raises(ValueError, match=match):
        membership_audit(**args)


def test_every_sample_needs_in_and_out_references(rng):
    masks = reference_masks(20, 4)
    masks[:, 3] = True
    with pytest.raises(ValueError, match=r"sample\(s\) \[3\] have no 'out'"):
        attack_scores(rng.random(20), rng.random((4, 20)), masks, attacks=["lira_offline"])


def test_plot_audit_roc_draws_each_attack_on_log_axes():
    target, member, ref, masks = _gaussian(0, 1.0, n=2000, n_models=16)
    summary, roc = membership_audit(target, member, ref, masks, attacks=["loss", "lira_online"])
    ax = plot_audit_roc(roc, summary=summary)
    gids = [line.get_gid() for line in ax.get_lines()]
    assert gids == ["roc:loss", "roc:lira_online", "chance"]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    chance = ax.get_lines()[-1]
    np.testing.assert_array_equal(chance.get_xdata(), chance.get_ydata())
    assert all(np.all(line.get_xdata() > 0) for line in ax.get_lines())
    assert "AUC" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="missing column"):
        plot_audit_roc(pd.DataFrame({"fpr": [0.1]}))


def test_plot_audit_roc_of_a_perfect_attack_stays_off_the_border_and_says_so():
    # the widest model of the default study: every attack flags every member at every FPR (six identical lines)
    fpr = np.r_[0.0, np.geomspace(1e-3, 1, 20)]
    roc = pd.concat([pd.DataFrame({"attack": a, "fpr": fpr, "tpr": np.r_[0.0, np.ones(20)]})
                     for a in ("loss", "lira_online", "rmia")])
    ax = plot_audit_roc(roc)
    ax.figure.canvas.draw()
    to_axes = ax.transData + ax.transAxes.inverted()
    for line in ax.get_lines()[:3]:
        heights = to_axes.transform(line.get_xydata())[:, 1]
        assert 0.5 < heights.min() and heights.max() < 0.95  # drawn inside the box, not on its top edge
    (note,) = [t for t in ax.texts if t.get_gid() == "all-flagged"]
    assert "every attack flags all members" in note.get_text()
    partial = plot_audit_roc(roc.assign(tpr=lambda r: np.where(r["fpr"] > 0, np.maximum(r["fpr"], 0.3), 0.0)),
                             ax=plt.subplots()[1])
    assert not [t for t in partial.texts if t.get_gid() == "all-flagged"]
