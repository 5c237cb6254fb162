"""Markdown table of run directories' test curves: `python scripts/results_table.py RUN_DIR...`.

Per run: scenario, seed, env steps, wall-clock, the best test value (and when), the final one and
the mean of the last five evaluations. The metric is the test win rate where the env has battles,
else the test return.
"""

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf


def row(run_dir: Path) -> str:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    tests = [r for r in recs if "test_return_mean" in r]
    key = "test_battle_won_mean" if "test_battle_won_mean" in tests[-1] else "test_return_mean"
    best = max(tests, key=lambda r: r[key])
    last5 = [r[key] for r in tests[-5:]]
    train = [r for r in recs if "steps_per_s" in r]
    wall = train[-1]["t_env"] / train[-1]["steps_per_s"] if train else float("nan")
    return (
        f"| {cfg.algo.name} | {cfg.env.name} {cfg.env.scenario} | {cfg.seed} | {tests[-1]['t_env']:,} | "
        f"{wall / 60:.0f} min | {key.removeprefix('test_').removesuffix('_mean')} | "
        f"{best[key]:.2f} @ {best['t_env']:,} | {tests[-1][key]:.2f} | {sum(last5) / len(last5):.2f} |"
    )


if __name__ == "__main__":
    print("| algo | env | seed | env steps | wall-clock | test metric | best (at step) | final | mean of last 5 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in sys.argv[1:]:
        print(row(Path(d)))
