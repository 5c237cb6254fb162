"""`differ export marl-eval DIR... out=FILE`: per-episode test results in the JSON layout that
marl-eval's tools read (instadeepai/marl-eval, "Data Structure for Raw Experiment data"):

    {env: {task: {algorithm: {"run_<i>": {"step_<k>": {"step_count": t_env,
                                                     "episode_return": [...], "win_rate": [...]}}}}}}

env is the run's environment family, task its scenario, algorithm its label (as in `differ
plot`), one run per seed, one step per test evaluation, one value per test episode (from the
run's eval.jsonl). marl-eval's "absolute_metrics" (the best policy re-evaluated on 10× the
episodes) are not written: training logs do not hold them, and marl-eval then reads a run's
last step as its absolute metrics (so its curves end one evaluation early).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..store.metrics import read_jsonl
from ..store.rundir import RunDir
from .results import Run

NAMES = {"return": "episode_return", "battle_won": "win_rate", "ep_length": "episode_length"}


def marl_eval(runs: list[Run]) -> dict:
    data: dict = {}
    missing = []
    by_group: dict[tuple, list[Run]] = {}
    for r in runs:
        env, task = r.config["env.name"], r.config["env.scenario"]
        by_group.setdefault((env, task, r.label), []).append(r)
    for (env, task, label), rs in by_group.items():
        algo = data.setdefault(env, {}).setdefault(task, {}).setdefault(label, {})
        for r in sorted(rs, key=lambda r: r.seed):
            tests = read_jsonl(RunDir(r.path).evals)
            if not tests:
                missing.append(str(r.path))
                continue
            algo[f"run_{len(algo)}"] = {
                f"step_{k}": {
                    "step_count": rec["t_env"],
                    **{NAMES.get(m, m): v for m, v in rec.items() if m != "t_env"},
                }
                for k, rec in enumerate(tests)
            }
        if not algo:
            del data[env][task][label]
    if missing:
        print(
            f"note: {len(missing)} run(s) without eval.jsonl (made before differ kept per-episode "
            f"test results) left out: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}",
            file=sys.stderr,
        )
    data = {e: {t: a for t, a in tasks.items() if a} for e, tasks in data.items()}
    data = {e: tasks for e, tasks in data.items() if tasks}
    if not data:
        raise ConfigError("no run holds eval.jsonl (per-episode test results); train with this version of differ")
    return data


def write(runs: list[Run], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(marl_eval(runs), indent=1) + "\n")
    return out
