"""The epsilon lower bound on constructed truths: randomized response is exactly epsilon-DP for each membership bit."""
import numpy as np
import pytest

from analysis.measures.privacy import epsilon_lower_bound


def _randomized_response(epsilon, n, rng):
    """Members and a score that reports each sample's membership truthfully with probability e^eps / (1 + e^eps):
    the best test of one bit against an epsilon-DP release of it."""
    member = rng.random(n) < 0.5
    truthful = rng.random(n) < np.exp(epsilon) / (1 + np.exp(epsilon))
    return np.where(truthful, member, ~member).astype(float) + 0.01 * rng.random(n), member


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_the_bound_stays_below_the_true_epsilon_and_comes_close_with_many_samples(epsilon):
    rng = np.random.default_rng(0)
    bounds = [epsilon_lower_bound(*_randomized_response(epsilon, 4000, rng), seed=i)["epsilon_lb"] for i in range(40)]
    assert np.mean(np.array(bounds) > epsilon) <= 0.05  # holds at 95% confidence
    assert np.median(bounds) > 0.6 * epsilon  # and is not vacuous: 2,000 samples count


def test_scores_that_ignore_membership_prove_nothing():
    rng = np.random.default_rng(1)
    member = rng.random(3000) < 0.75  # unbalanced, like the study's pool
    bounds = [epsilon_lower_bound(rng.normal(size=3000), member, seed=i)["epsilon_lb"] for i in range(40)]
    assert np.mean(np.array(bounds) > 0) <= 0.05


def test_a_perfect_attack_is_bounded_by_the_number_of_samples_and_delta_lowers_the_bound():
    member = np.arange(4000) % 4 != 0
    res = epsilon_lower_bound(member.astype(float), member)
    assert res["tpr"] == 1 and res["fpr"] == 0 and res["n_members"] == 1500 and res["n_nonmembers"] == 500
    # no error among 1,500 members and 500 non-members: the one-sided 98.75% Clopper-Pearson ends are
    # 0.0125^(1/n) for the rates seen as 1 and 1 - 0.0125^(1/n) for those seen as 0; calling low scores
    # non-members gives the larger bound, log(TNR_low / FNR_high)
    expected = np.log(0.0125 ** (1 / 500) / (1 - 0.0125 ** (1 / 1500)))
    assert res["epsilon_lb"] == pytest.approx(expected, rel=1e-6) and res["direction"] == "non-member"
    assert epsilon_lower_bound(member.astype(float), member, delta=0.5)["epsilon_lb"] < res["epsilon_lb"]


@pytest.mark.parametrize("kwargs, match", [
    ({"scores": [[0.0]], "is_member": [[True]]}, "1-D"),
    ({"scores": [0.0] * 8, "is_member": [1] * 8}, "is_member must be a bool"),
    ({"scores": [np.nan] * 8, "is_member": [True] * 8}, "finite"),
    ({"scores": [0.0] * 8, "is_member": [True] * 6 + [False] * 2}, "at least 4"),
    ({"scores": [0.0] * 8, "is_member": [True] * 4 + [False] * 4, "delta": 1.0}, "delta"),
])
def test_bad_input_is_named(kwargs, match):
    kwargs = {k: np.asarray(v) if k in ("scores", "is_member") else v for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=match):
        epsilon_lower_bound(**kwargs)
