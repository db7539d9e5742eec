"""The recommendation on constructed remedy tables: works, none works, nothing to remedy."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.report.remedies import leaks_like_pca, plot_remedies, recommend, remedy_rows  # noqa: E402


def row(remedy, text, error, auc, low, high, gap=0.2, adequate=True, **more):
    return dict(target="ae-k32-h1024", remedy=remedy, remedy_text=text, test_mse_clean=error, membership_auc=auc,
                membership_auc_ci_low=low, membership_auc_ci_high=high, mem_gap=gap, mem_gap_ci_low=gap - 0.02,
                mem_gap_ci_high=gap + 0.02, adequate=adequate, tpr_at_1pct_fpr=auc - 0.4, **more)


PCA = row("pca", "PCA with 32 components", 0.03, 0.51, 0.49, 0.53, gap=0.0, adequate=None)
NONE = row("none", "none", 0.02, 0.99, 0.98, 1.0, gap=0.5)


def test_the_cheapest_remedy_that_works_is_recommended_with_its_cost_and_privacy():
    table = pd.DataFrame([NONE, row("wd0.01", "weight decay 0.01", 0.025, 0.52, 0.5, 0.54, gap=0.01),
                          row("dp1", "DP-SGD, noise multiplier 1", 0.024, 0.5, 0.48, 0.52, gap=0.0, epsilon=3.0,
                              epsilon_lb=0.4),
                          row("do0.5", "dropout 0.5", 0.021, 0.9, 0.88, 0.92), PCA])
    line, = recommend(table)
    # dropout is cheapest but still leaks; DP-SGD costs less error than weight decay and leaks like PCA
    assert line.startswith("For ae-k32-h1024, DP-SGD, noise multiplier 1 is the cheapest remedy")
    assert "20.0% above the 0.02" in line and "epsilon at 3 (delta = 1/n)" in line and "epsilon >= 0.40" in line


def test_no_remedy_that_works_names_the_closest_and_what_it_costs():
    dp = row("dp4", "DP-SGD, noise multiplier 4", 0.3, 0.5, 0.48, 0.52, gap=0.0, adequate=False,
             best_test_mse_clean=0.019)
    wd = row("wd0.01", "weight decay 0.01", 0.025, 0.7, 0.68, 0.72, best_test_mse_clean=0.019)
    line, = recommend(pd.DataFrame([NONE, wd, dp, PCA]))
    # only DP-SGD reaches PCA's leakage: the closest, with its error against the best model's
    assert line.startswith("None of the 2 remedies tried") and "The closest is DP-SGD, noise multiplier 4" in line
    assert "0.3, 1478.9% above the best model's 0.019" in line
    line, = recommend(pd.DataFrame([NONE, wd, dict(dp, membership_auc=0.8, membership_auc_ci_low=0.78,
                                                   membership_auc_ci_high=0.82), PCA]))
    assert "The least leaking of those that keep the error near the best model's is weight decay 0.01" in line


def test_less_leakage_than_pca_counts_as_pca_s_level():
    below = row("wd0.01", "weight decay 0.01", 0.025, 0.45, 0.43, 0.47, gap=-0.05)
    line, = recommend(pd.DataFrame([NONE, below, PCA]))
    assert line.startswith("For ae-k32-h1024, weight decay 0.01 is the cheapest remedy")


def test_an_architecture_that_leaks_like_pca_needs_no_remedy():
    quiet = dict(NONE, membership_auc=0.5, membership_auc_ci_low=0.47, membership_auc_ci_high=0.53, mem_gap=0.01,
                 mem_gap_ci_low=-0.01, mem_gap_ci_high=0.03)
    assert leaks_like_pca(pd.Series(quiet), pd.Series(PCA)) and not leaks_like_pca(pd.Series(NONE), pd.Series(PCA))
    line, = recommend(pd.DataFrame([quiet, row("wd0.01", "weight decay 0.01", 0.025, 0.5, 0.48, 0.52), PCA]))
    assert "needs no remedy" in line


def test_the_table_and_the_figure_show_every_row():
    table = pd.DataFrame([NONE, row("wd0.01", "weight decay 0.01", 0.025, 0.52, 0.5, 0.54), PCA])
    heads, rows = remedy_rows(table)
    assert len(rows) == 3 and len(heads) == len(rows[0]) and rows[2][6] == "–" and rows[1][6] == "yes"
    ax = plot_remedies(table)
    gids = {c.lines[0].get_gid() for c in ax.containers}
    assert {"remedy:ae-k32-h1024:none", "remedy:ae-k32-h1024:wd0.01", "remedy:ae-k32-h1024:pca"} <= gids
    plt.close(ax.figure)
