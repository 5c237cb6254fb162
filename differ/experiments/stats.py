"""The statistics of a results table, on per-seed scores: the per-run scores (`final`, `auc`), the
interquartile mean and the probability of improvement with stratified-bootstrap CIs (rliable),
the exact two-sided Mann-Whitney p, Holm's adjustment and the Hodges-Lehmann shift with its
exact CI."""

from __future__ import annotations

import numpy as np

FINAL_FRACTION = 0.1  # `final` averages the evaluations in the last 10% of a run


def final_score(t: np.ndarray, v: np.ndarray) -> float:
    if len(t) == 0:
        return float("nan")
    return float(v[t >= (1 - FINAL_FRACTION) * t[-1]].mean())


def auc_score(t: np.ndarray, v: np.ndarray) -> float:
    if len(t) < 2 or t[-1] == t[0]:
        return float(v[-1]) if len(t) else float("nan")
    return float(((v[1:] + v[:-1]) / 2 * np.diff(t)).sum() / (t[-1] - t[0]))


def _interval(data, func, reps: int, seed: int) -> tuple[float, float, float]:
    """rliable's point estimate and 95% stratified-bootstrap CI of func(data)."""
    point, low, high = interval_estimates(data, func, reps, seed)
    return float(point[0]), float(low[0]), float(high[0])


def interval_estimates(data, func, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rliable's point estimates and 95% stratified-bootstrap CIs of the vector func(data)."""
    import warnings

    try:
        from rliable import library
    except ImportError:
        raise ImportError("summary statistics need rliable: pip install 'differ-marl[analysis]'") from None
    # rliable's stratified bootstraps draw their resampling indices from the global np.random,
    # whatever random_state says: seed that too (and put it back) so the same scores always give
    # the same interval
    global_state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch (under rliable) calls its own `random_state` deprecated
            warnings.simplefilter("ignore", FutureWarning)
            point, ci = library.get_interval_estimates(
                {"k": data}, func, reps=reps, random_state=np.random.RandomState(seed)
            )
    finally:
        np.random.set_state(global_state)
    return np.asarray(point["k"], float), np.asarray(ci["k"][0], float), np.asarray(ci["k"][1], float)


def iqm_ci(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean of per-seed scores and its 95% stratified-bootstrap CI."""
    from rliable import metrics

    scores = np.asarray(scores, float).reshape(-1, 1)  # (runs, tasks=1)
    return _interval(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps, seed)


def prob_improvement(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """P(X > Y) over seeds (Mann-Whitney; ties count half) with its 95% bootstrap CI."""
    from rliable import metrics

    x, y = np.asarray(x, float).reshape(-1, 1), np.asarray(y, float).reshape(-1, 1)
    return _interval((x, y), lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps, seed)


def mann_whitney_p(x, y) -> tuple[float, str]:
    """Two-sided Mann-Whitney p of per-seed values x vs y, and how it was computed: scipy's exact
    U distribution when no two values tie; with ties (e.g. win rates at 0), the exact permutation
    distribution of U over every split of the pooled values (scipy's PermutationMethod), which
    accounts for the ties; past 10^6 splits, the normal approximation with tie correction."""
    from math import comb

    from scipy.stats import PermutationMethod, mannwhitneyu

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        return float("nan"), ""
    pooled = np.concatenate([x, y])
    distinct = len(np.unique(pooled))
    if distinct == len(pooled):
        return float(mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue), "exact"
    if distinct == 1:
        return 1.0, "exact (permutation)"  # every value equal: nothing to tell the two apart
    if comb(len(pooled), len(x)) <= 10**6:
        method = PermutationMethod(n_resamples=np.inf)
        return float(mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue), "exact (permutation)"
    return float(mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").pvalue), "normal approx."


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p values (same order; NaN stays NaN)."""
    idx = [i for i, p in enumerate(pvalues) if np.isfinite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    out, running = [float("nan")] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        out[i] = running
    return out


def u_null_cdf(n: int, m: int) -> np.ndarray:
    """P(U <= u) for u = 0..n·m under the null of the Mann-Whitney test without ties (the classic
    recursion over the number of orderings: c(n, m, u) = c(n−1, m, u−m) + c(n, m−1, u))."""
    c = [[None] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                c[i][j] = np.array([1.0])
                continue
            out = np.zeros(i * j + 1)
            a, b = c[i - 1][j], c[i][j - 1]
            out[j : j + len(a)] += a
            out[: len(b)] += b
            c[i][j] = out
    counts = c[n][m]
    return np.cumsum(counts) / counts.sum()


def shift_ci(x, y, level: float = 0.95) -> tuple[float, float, float, float]:
    """The shift of x over y, Hodges-Lehmann's estimate (the median of the n·m differences
    x_i − y_j), and its distribution-free confidence interval from the Mann-Whitney test
    inverted: [d_(k), d_(nm−k+1)] with the largest k whose exact coverage, 1 − 2·P(U <= k−1),
    is at least `level`. Returns (estimate, low, high, coverage): few seeds cannot reach 95% (3
    vs 3 seeds: at most 90%, the widest interval [min, max] of the differences), and the coverage
    says what the interval really has. It excludes 0 exactly where the exact test's p is at most
    1 − coverage (at 5 vs 5 seeds: where p < 0.05). The coverage is exact for untied values;
    with ties (win rates at 0) it is approximate."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        return (float("nan"),) * 4
    d = np.sort((x[:, None] - y[None, :]).ravel())
    cdf = u_null_cdf(len(x), len(y))
    k = 1
    while k < len(d) // 2 and 1 - 2 * cdf[k] >= level:  # cdf[k] = P(U <= k): the next interval in
        k += 1
    coverage = 1 - 2 * cdf[k - 1]
    return float(np.median(d)), float(d[k - 1]), float(d[len(d) - k]), float(coverage)
