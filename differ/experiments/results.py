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
from .stats import auc_score, final_score, holm, iqm_ci, mann_whitney_p, prob_improvement, shift_ci

DEFAULT_METRIC = "test_battle_won_mean"
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
