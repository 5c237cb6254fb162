"""Reading run directories back: curves, per-seed scores and robust statistics.

A run directory is anything holding `config.yaml` and `metrics.jsonl` (what `differ train`
writes). Runs are grouped by (environment, scenario) into panels and by a label into lines: the
algorithm's name, plus whatever else differs between runs of that algorithm in that scenario
(e.g. `differ.eta_warmup=False`), so an ablation sweep needs no naming scheme of its own.

Per-run scores (one number per seed, then aggregated over seeds):
  final  mean of the metric over the evaluations in the run's last 10% of env steps
  auc    normalised area under the curve: ∫ metric dt / (t_last − t_first), trapezoidal,
         i.e. the time-averaged metric (1.0 = perfect from the start for a win rate)
and over seeds the interquartile mean (IQM) of `final` with a 95% stratified-bootstrap
confidence interval, and the probability of improvement of each DIFFER variant over its base
method, both from `rliable`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ..errors import ConfigError
from ..metrics import read_jsonl

DEFAULT_METRIC = "test_battle_won_mean"
FINAL_FRACTION = 0.1  # `final` averages the evaluations in the last 10% of a run
# keys that never distinguish two runs' algorithms: bookkeeping, seeds and budgets
NOT_A_VARIANT = {"seed", "run_dir", "t_max", "torch_threads", "progress", "tensorboard", "wandb", "wandb_project",
                 "wandb_entity", "wandb_mode",
                 "checkpoint_interval", "log_interval", "device"}


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
        found = [p] if (p / "config.yaml").exists() else sorted(c.parent for c in p.rglob("config.yaml"))
        dirs += [d for d in found if (d / "metrics.jsonl").exists()]
    runs = []
    for d in dict.fromkeys(dirs):
        cfg = _flatten(_with_defaults(OmegaConf.load(d / "config.yaml")))
        runs.append(Run(d, cfg, read_jsonl(d / "metrics.jsonl")))
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
            point, ci = library.get_interval_estimates({"k": data}, func, reps=reps,
                                                       random_state=np.random.RandomState(seed))
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


def base_of(algo: str) -> str | None:
    """The method a DIFFER variant improves on: qmix_differ -> qmix."""
    return algo.removesuffix("_differ") if algo.endswith("_differ") else None


@dataclass
class Row:
    scenario: str
    label: str
    algo: str  # the label may name a variant (an ablation); the base method is found from the algo
    seeds: list[int]
    final: list[float]
    auc: list[float]
    iqm: tuple[float, float, float]
    poi: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # over base label, final
    poi_auc: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # the same on the AUC


def summarise(runs: list[Run], metric: str, reps: int = 2000,
              pairs: list[tuple[str, str]] = ()) -> list[Row]:
    """Per label and scenario: scores over seeds, and P(improvement) of every DIFFER variant over
    its base method plus of each (a, b) in `pairs` (labels, e.g. ("maser", "qmix"))."""
    rows = []
    for scenario, by_label in group(runs).items():
        here = {}
        for label, rs in by_label.items():
            series = [r.series(metric) for r in rs]
            keep = [(r, s) for r, s in zip(rs, series) if len(s[0])]
            if not keep:
                continue
            final = [final_score(*s) for _, s in keep]
            here[label] = Row(scenario, label, keep[0][0].algo, [r.seed for r, _ in keep], final,
                              [auc_score(*s) for _, s in keep], iqm_ci(np.array(final), reps))
        for row in here.values():
            for base in [here.get(base_of(row.algo))] + [here.get(b) for a, b in pairs if a == row.label]:
                if base is None or base is row or base.label in row.poi:
                    continue
                row.poi[base.label] = prob_improvement(np.array(row.final), np.array(base.final), reps)
                # learning speed, not only the end point: budgets here are far below the paper's
                row.poi_auc[base.label] = prob_improvement(np.array(row.auc), np.array(base.auc), reps)
        rows += here.values()
    return rows


def fmt_row(row: Row) -> dict[str, str]:
    m, lo, hi = row.iqm
    def poi(d):
        return "; ".join(f"P({row.label} > {b}) = {p:.2f} [{a:.2f}, {c:.2f}]" for b, (p, a, c) in d.items()) or "-"

    return {"scenario": row.scenario, "algorithm": row.label, "seeds": str(len(row.seeds)),
            "final (mean ± sd)": f"{np.mean(row.final):.3f} ± {np.std(row.final):.3f}",
            "AUC (mean)": f"{np.mean(row.auc):.3f}",
            "IQM final [95% CI]": f"{m:.3f} [{lo:.3f}, {hi:.3f}]",
            "prob. of improvement, final [95% CI]": poi(row.poi),
            "prob. of improvement, AUC [95% CI]": poi(row.poi_auc)}


def markdown(rows: list[Row], metric: str) -> str:
    table = [fmt_row(r) for r in rows]
    if not table:
        return f"(no run logged {metric})\n"
    head = list(table[0])
    lines = [f"metric: `{metric}`; final = mean over the last {FINAL_FRACTION:.0%} of env steps; "
             f"AUC = time-averaged metric; IQM and probability of improvement over seeds with 95% "
             f"stratified bootstrap CIs (rliable)", "",
             "| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in table]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[Row], metric: str, path: Path) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "algorithm", "metric", "seeds", "final_mean", "final_std", "auc_mean",
                    "iqm_final", "iqm_ci_low", "iqm_ci_high", "poi_base", "poi", "poi_ci_low", "poi_ci_high",
                    "poi_auc", "poi_auc_ci_low", "poi_auc_ci_high", "final_per_seed", "auc_per_seed"])
        for r in rows:
            poi = next(iter(r.poi.items()), ("", ("", "", "")))
            poi_auc = next(iter(r.poi_auc.values()), ("", "", ""))
            w.writerow([r.scenario, r.label, metric, " ".join(map(str, r.seeds)), f"{np.mean(r.final):.6g}",
                        f"{np.std(r.final):.6g}", f"{np.mean(r.auc):.6g}", *(f"{x:.6g}" for x in r.iqm),
                        poi[0], *(f"{x:.6g}" if x != "" else "" for x in (*poi[1], *poi_auc)),
                        " ".join(f"{x:.6g}" for x in r.final), " ".join(f"{x:.6g}" for x in r.auc)])
