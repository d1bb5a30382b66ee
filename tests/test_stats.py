import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from pytest_skillbench import stats

PAPER = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper-statistics.json"


def sig(x, n=4):
    return float(f"{x:.{n}g}")


def test_wilson_matches_worked_numbers():
    lo, hi = stats.wilson(140, 200)
    assert lo == pytest.approx(0.6333, abs=1e-4) and hi == pytest.approx(0.7593, abs=1e-4)
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(10, 10)[1] == 1.0


def test_mcnemar_against_scipy():
    # exact: two-sided binomial on the discordant pairs
    m = stats.mcnemar(4, 13)
    assert m.method == "exact"
    assert m.p == pytest.approx(sst.binomtest(4, 17, 0.5).pvalue)
    # 35 discordant pairs: continuity-corrected chi-square, worked by hand: (|10 - 25| - 1)^2 / 35 = 5.6,
    # p = 0.01796 (the reference study's published figure for this table)
    m = stats.mcnemar(10, 25)
    assert m.method == "chi2_cc"
    assert m.statistic == pytest.approx(5.6)
    assert m.p == pytest.approx(0.01796, abs=5e-6)


def test_bootstrap_is_seeded_and_agrees_with_the_normal_interval():
    """Table (140, 10, 25, 25): 10 pairs -1, 25 pairs +1, 165 zeros; delta 0.075, sd sqrt(35/200 - 0.075^2)
    = 0.41165, normal 95% interval 0.075 +/- 1.96 x 0.41165 / sqrt(200) = [0.018, 0.132]; the study
    published [0.02, 0.13]. The percentile bootstrap must land within a resampling error of that."""
    base, cur = stats.paired_table(140, 10, 25, 25)
    delta, (lo, hi) = stats.delta_ci(base, cur)
    assert delta == pytest.approx(0.075)
    assert lo == pytest.approx(0.018, abs=0.006) and hi == pytest.approx(0.132, abs=0.006)
    assert stats.delta_ci(base, cur) == stats.delta_ci(base, cur)  # seeded
    assert stats.delta_ci(base, cur, seed=1) != stats.delta_ci(base, cur, seed=2)


@pytest.mark.skipif(not PAPER.is_file(), reason="../shared reference data not present")
def test_reproduces_published_paired_tables():
    paper = json.loads(PAPER.read_text())
    for row in paper["paired"]:
        base, cur = stats.paired_table(row["a"], row["b"], row["c"], row["d"])
        delta, ci = stats.delta_ci(base, cur)
        assert delta == pytest.approx(row["delta"])
        m = stats.mcnemar(row["b"], row["c"])
        assert m.method == row["mcnemar"]["method"]
        assert sig(m.p) == sig(row["mcnemar"]["p"])
        if "statistic" in row["mcnemar"]:
            assert m.statistic == pytest.approx(row["mcnemar"]["statistic"], abs=0.005)
        assert ci[0] == pytest.approx(row["bootstrap_ci95"][0], abs=0.01)
        assert ci[1] == pytest.approx(row["bootstrap_ci95"][1], abs=0.01)


@pytest.mark.skipif(not PAPER.is_file(), reason="../shared reference data not present")
def test_reproduces_published_cross_model_and_kappa():
    paper = json.loads(PAPER.read_text())
    p1, p2 = paper["paired"]
    b1, c1 = stats.paired_table(p1["a"], p1["b"], p1["c"], p1["d"])
    b2, c2 = stats.paired_table(p2["a"], p2["b"], p2["c"], p2["d"])
    cm = stats.cross_model(c1.astype(float) - b1, c2.astype(float) - b2)
    ref = paper["cross_model"][0]
    assert cm["difference"] == pytest.approx(ref["difference"])
    assert cm["ci95"][0] == pytest.approx(ref["bootstrap_ci95"][0], abs=0.01)
    assert cm["ci95"][1] == pytest.approx(ref["bootstrap_ci95"][1], abs=0.01)
    assert cm["one_sided_p"] == pytest.approx(ref["one_sided_p"], abs=0.02)
    ja = paper["judge_agreement"][0]
    n, a, b, agree = ja["episodes"], ja["judge_a_passed"], ja["judge_b_passed"], ja["agreements"]
    # both-pass k, a-only x, b-only y: k + x = a, k + y = b, x + y = n - agree
    x = (n - agree + a - b) // 2
    y = n - agree - x
    k = a - x
    both_fail = n - k - x - y
    ya = np.array([1] * k + [1] * x + [0] * y + [0] * both_fail)
    yb = np.array([1] * k + [0] * x + [1] * y + [0] * both_fail)
    assert float(np.mean(ya == yb)) == pytest.approx(ja["agreement"])
    assert stats.cohen_kappa(ya, yb) == pytest.approx(ja["cohen_kappa"], abs=0.0005)


def test_holm_and_bonferroni_worked_example():
    p = [0.01, 0.04, 0.03]
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.bonferroni(p) == pytest.approx([0.03, 0.12, 0.09])


def test_clustered_se_reduces_to_the_standard_error_of_the_mean_for_singletons():
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    se = stats.clustered_se(y, [str(i) for i in range(8)])
    assert se == pytest.approx(sst.sem(y))  # scipy: sd (ddof 1) / sqrt(n) = 0.18898
    assert se == pytest.approx(0.188982, abs=1e-6)


def test_clustered_se_worked_example():
    """Clusters a = [1, 1], b = [0, 0], c = [1, 0]: p = 0.5, cluster residual sums +1, -1, 0, CR1 with 3
    clusters: sqrt(3/2 x 2) / 6 = sqrt(3) / 6 = 0.288675 -- larger than the iid 0.2236 (sem), as it should be
    when outcomes agree within clusters."""
    y = np.array([1, 1, 0, 0, 1, 0])
    se = stats.clustered_se(y, ["a", "a", "b", "b", "c", "c"])
    assert se == pytest.approx(0.288675, abs=1e-6)
    assert se > sst.sem(y)


def test_spearman_against_scipy():
    x, y = [0.2, 0.4, 0.4, 0.8, 1.0], [0.3, 0.1, 0.0, -0.2, -0.4]
    r = stats.spearman(x, y)
    assert r["rho"] == pytest.approx(sst.spearmanr(x, y).statistic)
    assert r["tied_x"] == 1


def test_mde_shrinks_with_n():
    assert stats.mde_paired(400, 0.2) < stats.mde_paired(100, 0.2)
    assert stats.mde_paired(0, 0.2) is None


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_symmetric(b, c):
    assert stats.mcnemar(b, c).p == pytest.approx(stats.mcnemar(c, b).p)
    assert 0.0 <= stats.mcnemar(b, c).p <= 1.0


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_in_unit_interval(k, n):
    k = min(k, n)
    lo, hi = stats.wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=10, max_size=80))
def test_bootstrap_ci_contains_delta(diffs):
    d = np.array(diffs, dtype=float)
    if np.all(d == d[0]):
        return
    lo, hi = stats.paired_bootstrap(d, resamples=2000)
    assert lo <= d.mean() <= hi


@given(st.lists(st.booleans(), min_size=1, max_size=50))
def test_kappa_identical_is_one(xs):
    x = np.array(xs)
    assert stats.cohen_kappa(x, x) == pytest.approx(1.0)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_never_below_raw(ps):
    assert all(h >= p - 1e-12 for h, p in zip(stats.holm(ps), ps))
