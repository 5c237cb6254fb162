"""The paper's figures from run directories: learning curves (Fig. 3-8 style), the normalised std
of individual TD errors (Fig. 9), individual rewards along an episode (Fig. 10), the warm-up
ablation (Fig. 11) and the per-unit-type sampling share (Fig. 12). Every figure is written as
PNG and PDF next to each other."""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .results import Run, aligned, group, pick_metric
from .tables import reward_scales

PRETTY = {
    "test_battle_won_mean": "test win rate",
    "test_return_mean": "test return",
    "td_ind_std_norm": "normalised std of individual |TD|",
    "return_mean": "train return",
}
RATES = {"test_battle_won_mean", "battle_won_mean"}  # in [0, 1]: the axis never goes negative


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | Path) -> list[str]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150 if p.suffix == ".png" else None, bbox_inches="tight")
    _plt().close(fig)
    return [str(p) for p in paths]


def _panels(n: int, width: float = 5.0, height: float = 3.6, max_cols: int = 3):
    plt = _plt()
    cols = min(n, max_cols)
    rows = (n + cols - 1) // cols
    # constrained layout keeps a panel title clear of the x label of the panel above it
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _steps_axis(ax):
    ax.set_xlabel("environment steps")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if abs(x) >= 1e6 else f"{x / 1e3:g}k" if x else "0")
    )
    ax.grid(alpha=0.3)


def iqm_band(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The interquartile mean over seeds at every point of aligned curves `values` [n_runs,
    points], and its pointwise 95% bootstrap CI (rliable's stratified bootstrap over the runs,
    the band of rliable's sample-efficiency curves)."""
    from scipy.stats import trim_mean

    from .stats import interval_estimates

    def iqm(x):  # x: [runs, tasks=1, points]; rliable's aggregate_iqm at every point at once
        return trim_mean(x.reshape(-1, x.shape[-1]), 0.25, axis=0)

    return interval_estimates(np.asarray(values, float)[:, None, :], iqm, reps, seed)


def plot_curves(
    runs: list[Run],
    metric: str | None,
    out: str | Path,
    title: str | None = None,
    relabel=None,
    stat: str = "mean",
    seeds: bool = False,
    reps: int = 2000,
) -> list[str]:
    """One panel per scenario, one line per label: the mean over seeds with a min-max band
    (`stat="mean"`), or the interquartile mean with its pointwise 95% bootstrap CI
    (`stat="iqm"`); `seeds=True` adds each seed's own curve, thin. Without a metric each panel
    shows its env's own: the test win rate where there are battles, else the test return."""
    if metric:
        pick_metric(runs, metric)  # one line naming the logged metrics when no run has it
    panels = group(runs)
    labels = list(dict.fromkeys(lab for by in panels.values() for lab in by))
    colour = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    fig, axes = _panels(len(panels))
    for ax, (scenario, by_label) in zip(axes, panels.items()):
        shown = metric or pick_metric([r for rs in by_label.values() for r in rs], None)
        for label, rs in by_label.items():
            grid, values = aligned(rs, shown)
            if not len(grid):
                continue
            name = relabel(rs[0]) if relabel else label
            if stat == "iqm":
                centre, low, high = iqm_band(values, reps)
                what = "IQM, 95% CI"
            else:
                centre, low, high = values.mean(0), values.min(0), values.max(0)
                what = "mean, min-max"
            ax.plot(grid, centre, color=colour[label], lw=1.8, label=f"{name} ({_seeds(len(values))}; {what})")
            ax.fill_between(grid, low, high, color=colour[label], alpha=0.2, lw=0)
            if seeds:  # every evaluation of every seed, not the interpolated grid
                for t, v in (r.series(shown) for r in rs):
                    ax.plot(t, v, color=colour[label], lw=0.5, alpha=0.45)
        # returns on different scales side by side (win rates do not depend on the scale)
        mixed = None if shown in RATES else reward_scales([r for rs in by_label.values() for r in rs])
        ax.set_title(scenario + (f" (reward scales {mixed})" if mixed else ""))
        if mixed:
            print(
                f"note: {scenario} mixes reward scales ({mixed}): its returns are not comparable across "
                f"env.reward_scale",
                file=sys.stderr,
            )
        ax.set_ylabel(PRETTY.get(shown, shown))
        if shown in RATES:  # a flat 0 line would otherwise get a symmetric, negative axis
            ax.set_ylim(bottom=-0.01, top=max(ax.get_ylim()[1], 0.05))
        _steps_axis(ax)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def eta_label(run: Run) -> str:
    """Fig. 11's legend: the η schedule of a DIFFER run."""
    c = run.config
    if not c.get("algo.differ.eta_warmup", True):
        return f"fixed η = {c['algo.differ.eta_start']:g}"
    return f"η warm-up {c['algo.differ.eta_start']:g} → {c['algo.differ.eta_end']:g}"


def plot_sample_share(runs: list[Run], out: str | Path) -> list[str]:
    """Fig. 12: share of drawn individual experiences per unit type over training (mean over seeds,
    min-max band), one panel per scenario and DIFFER variant; dashed: each type's share of the
    valid experiences (what uniform sampling would give), where logged."""
    panels, single = [], set()
    for scenario, by_label in group(runs).items():
        for label, rs in by_label.items():
            types = sorted(
                {
                    m.split("/", 1)[1]
                    for r in rs
                    for m in r.metrics()
                    if m.startswith("sample_share/") and not m.startswith("sample_share/agent_")
                }
            )
            if len(types) == 1:  # a homogeneous team: the share is 1 by definition
                single.add(scenario)
            elif types:
                panels.append((scenario, label, rs, types))
    if single:
        print(f"note: leaving out {', '.join(sorted(single))}: one unit type, whose share is always 1", file=sys.stderr)
    if not panels:
        raise ConfigError(
            "no run with two or more unit types logged sample_share/<unit type> "
            "(only DIFFER runs with algo.differ.selection=per do, on heterogeneous scenarios)"
        )
    fig, axes = _panels(len(panels))
    for ax, (scenario, label, rs, types) in zip(axes, panels):
        for k, ut in enumerate(types):
            grid, values = aligned(rs, f"sample_share/{ut}")
            ax.plot(grid, values.mean(0), color=f"C{k}", lw=1.8, label=f"{ut} drawn")
            ax.fill_between(grid, values.min(0), values.max(0), color=f"C{k}", alpha=0.2, lw=0)
            grid, values = aligned(rs, f"valid_share/{ut}")
            if len(grid):
                ax.plot(grid, values.mean(0), color=f"C{k}", lw=1.2, ls="--", label=f"{ut} valid (uniform)")
        ax.set_title(f"{scenario}: {label} ({_seeds(len(rs))})")
        ax.set_ylabel("share of sampled individual experiences")
        ax.set_ylim(0, 1)
        _steps_axis(ax)
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out)


def plot_fair_health(runs: list[Run], out: str | Path) -> list[str]:
    """Fair replay's health over training, per scenario: the share of the draws on the 10% of
    individual experiences with the largest |δ_i| (0.10: uniform, dashed) and mean |δ_i| / ε (log
    scale; 1: the TD errors as large as the priority offset). Mean over seeds, min-max band."""
    from ..replay.fair import NEAR_UNIFORM

    runs = [r for r in runs if "fair_top10_share" in r.metrics()]
    if not runs:
        raise ConfigError("no run logged fair_top10_share (DIFFER runs with algo.differ.selection=per do)")
    panels = group(runs)
    labels = list(dict.fromkeys(lab for by in panels.values() for lab in by))
    colour = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    fig, axes = _panels(2 * len(panels), max_cols=2)  # one row per scenario
    for k, (scenario, by_label) in enumerate(panels.items()):
        for ax, metric in zip(axes[2 * k : 2 * k + 2], ("fair_top10_share", "td_ind_over_eps")):
            for label, rs in by_label.items():
                grid, values = aligned(rs, metric)
                if not len(grid):
                    continue
                ax.plot(grid, values.mean(0), color=colour[label], lw=1.8, label=f"{label} ({_seeds(len(values))})")
                ax.fill_between(grid, values.min(0), values.max(0), color=colour[label], alpha=0.2, lw=0)
            if metric == "fair_top10_share":
                ax.axhline(0.1, color="k", ls="--", lw=1, label="uniform (0.10)")
                ax.axhline(NEAR_UNIFORM, color="k", ls=":", lw=1, label=f"warning below {NEAR_UNIFORM}")
                ax.set_ylim(0, max(0.35, ax.get_ylim()[1]))
                ax.set_ylabel("draws on the top-10% |δ_i|")
            else:
                ax.set_yscale("log")
                ax.axhline(1.0, color="k", ls="--", lw=1, label="|δ_i| = ε")
                ax.set_ylabel("mean |δ_i| / per_eps")
            ax.set_title(scenario)
            _steps_axis(ax)
            ax.legend(fontsize=8, loc="best")
    return _save(fig, out)


def plot_individual_rewards(csv_path: str | Path, out: str | Path, episode: int = 0) -> list[str]:
    """Fig. 10: every agent's individual reward r_i along one evaluation episode, coloured by unit
    type (steps after an agent's death are not drawn), with the team reward in black."""
    rows = [r for r in csv.DictReader(open(csv_path)) if int(r["episode"]) == episode]
    if not rows:
        raise ConfigError(f"{csv_path} has no rows for episode {episode}")
    per_agent: dict[int, list] = defaultdict(list)
    team: dict[int, float] = {}
    unit: dict[int, str] = {}
    for r in rows:
        i, t = int(r["agent"]), int(r["t"])
        unit[i] = r["unit_type"]
        team[t] = float(r["reward_team"])
        # the step at which an agent dies is its last valid one (the individual mask keeps it)
        alive_before = not per_agent[i] or per_agent[i][-1][2]
        if alive_before:
            per_agent[i].append((t, float(r["reward_i"]), int(r["alive"])))
    types = list(dict.fromkeys(unit[i] for i in sorted(unit)))
    plt = _plt()
    fig, (ax, ax_sum) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    for i in sorted(per_agent):
        t, r, _ = zip(*per_agent[i])
        k = types.index(unit[i])
        ax.plot(
            t,
            r,
            color=f"C{k}",
            lw=1.0,
            alpha=0.8,
            marker=".",
            ms=3,
            label=unit[i] if i == min(j for j in unit if unit[j] == unit[i]) else None,
        )
    ts = sorted(team)
    ax.plot(ts, [team[t] for t in ts], color="black", lw=1.6, label="team reward R")
    ax.set_xlabel("time step of the episode")
    ax.set_ylabel("individual reward $r_i$")
    ax.set_title(f"individual rewards along evaluation episode {episode} ({len(unit)} agents)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    # per unit type: the sum of r_i over the episode, one dot per agent
    for i in sorted(per_agent):
        k = types.index(unit[i])
        ax_sum.scatter(
            k + np.random.default_rng(i).uniform(-0.15, 0.15), sum(x[1] for x in per_agent[i]), color=f"C{k}", s=20
        )
    ax_sum.set_xticks(range(len(types)), types)
    ax_sum.set_ylabel(r"$\Sigma_t\, r_i$ over the episode")
    ax_sum.set_title("per agent, by unit type")
    ax_sum.grid(alpha=0.3)
    return _save(fig, out)
