"""Reading run directories back: curves, per-seed scores and robust statistics.

A run directory is anything holding `config.yaml` and `metrics.jsonl` (what `differ train`
writes). Runs are grouped by (environment, scenario) into panels and by a label into lines: the
algorithm's name, plus whatever else differs between runs of that algorithm in that scenario
(e.g. `differ.eta_warmup=False`), so an ablation sweep needs no naming scheme of its own.

Per-run scores (one number per seed, then aggregated over seeds):
  final  mean of the metric over the evaluations in the run's last 10% of env steps
  auc    normalised area under the curve: ∫ metric dt / (t_last − t_first), trapezoidal,
         i.e. the time-averaged metric (1.0 = perfect from the start for a win rate)
and over seeds the sample sd and the interquartile mean (IQM) of `final` with a 95%
stratified-bootstrap confidence interval (rliable). Each DIFFER variant is compared with its base
method (and any pair asked for): the Hodges-Lehmann shift with its exact Mann-Whitney CI, the
probability of improvement with its bootstrap CI, the exact two-sided Mann-Whitney p on the per-seed scores, and that p
Holm-adjusted over every comparison of the table. A difference is called only where the adjusted
p is below 0.05; otherwise the table says "not detected" with the CI of the difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ..config import SAME_EXPERIMENT_KEYS
from ..errors import ConfigError
from ..store.metrics import read_jsonl
from ..store.rundir import RunDir

DEFAULT_METRIC = "test_battle_won_mean"
FINAL_FRACTION = 0.1  # `final` averages the evaluations in the last 10% of a run
# keys that never distinguish two runs' algorithms: the seed, budgets and bookkeeping
NOT_A_VARIANT = SAME_EXPERIMENT_KEYS | {"seed"}


@dataclass
class Run:
    path: Path
    config: dict  # flattened: {"algo.name": ..., "env.scenario": ..., ...}
    records: list[dict]
    label: str = ""

    @property
    def algo(self) -> str:
        return self.config["algo.name"]

    @property
    def scenario(self) -> str:
        return f"{self.config['env.name']} {self.config['env.scenario']}"

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def series(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(t_env, value) of every record that logged `metric`."""
        pts = [(r["t_env"], r[metric]) for r in self.records if metric in r]
        if not pts:
            return np.zeros(0), np.zeros(0)
        t, v = zip(*pts)
        return np.asarray(t, float), np.asarray(v, float)

    @property
    def t_max(self) -> int:
        return int(self.config["t_max"])

    @property
    def t_env(self) -> int:
        """The last env step the run logged."""
        return max((r["t_env"] for r in self.records), default=0)

    @property
    def finished(self) -> bool:
        """Reached its t_max (a run still going, killed or stopped early has not)."""
        return self.t_env >= self.t_max

    def metrics(self) -> set[str]:
        return set().union(*(r.keys() for r in self.records)) - {"t_env"} if self.records else set()


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "options":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    return out


def _with_defaults(cfg) -> dict:
    """A saved config in today's layout (flat keys moved into their sections) completed with
    today's defaults, so runs made before a key existed still compare equal to runs that have it."""
    from omegaconf.errors import OmegaConfBaseException

    from ..config import migrate, normalise

    try:
        return OmegaConf.to_container(normalise(cfg))
    except OmegaConfBaseException:  # a key since removed: compare as saved (in today's sections)
        try:
            return OmegaConf.to_container(migrate(cfg))
        except OmegaConfBaseException:
            return OmegaConf.to_container(cfg)


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Every run directory at or below the given paths, labelled. Raises on none found."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"{p} does not exist (expected a run or sweep directory)")
        found = [p] if RunDir(p).config.exists() else sorted(c.parent for c in p.rglob(RunDir(p).config.name))
        dirs += [d for d in found if RunDir(d).metrics.exists()]
    runs = []
    for d in dict.fromkeys(dirs):
        cfg = _flatten(_with_defaults(OmegaConf.load(RunDir(d).config)))
        runs.append(Run(d, cfg, read_jsonl(RunDir(d).metrics)))
    if not runs:
        raise ConfigError(f"no run directories (config.yaml + metrics.jsonl) under {', '.join(map(str, paths))}")
    label_runs(runs)
    return runs


def label_runs(runs: list[Run]) -> None:
    """label = algorithm name + the config keys that differ between its runs in one scenario."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault((r.scenario, r.algo), []).append(r)
    for group in groups.values():
        keys = sorted(set().union(*(r.config for r in group)) - NOT_A_VARIANT)
        varying = [k for k in keys if len({json.dumps(r.config.get(k), sort_keys=True) for r in group}) > 1]
        for r in group:
            extra = [f"{k.removeprefix('algo.')}={r.config.get(k)}" for k in varying]
            r.label = r.algo + (f" ({', '.join(extra)})" if extra else "")


def group(runs: list[Run]) -> dict[str, dict[str, list[Run]]]:
    """{scenario: {label: [runs sorted by seed]}} in a stable order."""
    out: dict[str, dict[str, list[Run]]] = {}
    for r in sorted(runs, key=lambda r: (r.scenario, r.label, r.seed)):
        out.setdefault(r.scenario, {}).setdefault(r.label, []).append(r)
    return out


def pick_metric(runs: list[Run], metric: str | None) -> str:
    """The requested metric, or the test win rate, or the test return when no run has battles."""
    if metric:
        if not any(metric in r.metrics() for r in runs):
            known = sorted(set().union(*(r.metrics() for r in runs)))
            raise ConfigError(f"no run logged metric '{metric}'; logged metrics: {', '.join(known)}")
        return metric
    return DEFAULT_METRIC if any(DEFAULT_METRIC in r.metrics() for r in runs) else "test_return_mean"


# ---- per-run scores --------------------------------------------------------------------------
def final_score(t: np.ndarray, v: np.ndarray) -> float:
    if len(t) == 0:
        return float("nan")
    return float(v[t >= (1 - FINAL_FRACTION) * t[-1]].mean())


def auc_score(t: np.ndarray, v: np.ndarray) -> float:
    if len(t) < 2 or t[-1] == t[0]:
        return float(v[-1]) if len(t) else float("nan")
    return float(((v[1:] + v[:-1]) / 2 * np.diff(t)).sum() / (t[-1] - t[0]))


def aligned(runs: list[Run], metric: str, points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Curves of several seeds on one grid (linear interpolation) up to the shortest run's end:
    returns (grid, values [n_runs, points])."""
    series = [r.series(metric) for r in runs]
    series = [(t, v) for t, v in series if len(t)]
    if not series:
        return np.zeros(0), np.zeros((0, 0))
    lo, hi = max(t[0] for t, _ in series), min(t[-1] for t, _ in series)
    grid = np.linspace(lo, hi, points) if hi > lo else np.asarray([hi])
    return grid, np.stack([np.interp(grid, t, v) for t, v in series])


# ---- statistics over seeds ---------------------------------------------------------------------
def _interval(data, func, reps: int, seed: int) -> tuple[float, float, float]:
    """rliable's point estimate and 95% stratified-bootstrap CI of func(data)."""
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
    return float(point["k"][0]), float(ci["k"][0, 0]), float(ci["k"][1, 0])


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


def base_of(algo: str) -> str | None:
    """The method a DIFFER (or -divide) variant is compared with: qmix_differ -> qmix. -divide
    against its base is the paper's check that the decomposition alone changes nothing."""
    for suffix in ("_differ", "_divide"):
        if algo.endswith(suffix):
            return algo.removesuffix(suffix)
    return None


ALPHA = 0.05  # a comparison is called only where its Holm-adjusted p is below this


def ci_level(coverage: float) -> str:
    """How a shift CI is named: 95% where its exact coverage reaches it (5 vs 5 seeds: 96.8%),
    else its coverage (3 vs 3 seeds: 90%)."""
    return "95%" if coverage >= 0.95 else f"{coverage:.0%}"


@dataclass
class Comparison:
    """One arm against another on one per-seed score ("final" or "auc")."""

    label: str
    base: str
    score: str
    shift: tuple[float, float, float, float]  # label over base: Hodges-Lehmann, exact CI, its coverage
    poi: tuple[float, float, float]  # P(label > base), 95% bootstrap CI
    p: float  # two-sided Mann-Whitney, exact
    p_method: str
    p_holm: float = float("nan")  # Holm-adjusted over every comparison of the table

    def verdict(self) -> str:
        d, lo, hi, cover = self.shift
        if np.isfinite(self.p_holm) and self.p_holm < ALPHA:
            return f"{'ahead' if d > 0 else 'behind'} (p_holm = {self.p_holm:.3g})"
        return f"not detected; the {ci_level(cover)} CI of the difference spans [{lo:.3g}, {hi:.3g}]"


@dataclass
class Row:
    scenario: str
    label: str
    algo: str  # the label may name a variant (an ablation); the base method is found from the algo
    seeds: list[int]
    final: list[float]
    auc: list[float]
    iqm: tuple[float, float, float]
    comparisons: list[Comparison] = field(default_factory=list)

    def against(self, score: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.score == score]


def compare(row: Row, base: Row, reps: int) -> list[Comparison]:
    out = []
    for score in ("final", "auc"):  # learning speed too, not only the end point
        x, y = np.array(getattr(row, score)), np.array(getattr(base, score))
        p, method = mann_whitney_p(x, y)
        out.append(Comparison(row.label, base.label, score, shift_ci(x, y), prob_improvement(x, y, reps), p, method))
    return out


def summarise(runs: list[Run], metric: str, reps: int = 2000, pairs: list[tuple[str, str]] = ()) -> list[Row]:
    """Per label and scenario: scores over seeds, and the comparison of every DIFFER variant with
    its base method plus of each (a, b) in `pairs` (labels, e.g. ("maser", "qmix")): the
    Hodges-Lehmann shift with its exact CI, P(improvement) with its bootstrap CI, the exact Mann-Whitney p, and that p
    Holm-adjusted over all the comparisons of the table."""
    rows = []
    for scenario, by_label in group(runs).items():
        here = {}
        for label, rs in by_label.items():
            series = [r.series(metric) for r in rs]
            keep = [(r, s) for r, s in zip(rs, series) if len(s[0])]
            if not keep:
                continue
            final = [final_score(*s) for _, s in keep]
            here[label] = Row(
                scenario,
                label,
                keep[0][0].algo,
                [r.seed for r, _ in keep],
                final,
                [auc_score(*s) for _, s in keep],
                iqm_ci(np.array(final), reps),
            )
        for row in here.values():
            done = set()
            for base in [here.get(base_of(row.algo))] + [here.get(b) for a, b in pairs if a == row.label]:
                if base is None or base is row or base.label in done:
                    continue
                done.add(base.label)
                row.comparisons += compare(row, base, reps)
        rows += here.values()
    every = [c for r in rows for c in r.comparisons]
    for c, adjusted in zip(every, holm([c.p for c in every])):
        c.p_holm = adjusted
    return rows


def sd(values) -> float:
    """The sample standard deviation (ddof = 1) over seeds; NaN for one seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def fmt_row(row: Row) -> dict[str, str]:
    m, lo, hi = row.iqm
    return {
        "scenario": row.scenario,
        "algorithm": row.label,
        "seeds": str(len(row.seeds)),
        "final (mean ± sd)": f"{np.mean(row.final):.3f} ± {sd(row.final):.3f}",
        "AUC (mean ± sd)": f"{np.mean(row.auc):.3f} ± {sd(row.auc):.3f}",
        "IQM final [95% CI]": f"{m:.3f} [{lo:.3f}, {hi:.3f}]",
    }


def fmt_comparison(c: Comparison, scenario: str) -> dict[str, str]:
    (d, dlo, dhi, cover), (p, plo, phi) = c.shift, c.poi
    level = "" if cover >= 0.95 else f" ({ci_level(cover)})"
    return {
        "scenario": scenario,
        "comparison": f"{c.label} vs {c.base}",
        "score": c.score,
        "difference [95% CI]": f"{d:+.3f} [{dlo:+.3f}, {dhi:+.3f}]{level}",
        "prob. of improvement [95% CI]": f"P({c.label} > {c.base}) = {p:.2f} [{plo:.2f}, {phi:.2f}]",
        "p (Mann-Whitney)": f"{c.p:.3g}" + ("" if c.p_method == "exact" else f" ({c.p_method})"),
        "p_holm": f"{c.p_holm:.3g}",
        "verdict": c.verdict(),
    }


def reward_scales(runs: list[Run]) -> str | None:
    """The env.reward_scale values of one panel's runs ("1, 10"), where they differ; else None."""
    scales = sorted({float(r.config.get("env.reward_scale", 1.0)) for r in runs})
    return ", ".join(f"{s:g}" for s in scales) if len(scales) > 1 else None


def scale_notes(runs: list[Run]) -> list[str]:
    """One line per panel whose runs were trained on different env.reward_scale values: their
    returns are not comparable (win rates are)."""
    notes = []
    for scenario, by_label in group(runs).items():
        if scales := reward_scales([r for rs in by_label.values() for r in rs]):
            notes.append(
                f"{scenario} mixes reward scales ({scales}): its returns "
                f"are on different scales (env.reward_scale), its win rates are not"
            )
    return notes


def _table(rows: list[dict]) -> list[str]:
    head = list(rows[0])
    return [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
        *("| " + " | ".join(r[h].replace("|", "\\|") for h in head) + " |" for r in rows),
    ]


def markdown(rows: list[Row], metric: str, notes: list[str] = ()) -> str:
    table = [fmt_row(r) for r in rows]
    if not table:
        return f"(no run logged {metric})\n"
    lines = [
        f"metric: `{metric}`; final = mean over the last {FINAL_FRACTION:.0%} of env steps; "
        f"AUC = time-averaged metric; sd = sample sd over seeds; IQM with its 95% stratified "
        f"bootstrap CI (rliable)",
        "",
        *_table(table),
    ]
    comparisons = [fmt_comparison(c, r.scenario) for r in rows for c in r.comparisons]
    if comparisons:
        lines += [
            "",
            f"{len(comparisons)} comparisons: difference = Hodges-Lehmann shift (the median of the "
            f"seed-pair differences) with its exact Mann-Whitney CI (95%, or the most that few seeds allow, "
            f"shown in brackets); P(improvement) with its 95% stratified bootstrap CI; p: exact two-sided "
            f"Mann-Whitney on the per-seed scores; p_holm: "
            f"Holm-adjusted over the {len(comparisons)} comparisons of this table; a difference is called "
            f"only where p_holm < {ALPHA}",
            "",
            *_table(comparisons),
        ]
    lines += [f"\nnote: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[Row], metric: str, path: Path) -> None:
    """One line per arm; the comparison columns hold its comparison with its first base (the
    DIFFER variant's own method, else the first compare= pair), on the final score and on the AUC."""
    import csv

    def num(x):
        return "" if x == "" else f"{x:.6g}"

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "scenario",
                "algorithm",
                "metric",
                "seeds",
                "final_mean",
                "final_sd",
                "auc_mean",
                "auc_sd",
                "iqm_final",
                "iqm_ci_low",
                "iqm_ci_high",
                "poi_base",
                "diff",
                "diff_ci_low",
                "diff_ci_high",
                "diff_ci_level",
                "poi",
                "poi_ci_low",
                "poi_ci_high",
                "p",
                "p_holm",
                "diff_auc",
                "diff_auc_ci_low",
                "diff_auc_ci_high",
                "diff_auc_ci_level",
                "poi_auc",
                "poi_auc_ci_low",
                "poi_auc_ci_high",
                "p_auc",
                "p_auc_holm",
                "p_method",
                "final_per_seed",
                "auc_per_seed",
            ]
        )
        for r in rows:
            cells = []
            first = r.comparisons[0].base if r.comparisons else None
            for score in ("final", "auc"):
                c = next((c for c in r.against(score) if c.base == first), None)
                cells += [num(x) for x in (*c.shift, *c.poi, c.p, c.p_holm)] if c else [""] * 9
            w.writerow(
                [
                    r.scenario,
                    r.label,
                    metric,
                    " ".join(map(str, r.seeds)),
                    num(np.mean(r.final)),
                    num(sd(r.final)),
                    num(np.mean(r.auc)),
                    num(sd(r.auc)),
                    *(num(x) for x in r.iqm),
                    first or "",
                    *cells,
                    r.comparisons[0].p_method if r.comparisons else "",
                    " ".join(f"{x:.6g}" for x in r.final),
                    " ".join(f"{x:.6g}" for x in r.auc),
                ]
            )
