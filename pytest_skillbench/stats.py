"""Statistics as pure functions over 0/1 outcome arrays (numpy in, plain floats out).

Conventions follow the reference study: McNemar uses the exact two-sided binomial test when b + c < 25 and
the chi-squared test with continuity correction otherwise; bootstrap CIs resample tasks with replacement
(10,000 resamples, percentile 2.5 / 97.5, seeded) and are vectorised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 20251122


def _scipy_stats():
    """scipy.stats, imported on first use: scipy costs ~1 s to import, and this module is reached from the
    pytest plugin's session, which must stay cheap when no student is evaluated."""
    from scipy import stats

    return stats


def wilson(passed: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) is returned for n == 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = passed / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if passed == 0 else max(0.0, centre - half)
    hi = 1.0 if passed == n else min(1.0, centre + half)
    return (lo, hi)


@dataclass(frozen=True)
class McNemar:
    b: int
    c: int
    statistic: float | None
    p: float
    method: str

    def to_dict(self) -> dict:
        return {"b": self.b, "c": self.c, "statistic": self.statistic, "p": self.p, "method": self.method}


def mcnemar(b: int, c: int) -> McNemar:
    """Paired test on discordant counts: b = passed baseline only, c = passed curated only."""
    n = b + c
    if n == 0:
        return McNemar(b, c, None, 1.0, "exact")
    if n < 25:
        p = float(_scipy_stats().binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue)
        return McNemar(b, c, None, min(1.0, p), "exact")
    stat = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, float(stat), float(_scipy_stats().chi2.sf(stat, 1)), "chi2_cc")


def _indices(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(resamples, n), dtype=np.int32)


def paired_bootstrap(diff: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
                     ) -> tuple[float, float]:
    """Percentile 95% CI of mean(diff) over tasks resampled with replacement (diff per task)."""
    diff = np.asarray(diff, dtype=np.float64)
    n = diff.size
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = diff[_indices(n, resamples, rng)].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def delta_ci(baseline: np.ndarray, curated: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> tuple[float, tuple[float, float]]:
    """Δ = mean(curated) - mean(baseline) over paired tasks, with its paired bootstrap CI."""
    d = np.asarray(curated, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    return (float(d.mean()) if d.size else float("nan"), paired_bootstrap(d, resamples, seed))


def cross_model(diff_a: np.ndarray, diff_b: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED) -> dict:
    """Δ_A - Δ_B, each model's per-task differences resampled independently (the saturation test).

    one_sided_p is the fraction of resamples with Δ_A - Δ_B <= 0.
    """
    a = np.asarray(diff_a, dtype=np.float64)
    b = np.asarray(diff_b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    ma = a[_indices(a.size, resamples, rng)].mean(axis=1)
    mb = b[_indices(b.size, resamples, rng)].mean(axis=1)
    d = ma - mb
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {"difference": float(a.mean() - b.mean()), "ci95": [float(lo), float(hi)],
            "one_sided_p": float(np.mean(d <= 0))}


def paired_table(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild per-task (baseline, curated) outcomes from a 2x2 paired table (for published figures)."""
    base = np.array([1] * a + [1] * b + [0] * c + [0] * d, dtype=np.int8)
    cur = np.array([1] * a + [0] * b + [1] * c + [0] * d, dtype=np.int8)
    return base, cur


def cohen_kappa(x: np.ndarray, y: np.ndarray) -> float:
    """Cohen's kappa of two binary judgings of the same episodes (1.0 when they are identical)."""
    x = np.asarray(x, dtype=bool)
    y = np.asarray(y, dtype=bool)
    n = x.size
    if n == 0:
        return float("nan")
    po = float(np.mean(x == y))
    pa, pb = float(x.mean()), float(y.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return 1.0 if po == 1.0 else 0.0
    return (po - pe) / (1 - pe)


def holm(pvalues: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (monotone, never below the raw p)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def bonferroni(pvalues: list[float]) -> list[float]:
    m = len(pvalues)
    return [min(1.0, p * m) for p in pvalues]


def mde_paired(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Minimum detectable Δ for a paired McNemar test (Connor's approximation), solved by bisection.

    n pairs, discordance = (b + c) / n. Returns None when it cannot be computed (n == 0).
    """
    if n <= 0:
        return None
    za = _scipy_stats().norm.ppf(1 - alpha / 2)
    zb = _scipy_stats().norm.ppf(power)
    pd = max(discordance, 1.0 / n)

    def needed(delta: float) -> float:
        return (za * math.sqrt(pd) + zb * math.sqrt(max(pd - delta * delta, 0.0))) ** 2 / (delta * delta)

    lo, hi = 1e-6, min(1.0, pd)
    if needed(hi) > n:
        return float(hi)
    for _ in range(80):
        mid = (lo + hi) / 2
        if needed(mid) > n:
            lo = mid
        else:
            hi = mid
    return float(hi)


def spearman(x: list[float], y: list[float]) -> dict:
    """Spearman rho (scipy) with the number of tied x values shown, as per-skill tables need."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.size < 3 or np.all(xs == xs[0]) or np.all(ys == ys[0]):
        return {"rho": None, "p": None, "n": int(xs.size), "tied_x": int(xs.size - np.unique(xs).size)}
    r = _scipy_stats().spearmanr(xs, ys)
    return {"rho": float(r.statistic), "p": float(r.pvalue), "n": int(xs.size),
            "tied_x": int(xs.size - np.unique(xs).size)}


def clustered_se(outcomes: np.ndarray, clusters: list[str]) -> float | None:
    """Standard error of a pass rate with tasks clustered by skill (CR1 sandwich estimator)."""
    y = np.asarray(outcomes, dtype=float)
    n = y.size
    groups = sorted(set(clusters))
    g = len(groups)
    if n == 0 or g < 2:
        return None
    p = y.mean()
    idx = {name: i for i, name in enumerate(groups)}
    sums = np.zeros(g)
    np.add.at(sums, [idx[c] for c in clusters], y - p)
    return float(math.sqrt(g / (g - 1) * float(np.sum(sums ** 2))) / n)
