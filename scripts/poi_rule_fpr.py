"""How often two arms with no difference look different, by two decision rules, at n seeds per arm:

  "CI excludes 0.5"  the 95% stratified-bootstrap CI of P(X > Y) (rliable's percentile interval,
                     2,000 resamples) lies entirely above or below 0.5 (the rule docs/results.md
                     used before differ 0.3)
  "p < 0.05"         the exact two-sided Mann-Whitney p (what `differ summary` reports)

Both arms are drawn from one continuous distribution (no ties), so every "difference" is a false
positive. The bootstrap is rliable's procedure, vectorised (each arm resampled with replacement on
its own, P(X > Y) with ties counted half, 2.5% and 97.5% percentiles); `--check` compares it with
rliable on a few tables first.

    python scripts/poi_rule_fpr.py [--sims 4000] [--check]
"""

import argparse

import numpy as np
from scipy.stats import mannwhitneyu


def poi_ci(x: np.ndarray, y: np.ndarray, reps: int, rng: np.random.Generator) -> tuple[float, float]:
    n, m = len(x), len(y)
    xb = x[rng.integers(0, n, (reps, n))]
    yb = y[rng.integers(0, m, (reps, m))]
    gt = (xb[:, :, None] > yb[:, None, :]).mean((1, 2))
    eq = (xb[:, :, None] == yb[:, None, :]).mean((1, 2))
    return tuple(np.percentile(gt + 0.5 * eq, [2.5, 97.5]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=4000)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    if args.check:
        from differ.experiments.stats import prob_improvement

        for _ in range(3):
            x, y = rng.normal(size=5), rng.normal(size=5)
            _, lo, hi = prob_improvement(x, y, reps=args.reps)
            vec = ", ".join(f"{v:.3f}" for v in poi_ci(x, y, args.reps, rng))
            print(f"rliable [{lo:.3f}, {hi:.3f}]  vectorised [{vec}]")
    print(f"{args.sims} null tables per row (both arms N(0, 1)); false-positive rate with its binomial sd")
    print("| seeds per arm | CI of P(X > Y) excludes 0.5 | exact Mann-Whitney p < 0.05 |")
    print("| --- | --- | --- |")
    for n in (3, 5, 10):
        ci_hits = p_hits = 0
        for _ in range(args.sims):
            x, y = rng.normal(size=n), rng.normal(size=n)
            lo, hi = poi_ci(x, y, args.reps, rng)
            ci_hits += lo > 0.5 or hi < 0.5
            p_hits += mannwhitneyu(x, y, method="exact").pvalue < 0.05
        f = [h / args.sims for h in (ci_hits, p_hits)]
        print(
            f"| {n} | {f[0]:.3f} ± {np.sqrt(f[0] * (1 - f[0]) / args.sims):.3f} | "
            f"{f[1]:.3f} ± {np.sqrt(f[1] * (1 - f[1]) / args.sims):.3f} |"
        )


if __name__ == "__main__":
    main()
