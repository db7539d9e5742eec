"""analysis.intervals: exact binomial, DeLong and t intervals against scipy, brute force and simulation."""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from analysis.intervals import (
    FPRResolutionWarning, auc_interval, clopper_pearson, delong_auc, mean_interval, one_standard_error, seed_interval,
    tpr_at_fpr_interval,
)
from analysis.memorization import membership_auc, tpr_at_fpr


# --- Clopper-Pearson -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 7, 50, 360])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_scipy_exact_binomial_interval(n, confidence):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        expected = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
        low, high = clopper_pearson(k, n, confidence)
        assert low == pytest.approx(expected.low, abs=1e-12)
        assert high == pytest.approx(expected.high, abs=1e-12)


def test_clopper_pearson_broadcasts_and_rejects_bad_counts():
    low, high = clopper_pearson(np.array([0, 3, 10]), 10)
    assert low.shape == high.shape == (3,) and low[0] == 0 and high[2] == 1
    with pytest.raises(ValueError, match="need 0 <= successes <= n"):
        clopper_pearson(11, 10)
    with pytest.raises(ValueError, match="confidence must be in"):
        clopper_pearson(1, 10, confidence=1.0)


# --- DeLong and the AUC interval -------------------------------------------------------------------------------

def brute_force_delong(errors_train, errors_test):
    """DeLong et al. (1988) from its definition: placement values over all (train, test) pairs, O(m n)."""
    wins = (errors_train[:, None] < errors_test[None, :]) + 0.5 * (errors_train[:, None] == errors_test[None, :])
    v10, v01 = wins.mean(1), wins.mean(0)
    return wins.mean(), v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01)


@pytest.mark.parametrize("m, n, levels", [(30, 40, None), (25, 25, 5), (60, 17, 3)])
def test_fast_delong_matches_its_definition_and_membership_auc(rng, m, n, levels):
    errors_train, errors_test = rng.standard_normal(m) - 0.3, rng.standard_normal(n)
    if levels:  # heavy ties
        errors_train, errors_test = np.round(errors_train * levels / 3), np.round(errors_test * levels / 3)
    auc, variance = delong_auc(errors_train, errors_test)
    expected_auc, expected_variance = brute_force_delong(errors_train, errors_test)
    assert auc == pytest.approx(expected_auc, abs=1e-12)
    assert auc == pytest.approx(membership_auc(errors_train, errors_test), abs=1e-12)
    assert variance == pytest.approx(expected_variance, rel=1e-10)


def test_delong_variance_matches_a_bootstrap(rng):
    m, n, draws = 150, 200, 2000
    errors_train, errors_test = rng.standard_normal(m) - 0.5, rng.standard_normal(n)
    _, variance = delong_auc(errors_train, errors_test)
    boot = np.empty(draws)
    for b in range(draws):  # resample each split separately, as the two samples were drawn
        boot[b] = delong_auc(rng.choice(errors_train, m), rng.choice(errors_test, n))[0]
    # the bootstrap variance has a relative Monte Carlo error of about sqrt(2 / draws) = 3%
    assert variance == pytest.approx(boot.var(ddof=1), rel=0.15)


def test_auc_interval_covers_one_half_for_a_model_independent_of_the_data():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):
        low, high = auc_interval(rng.exponential(size=100), rng.exponential(size=80))
        covered += low <= 0.5 <= high
    assert covered >= 180  # nominal 95%: 190 expected; 180 is 2.2 binomial sds below


def test_auc_interval_covers_the_true_auc_of_a_shifted_model():
    # errors N(0, 1) for train, N(delta, 1) for test: true AUC = Phi(delta / sqrt(2))
    rng, delta = np.random.default_rng(1), 1.5
    truth = stats.norm.cdf(delta / math.sqrt(2))
    covered = 0
    for _ in range(200):
        low, high = auc_interval(rng.standard_normal(60), rng.standard_normal(60) + delta)
        covered += low <= truth <= high
    assert covered >= 180


def test_auc_interval_stays_inside_zero_one_and_bends_near_the_end(rng):
    errors_train, errors_test = rng.standard_normal(40), rng.standard_normal(40) + 3.0
    auc = membership_auc(errors_train, errors_test)
    low, high = auc_interval(errors_train, errors_test)
    assert 0 < low < auc < high < 1
    assert high - auc < auc - low  # the logit scale is asymmetric near 1


@pytest.mark.parametrize("m, n", [(3, 3), (50, 80), (360, 360)])
def test_perfect_separation_gives_the_exact_bound_on_disjoint_pairs(m, n):
    errors_train, errors_test = np.linspace(0, 1, m), np.linspace(2, 3, n)
    pairs = min(m, n)
    bound = stats.binomtest(pairs, pairs).proportion_ci(method="exact").low
    assert auc_interval(errors_train, errors_test) == pytest.approx((bound, 1.0), abs=1e-12)
    assert auc_interval(errors_test, errors_train) == pytest.approx((0.0, 1 - bound), abs=1e-12)


def test_auc_interval_bad_input():
    with pytest.raises(ValueError, match="errors_train must have at least 2 sample"):
        auc_interval([0.1], [0.2, 0.3])
    with pytest.raises(ValueError, match="confidence must be in"):
        auc_interval([0.1, 0.2], [0.2, 0.3], confidence=95)
    assert auc_interval([0.5, 0.5], [0.5, 0.5]) == (0.5, 0.5)  # all tied: nothing varies


# --- TPR at a fixed FPR ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.1])
def test_tpr_interval_is_clopper_pearson_on_the_flagged_train_samples(rng, fpr):
    errors_train, errors_test = rng.standard_normal(300) - 1.0, rng.standard_normal(400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 400 unseen samples resolve every fpr here: no warning
        out = tpr_at_fpr_interval(errors_train, errors_test, fpr=fpr)
    assert out["tpr"] == pytest.approx(tpr_at_fpr(errors_train, errors_test, fpr=fpr), abs=1e-15)
    assert out["n_flagged"] == round(out["tpr"] * 300) and out["n_train"] == 300 and out["resolvable"]
    expected = stats.binomtest(out["n_flagged"], 300).proportion_ci(method="exact")
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert out["achieved_fpr"] <= fpr and out["achieved_fpr"] == math.floor(fpr * 400 + 1e-9) / 400


def test_tpr_interval_warns_in_plain_words_when_the_unseen_split_is_too_small(rng):
    with pytest.warns(FPRResolutionWarning, match=r"has 50 samples, fewer than the 100 \(1 / fpr\) needed"):
        out = tpr_at_fpr_interval(rng.random(200), rng.random(50), fpr=0.01)
    assert not out["resolvable"] and out["achieved_fpr"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tpr_at_fpr_interval(rng.random(200), rng.random(100), fpr=0.01)["resolvable"]


def test_tpr_interval_covers_the_true_rate():
    # train errors N(-1, 1), test N(0, 1): at the threshold t, TPR = Phi(t + 1); the interval is conditional on t
    rng, covered = np.random.default_rng(2), 0
    for _ in range(200):
        errors_test = rng.standard_normal(500)
        out = tpr_at_fpr_interval(rng.standard_normal(300) - 1.0, errors_test, fpr=0.05)
        threshold = np.partition(errors_test, 25)[25]
        covered += out["ci_low"] <= stats.norm.cdf(threshold + 1) <= out["ci_high"]
    assert covered >= 180


def test_tpr_interval_bad_input(rng):
    with pytest.raises(ValueError, match=r"fpr must be a finite number > 0"):
        tpr_at_fpr_interval(rng.random(5), rng.random(5), fpr=0)
    with pytest.raises(ValueError, match=r"fpr must be in \(0, 1\]"):
        tpr_at_fpr_interval(rng.random(5), rng.random(5), fpr=1.5)
    with pytest.raises(ValueError, match="errors_test must be a 1-D array"):
        tpr_at_fpr_interval(rng.random(5), rng.random((5, 2)))


# --- means over seeds and the one-standard-error rule -----------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 10])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_mean_interval_matches_scipy_t_test(rng, n, confidence):
    values = rng.standard_normal(n) * 0.3 + 1.0
    mean, sd, low, high = mean_interval(values, confidence)
    expected = stats.ttest_1samp(values, 0.0).confidence_interval(confidence_level=confidence)
    assert (mean, sd) == pytest.approx((values.mean(), values.std(ddof=1)), abs=1e-15)
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_mean_interval_of_one_value_has_no_spread():
    mean, sd, low, high = mean_interval([0.25])
    assert mean == 0.25 and math.isnan(sd) and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="values contains 1 NaN"):
        mean_interval([0.1, math.nan])


def test_one_standard_error_threshold():
    means, sds, counts = [1.0, 0.8, 0.9], [0.1, 0.2, 0.1], [4, 4, 4]
    assert one_standard_error(means, sds, counts) == pytest.approx(0.8 + 0.2 / 2)
    assert one_standard_error(means, [0.1, math.nan, 0.1], [4, 1, 4]) == 0.8  # one seed: the plain minimum
    with pytest.raises(ValueError, match="counts must be positive integers"):
        one_standard_error(means, sds, [4, 0, 4])
    with pytest.raises(ValueError, match="must have the same shape"):
        one_standard_error(means, sds[:2], counts)


# ---------------------------------------------------------------- intervals over seeds, inside their range
def _beta(rng, mean, concentration, shape):
    return rng.beta(mean * concentration, (1 - mean) * concentration, shape)


def _gamma(rng, mean, cv, shape):
    return rng.gamma(1 / cv**2, mean * cv**2, shape)


# (scale, true mean, draw of shape (draws, seeds), the range every bound must respect)
TRUTHS = {
    "auc near chance": ("logit", 0.52, lambda rng, s: _beta(rng, 0.52, 60, s), (0, 1)),
    "auc near 1": ("logit", 0.97, lambda rng, s: _beta(rng, 0.97, 40, s), (0, 1)),
    "tpr at 1% fpr": ("logit", 0.10, lambda rng, s: rng.binomial(300, 0.10, s) / 300, (0, 1)),
    "clean error": ("log", 0.05, lambda rng, s: _gamma(rng, 0.05, 0.3, s), (0, np.inf)),
    "error spread widely": ("log", 0.12, lambda rng, s: _gamma(rng, 0.12, 0.6, s), (0, np.inf)),
    "noise memorization": ("share", 0.76, lambda rng, s: _beta(rng, 0.76, 30, s), (0, 1)),
    "memorization near 0": ("share", 0.03, lambda rng, s: _beta(rng, 0.03, 80, s), (0, 1)),
    "seen minus unseen": ("signed", 0.2, lambda rng, s: rng.normal(0.2, 0.1, s), (-1, 1)),
    "clean error minus pca's": ("raw", -0.003, lambda rng, s: rng.normal(-0.003, 0.002, s), (-np.inf, np.inf)),
}


@pytest.mark.parametrize("n_seeds", [2, 3])
@pytest.mark.parametrize("name", list(TRUTHS))
def test_seed_interval_covers_the_truth_and_stays_in_range(rng, name, n_seeds):
    """Coverage of at least 93% in every block of 200 draws would fail by chance for an exact 95% interval
    (its share over 200 draws has a standard deviation of 1.5 points); 2,000 draws pin it to half a point."""
    scale, truth, draw, (lowest, highest) = TRUTHS[name]
    trials = 300 if name == "tpr at 1% fpr" else None
    values = draw(rng, (2000, n_seeds))
    mean, sd, low, high = seed_interval(values, scale, n_trials=trials)
    assert mean.shape == low.shape == (2000,)
    assert 0.93 <= np.mean((low <= truth) & (truth <= high)) <= 0.99
    assert np.all(lowest <= low) and np.all(low <= high) and np.all(high <= highest)
    if lowest == 0 and trials is None:  # the log and logit scales never reach the end of the range from inside
        assert np.all(low[values.min(axis=1) > 0] > 0)


def test_three_seeds_give_an_informative_interval(rng):
    """The default study's three seeds: a membership AUC that varies by 0.01 between seeds is pinned to a few
    hundredths, an error that varies by 2% to within 5% of itself."""
    auc = seed_interval([0.951, 0.962, 0.957], "logit")
    assert 0.93 < auc[2] < 0.957 < auc[3] < 0.975
    error = seed_interval([0.0310, 0.0320, 0.0315], "log")
    assert 0.0315 * 0.95 < error[2] < error[3] < 0.0315 * 1.05


def test_noise_memorization_leaves_its_range_only_where_a_seed_does():
    # raw-scale t with two seeds gave 0.763 [0.373, 1.153] for these
    inside = seed_interval([0.709, 0.817], "share")
    assert inside[0] == pytest.approx(0.763) and 0 < inside[2] < 0.709 and 0.817 < inside[3] < 1
    opposed = seed_interval([-0.4, -0.2], "share")  # a model moving against the noise: below 0, never above 1
    assert opposed[2] < -0.4 and -0.2 < opposed[3] < 1
    amplified = seed_interval([1.1, 1.3], "share")  # above 1, never below 0
    assert 0 < amplified[2] < 1.1 and amplified[3] > 1.3


def test_a_difference_of_shares_stays_inside_minus_one_to_one():
    low, high = seed_interval([-0.02, 0.34], "signed")[2:]  # raw t over two seeds: [-2.13, 2.45]
    assert -1 < low < -0.02 and 0.34 < high < 1
    assert seed_interval([0.5, 1.4], "signed")[3] > 1.4  # a seed's difference beyond 1: the raw scale


def test_seed_interval_at_the_ends_and_with_one_seed():
    low, high = seed_interval([1.0, 1.0, 0.99], "logit", n_trials=200)[2:]
    assert 0.9 < low < 0.99 and high == 1.0
    assert seed_interval([0.95, 0.99], "logit", n_trials=36)[3] < 1  # no seed at the end: the plain logit
    assert seed_interval([1.0, 1.0], "logit", n_trials=50)[2:] == (1.0, 1.0)  # no spread between seeds
    mean, sd, low, high = seed_interval([0.3], "logit")
    assert mean == 0.3 and all(math.isnan(v) for v in (sd, low, high))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(values=[0.1, 0.2], scale="probit"), ValueError, "scale must be one of"),
    (dict(values=[0.1, 0.2], scale="logit", n_trials=[10, 20]), ValueError, "one per set of values"),
    (dict(values=[0.1, -0.2], scale="log"), ValueError, "> 0 on the log scale"),
    (dict(values=[0.5, 1.2], scale="logit"), ValueError, r"in \[0, 1\] on the logit scale"),
    (dict(values=[0.5, 0.6], scale="logit", n_trials=0), ValueError, "n_trials must be >= 1"),
    (dict(values=[0.5, math.nan]), ValueError, "values must be finite"),
    (dict(values=[0.5, 0.6], confidence=1.5), ValueError, "confidence must be in"),
])
def test_seed_interval_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        seed_interval(**kwargs)
