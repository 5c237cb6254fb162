"""The pre-registered analysis of the 2M-step study (docs/results.md, issue 29), written before its
interim look: QMIX-DIFFER against QMIX on SMAX 3s5z_vs_3s6z.

    python scripts/study_2m_report.py SWEEP_DIR interim [--apply]
    python scripts/study_2m_report.py SWEEP_DIR final [--figures DIR]

`interim`: seeds 1-5 of qmix and qmix_differ. Prints only the futility rule's input (the
Hodges-Lehmann estimate of QMIX-DIFFER − QMIX on the primary endpoint) and its decision: stop if
it is <= 0. No p value or CI is printed: the look may stop the study for futility only, and its
numbers are used for nothing else. `--apply` writes SWEEP_DIR/STOPPED_FOR_FUTILITY when the rule
says stop (scripts/study_2m.sh then skips seeds 6-10).

`final`: every finished seed. Per seed, the primary endpoint (test return averaged over the
evaluations in the last 10% of the run), the secondary ones (test win rate over the same window;
area under the test-return curve) and the wall-clock. Then the pre-registered tests: the exact
two-sided Mann-Whitney p of the primary endpoint alone (no adjustment) with the Hodges-Lehmann
shift and its exact CI, P(improvement) and each arm's IQM with their 95% bootstrap CIs, and the
verdict in the wording fixed in advance; the two secondary endpoints the same way, their p values
Holm-adjusted between the two; and the decomposition check (qmix_divide against qmix on the
primary endpoint). With the study stopped for futility, the 5 vs 5 comparison is the final one
and is labelled so. `--figures DIR` also writes the study's figures: test return and win rate
(IQM with 95% CI and each seed's curve), Fig. 9, Fig. 12 and fair replay's health.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from differ.errors import ConfigError
from differ.experiments import plots
from differ.experiments.results import find_runs
from differ.experiments.stats import auc_score, final_score, holm, iqm_ci, mann_whitney_p, prob_improvement, shift_ci
from differ.store.rundir import RunDir

SCENARIO = "smax 3s5z_vs_3s6z"
PRIMARY = ("test return, last 10%", "test_return_mean", final_score)
SECONDARY = [
    ("test win rate, last 10%", "test_battle_won_mean", final_score),
    ("test return, AUC", "test_return_mean", auc_score),
]
STOP_FILE = "STOPPED_FOR_FUTILITY"


def arms(sweep: Path) -> dict[str, dict[int, object]]:
    """{algo: {seed: run}} of the finished runs of the study's map."""
    out: dict[str, dict[int, object]] = {}
    for r in find_runs([sweep]):
        if r.scenario == SCENARIO and r.finished:
            out.setdefault(r.algo, {})[r.seed] = r
    return out


def score(run, endpoint) -> float:
    _, metric, fn = endpoint
    return fn(*run.series(metric))


def scores(runs: dict[int, object], seeds: list[int], endpoint) -> np.ndarray:
    return np.array([score(runs[s], endpoint) for s in seeds])


def interim(sweep: Path, apply: bool) -> str:
    a = arms(sweep)
    seeds = [1, 2, 3, 4, 5]
    missing = [f"{algo} s{s}" for algo in ("qmix", "qmix_differ") for s in seeds if s not in a.get(algo, {})]
    if missing:
        return f"interim look not due: unfinished {', '.join(missing)}"
    x, y = scores(a["qmix_differ"], seeds, PRIMARY), scores(a["qmix"], seeds, PRIMARY)
    hl = shift_ci(x, y)[0]  # the Hodges-Lehmann estimate: the median of the 25 seed-pair differences
    stop = hl <= 0
    lines = [
        f"interim look (seeds 1-5, futility only): Hodges-Lehmann estimate of QMIX-DIFFER − QMIX on the "
        f"primary endpoint = {hl:+.3f}",
        "decision: "
        + ("STOP for futility (estimate <= 0): seeds 6-10 are not run" if stop else "CONTINUE with seeds 6-10"),
    ]
    if stop and apply:
        (sweep / STOP_FILE).write_text(lines[0] + "\n")
        lines.append(f"wrote {sweep / STOP_FILE}")
    return "\n".join(lines)


def _comparison(x: np.ndarray, y: np.ndarray, reps: int) -> dict:
    p, method = mann_whitney_p(x, y)
    d, lo, hi, cover = shift_ci(x, y)
    return {"p": p, "method": method, "shift": (d, lo, hi, cover), "poi": prob_improvement(x, y, reps)}


def verdict(c: dict, p: float) -> str:
    d, lo, hi, cover = c["shift"]
    if p < 0.05:
        return "DIFFER ahead" if d > 0 else "DIFFER behind"
    return f"no effect detected; the {cover:.1%} CI of the difference spans [{lo:.3g}, {hi:.3g}]"


def _fmt(c: dict, p_name: str, p: float) -> str:
    d, lo, hi, cover = c["shift"]
    pi, pl, ph = c["poi"]
    return (
        f"shift {d:+.3g} [{lo:.3g}, {hi:.3g}] ({cover:.1%} exact CI); P(improvement) {pi:.2f} [{pl:.2f}, {ph:.2f}]; "
        f"{p_name} = {p:.3g} ({c['method']})"
    )


def final(sweep: Path, reps: int) -> str:
    a = arms(sweep)
    q, qd = a.get("qmix", {}), a.get("qmix_differ", {})
    seeds = sorted(set(q) & set(qd))
    stopped = (sweep / STOP_FILE).exists()
    out = [f"# The 2M-step study: {len(seeds)} seeds in both arms ({', '.join(map(str, seeds))})"]
    if stopped:
        out.append("**stopped for futility at the interim look**: the 5 vs 5 comparison below is the final one")
    elif len(seeds) < 10:
        out.append(f"**incomplete**: {len(seeds)} of 10 seeds per arm finished; not the pre-registered test")
    out += [
        "",
        "| algo | seed | primary | win rate | AUC | env steps | wall-clock |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for algo in ("qmix", "qmix_differ", "qmix_divide"):
        for s, r in sorted(a.get(algo, {}).items()):
            res = RunDir(r.path).result()
            wall = f"{res['wall_time_s'] / 3600:.1f} h" if "wall_time_s" in res else "?"
            vals = [score(r, e) for e in (PRIMARY, *SECONDARY)]
            out.append(f"| {algo} | {s} | {vals[0]:.2f} | {vals[1]:.3f} | {vals[2]:.2f} | {r.t_env:,} | {wall} |")
    if not seeds:
        return "\n".join(out)
    x, y = scores(qd, seeds, PRIMARY), scores(q, seeds, PRIMARY)
    c = _comparison(x, y, reps)
    out += ["", "## Primary endpoint: test return over the last 10% (QMIX-DIFFER − QMIX)"]
    for name, v in (("qmix", y), ("qmix_differ", x)):
        m, lo, hi = iqm_ci(v, reps)
        out.append(f"- {name}: mean {v.mean():.2f} (sample sd {v.std(ddof=1):.2f}), IQM {m:.2f} [{lo:.2f}, {hi:.2f}]")
    out.append("- " + _fmt(c, "p", c["p"]))
    out.append(f"- **verdict: {verdict(c, c['p'])}**")
    out += ["", "## Secondary endpoints (p Holm-adjusted between the two)"]
    cs = [_comparison(scores(qd, seeds, e), scores(q, seeds, e), reps) for e in SECONDARY]
    for e, c2, ph in zip(SECONDARY, cs, holm([c2["p"] for c2 in cs])):
        out.append(f"- {e[0]}: " + _fmt(c2, "p_holm", ph) + f" (unadjusted {c2['p']:.3g}); {verdict(c2, ph)}")
    div = a.get("qmix_divide", {})
    if div:
        z = np.array([score(r, PRIMARY) for _, r in sorted(div.items())])
        y_all = np.array([score(r, PRIMARY) for _, r in sorted(q.items())])
        cd = _comparison(z, y_all, reps)
        out += [
            "",
            f"## Decomposition check: qmix_divide ({len(z)} seeds) − qmix ({len(y_all)} seeds), primary endpoint",
        ]
        out.append("- " + _fmt(cd, "p", cd["p"]))
        out.append(
            "- **qmix_divide departs from qmix: a bug to find before anything is concluded**"
            if cd["p"] < 0.05
            else "- qmix_divide does not depart from qmix (p >= 0.05)"
        )
    return "\n".join(out)


def figures(sweep: Path, out: Path, reps: int) -> list[str]:
    runs = [r for r in find_runs([sweep]) if r.scenario == SCENARIO and r.finished]
    files = []
    for metric in ("test_return_mean", "test_battle_won_mean"):
        files += plots.plot_curves(runs, metric, out / f"study_2m_{metric}", stat="iqm", seeds=True, reps=reps)
    ind = [r for r in runs if "td_ind_std_norm" in r.metrics()]
    files += plots.plot_curves(
        ind, "td_ind_std_norm", out / "study_2m_fig9", "Fig. 9: normalised std of individual TD errors"
    )
    for name, fig in (("fig12", plots.plot_sample_share), ("fair", plots.plot_fair_health)):
        try:
            files += fig(runs, out / f"study_2m_{name}")
        except ConfigError as e:  # runs made before the figure's diagnostics were logged
            print(f"note: no {name} figure: {e}")
    return files


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("mode", choices=["interim", "final"])
    ap.add_argument("--apply", action="store_true", help="interim: write the stop marker if the rule says stop")
    ap.add_argument("--figures", type=Path, help="final: write the study's figures into this folder")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap samples")
    args = ap.parse_args()
    if args.mode == "interim":
        print(interim(args.sweep, args.apply))
    else:
        print(final(args.sweep, args.reps))
        if args.figures:
            print("wrote " + ", ".join(figures(args.sweep, args.figures, args.reps)))
