"""A summary as tables: markdown (what `differ summary` prints) and CSV, with the notes a reader
needs (the reward scales the runs used)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .results import ALPHA, Comparison, Row, Run, ci_level, group
from .stats import FINAL_FRACTION


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
